"""``kappa plan``: resolve replay points, against the log as it is now, into a manifest
(``kappa read`` reads exactly its records: ``read.py``). Imports no Beam."""

from __future__ import annotations

import argparse
from pathlib import Path

from kappa.runners import cliargs
from kappa.runners.home import default_registry_path
from kappa.schemas.registry import public_location
from kappa.replay.errors import ReplayError
from kappa.replay.manifest import DecodingSpec, Manifest
from kappa.replay.resolve import ON_MISSING
from kappa.replay.sources import KafkaSource, parse_source
from kappa.schemas.catalog import SCHEMA_NAMES
from kappa.schemas.codec import FORMATS

__all__ = ["add_parsers", "add_source_flags", "check_flags", "decoding_spec", "plan_manifest"]

PLAN_EXAMPLES = """\
examples:
  kappa plan --source kafka://127.0.0.1:9092/payment_msg --from 2026-11-20T09:00:00Z --to now
  kappa plan --source kafka://127.0.0.1:9092/payment_msg --from -PT1H --to +PT30M --save plan.json
  kappa plan --source kafka://127.0.0.1:9092/payment_msg --from group:merchant-totals --to now --json
"""


def add_parsers(subparsers) -> None:
    plan = subparsers.add_parser(
        "plan", help="resolve replay points into a manifest and summarize it, without reading",
        description="Resolve --from and --to once, against the log as it is now, into a manifest: per partition "
                    "the [start, stop) offsets and the selectors that produced them. Prints a summary (records "
                    "per partition, record-time span); --save writes the manifest for `kappa read --manifest`.",
        epilog=PLAN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_flags(plan)
    plan.add_argument("--save", type=Path, help="write the manifest (JSON) to this file")
    plan.add_argument("--json", action="store_true", help="print the manifest JSON instead of the summary")
    cliargs.add_kafka_flags(plan)
    plan.set_defaults(run=run_plan)


def add_source_flags(p, required: bool = True) -> None:
    p.add_argument("--source", required=required,
                   help="kafka://HOST:PORT/TOPIC (`read` also takes pubsub://PROJECT/SUBSCRIPTION and file:PATH)")
    p.add_argument("--from", dest="start", default="earliest",
                   help="earliest | latest | ISO-8601 instant | -PT6H | offsets:0=12,1=30 | group:<id> "
                        "| snapshot:<name> (Pub/Sub) (default earliest)")
    p.add_argument("--to", dest="stop", default="now",
                   help="now | never | ISO-8601 instant | +PT1H | offsets:0=99,1=120 (default now)")
    p.add_argument("--format", choices=FORMATS, default="confluent", help="value encoding (default confluent)")
    p.add_argument("--schema", default="payment",
                   help=f"reader schema: one of {', '.join(SCHEMA_NAMES)} or an .avsc file (default payment)")
    cliargs.add_registry_flags(p, default_registry_path())
    p.add_argument("--event-time", default="field:timestamp",
                   help="field:<name> | create_time | log_append_time (Kafka) | publish_time | attribute:<name> "
                        "(Pub/Sub) (default field:timestamp)")
    p.add_argument("--max-out-of-orderness", type=cliargs.duration_ms, default=0, metavar="DURATION",
                   help="watermark bound: max event time seen minus this (default 0s)")
    p.add_argument("--on-missing-offsets", choices=ON_MISSING, default="error",
                   help="offsets deleted by retention, or a group without commits: fail (default) or start at the log start")
    p.add_argument("--isolation-level", choices=["read_committed", "read_uncommitted"], default="read_committed",
                   help="transactional records: committed only (default) or all")
    p.add_argument("--timeout", type=cliargs.positive_float, default=10.0, metavar="SECONDS",
                   help="how long to wait for the broker to answer (default 10)")


def check_flags(args) -> None:
    from kappa.transforms.event_time import EventTimeSpec

    try:
        EventTimeSpec.parse(args.event_time)
    except ValueError as err:
        raise ReplayError(f"--event-time: {err}") from None
    if args.schema not in SCHEMA_NAMES and not Path(args.schema).is_file():
        raise ReplayError(f"--schema {args.schema!r} is neither a shipped schema ({', '.join(SCHEMA_NAMES)}) nor a file")


def plan_manifest(args) -> Manifest:
    from kappa.replay.plan import plan_kafka_replay

    check_flags(args)
    source = parse_source(args.source)
    if not isinstance(source, KafkaSource):
        raise ReplayError(f"--source {args.source}: planning offsets needs a kafka:// source")
    return plan_kafka_replay(source.bootstrap, source.topic, args.start, args.stop,
                             decoding_spec(args, args.schema, source.topic), args.event_time,
                             args.max_out_of_orderness, args.on_missing_offsets, args.isolation_level,
                             timeout_s=args.timeout)


def run_plan(args) -> int:
    from kappa.replay.plan import summarize

    manifest = plan_manifest(args)
    if args.save:
        manifest.save(args.save)
    if args.json:
        print(manifest.to_json())
    else:
        print(f"replay of {manifest.topic} from {manifest.from_point} to {manifest.to_point} (planned {manifest.created_at})")
        for r in manifest.ranges:
            print(f"  partition {r.partition}: start from {r.start_selector}; stop at {r.stop_selector}")
        print("\n".join(summarize(manifest, args.timeout)))
        if args.save:
            print(f"manifest saved to {args.save}")
    return 0


def decoding_spec(args, schema: str, topic: str | None = None) -> DecodingSpec:
    """``--format`` and ``--registry`` for ``schema``: the Confluent format takes the registry
    and, on a Kafka topic, the topic's value subject."""
    if args.format != "confluent":
        return DecodingSpec(args.format, schema)
    return DecodingSpec(args.format, schema, public_location(str(args.registry or default_registry_path())),
                        f"{topic}-value" if topic else None)
