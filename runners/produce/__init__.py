"""``kappa produce``: seeded demo events with controlled disorder, to Kafka and/or an archive."""

from runners.produce.disorder import Arrival, DisorderSpec, Kind, plan_arrivals
from runners.produce.domains import DOMAINS, Domain
from runners.produce.writer import ProduceSummary, produce_events

__all__ = ["DOMAINS", "Arrival", "DisorderSpec", "Domain", "Kind", "ProduceSummary", "plan_arrivals", "produce_events"]
