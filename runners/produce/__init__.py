"""Seeded demo events with controlled disorder, to Kafka and/or an archive (the ``kappa
produce`` command is ``kappa.runners.commands.produce``)."""

from kappa.runners.produce.disorder import Arrival, DisorderSpec, Kind, plan_arrivals
from kappa.runners.produce.domains import DOMAINS, Domain
from kappa.runners.produce.writer import ProduceSummary, produce_events

__all__ = ["DOMAINS", "Arrival", "DisorderSpec", "Domain", "Kind", "ProduceSummary", "plan_arrivals", "produce_events"]
