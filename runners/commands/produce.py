"""The ``kappa produce`` command line."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from kappa.runners import cliargs
from kappa.runners.errors import KappaError
from kappa.runners.home import default_registry_path
from kappa.runners.kafka_util import admin_client, ensure_topic, resolve_bootstrap
from kappa.runners.produce.disorder import DisorderSpec, plan_arrivals
from kappa.runners.produce.domains import DOMAINS
from kappa.runners.produce.writer import ARCHIVE_SUFFIXES, Progress, produce_events
from kappa.schemas import make_codec, open_registry
from kappa.schemas.codec import FORMATS

__all__ = ["add_parsers"]

EXAMPLES = """\
examples:
  kappa produce payments --topic payment_msg --count 1000 --rate 50 --seed 7
      1000 payments, 50 per second, sent as their event time comes (20 s)
  kappa produce payments --count 6000 --rate 20 --start -PT5M --no-wait \\
      --disorder 0.1 --max-disorder 20s --late 0.01 --late-by 2m
      five minutes of history at once, 10% out of order by up to 20 s, 1% over 2 min late
  kappa produce turnstiles --count 500 --archive out/turnstiles.avro --no-kafka
      an Avro archive file only
"""


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "produce",
        help="write seeded demo events (payments, turnstiles, commerce) to Kafka or an archive",
        description=(
            "Generate realistic, keyed demo events with controlled disorder and write them to a "
            "Kafka topic (record timestamps are the event times: CreateTime) and/or an archive file. "
            "The same seed, count, rate and --start give the same events in the same order."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("domain", choices=sorted(DOMAINS), help="which events to generate")
    p.add_argument("--topic", help="Kafka topic (default: the domain's, e.g. payment_msg)")
    p.add_argument("--count", type=cliargs.positive_int, default=1000, help="number of events (default 1000)")
    p.add_argument("--rate", type=cliargs.positive_float, default=50.0,
                   help="events per second of event time; also the send rate unless --no-wait (default 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--start", type=cliargs.instant_ms, default=None,
                   help="event time of the first event: ISO-8601 instant, 'now' or a duration ago like -PT5M (default now)")
    p.add_argument("--disorder", type=cliargs.fraction, default=0.0, metavar="FRACTION",
                   help="fraction of events out of order (behind the max event time seen) by up to --max-disorder")
    p.add_argument("--max-disorder", type=cliargs.duration_ms, default=30_000, metavar="DURATION",
                   help="largest out-of-order lag, e.g. 30s (default 30s)")
    p.add_argument("--late", type=cliargs.fraction, default=0.0, metavar="FRACTION",
                   help="fraction of events arriving more than --late-by behind the max event time seen")
    p.add_argument("--late-by", type=cliargs.duration_ms, default=300_000, metavar="DURATION",
                   help="how late a late event is, at least (default 5m)")
    p.add_argument("--format", choices=FORMATS, default="confluent",
                   help="value encoding on Kafka (default confluent: magic byte, schema id, Avro)")
    cliargs.add_registry_flags(p, default_registry_path())
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default $KAFKA_BOOTSTRAP or 127.0.0.1:9092)")
    p.add_argument("--partitions", type=cliargs.positive_int, default=4,
                   help="partitions if the topic has to be created (default 4)")
    p.add_argument("--archive", type=Path, help="also write the events, in arrival order, to a .jsonl or .avro file")
    p.add_argument("--no-kafka", action="store_true", help="write only the --archive file")
    p.add_argument("--no-wait", action="store_true", help="send at once, even events whose time has not come")
    cliargs.add_kafka_flags(p)
    p.set_defaults(run=run, parser=p)


def run(args) -> int:
    parser = args.parser
    domain = DOMAINS[args.domain]
    try:
        spec = DisorderSpec(args.disorder, args.max_disorder, args.late, args.late_by)
    except ValueError:
        parser.error("--disorder plus --late must stay below 1: some events must arrive in order")
    if args.no_kafka and args.archive is None:
        parser.error("--no-kafka needs --archive: there would be nowhere to write")
    if args.archive is not None:
        _check_archive_path(parser, args.archive)
    start_ms = args.start if args.start is not None else int(time.time() * 1000)
    try:
        plan = plan_arrivals(args.count, args.seed, start_ms, args.rate, spec)
    except ValueError as err:
        parser.error(f"--disorder and --late are too large for --count {args.count}: {err}")

    kafka = None
    target = str(args.archive)
    if not args.no_kafka:
        bootstrap = resolve_bootstrap(args.bootstrap)
        topic = args.topic or domain.topic
        partitions = ensure_topic(admin_client(bootstrap), topic, args.partitions)
        registry = open_registry(args.registry or default_registry_path())
        codec = make_codec(args.format, domain.schema, registry=registry, subject=f"{topic}-value")
        kafka = (bootstrap, topic, codec)
        target = f"{topic} ({partitions} partitions, {args.format}) at {bootstrap}"
        if args.archive is not None:
            target += f" and {args.archive}"
    summary = produce_events(domain, plan, args.seed, kafka=kafka, archive=args.archive,
                             wait=not args.no_wait, progress=Progress(f"produce {domain.name}"))
    print("\n".join(summary.lines(domain, target)))
    return 0


def _check_archive_path(parser, path: Path) -> None:
    if path.suffix not in ARCHIVE_SUFFIXES:
        parser.error(f"argument --archive: {path} must end in {' or '.join(ARCHIVE_SUFFIXES)}")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise KappaError(f"cannot create the --archive folder {folder}: {err.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise KappaError(f"cannot write the --archive file {path}: {folder} is not writable")
