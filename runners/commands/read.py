"""``kappa read``: the replay reader on its own, no pipeline: exactly the records a
manifest (or ``--source/--from/--to``) names, decoded, as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import apache_beam as beam

from kappa.runners import cliargs
from kappa.runners.commands.plan import add_source_flags, check_flags, decoding_spec, plan_manifest
from kappa.runners.profiles import profile_for
from kappa.runners.progress_view import metric_counts
from kappa.runners.sinks.writers import AppendLinesFn
from kappa.replay.errors import ReplayError
from kappa.replay.manifest import Manifest
from kappa.replay.pubsub_source import PubSubReadSettings, ReadFromPubSubReplay, delete_replay_subscription, prepare_replay
from kappa.replay.sources import ArchiveSource, PubSubSource, parse_source
from kappa.schemas.jsonform import format_instant
from kappa.transforms.event_time import DEFAULT_MAX_AHEAD_MS

__all__ = ["add_parsers", "pubsub_settings"]

READ_EXAMPLES = """\
examples:
  kappa read --manifest plan.json --out records.jsonl
  kappa read --source kafka://127.0.0.1:9092/payment_msg --from -PT10M --to now
  kappa read --source kafka://127.0.0.1:9092/payment_msg --from latest --to never --commit-group my-reader
  kappa read --source file:out/payments.jsonl
"""


def add_parsers(subparsers) -> None:
    read = subparsers.add_parser(
        "read", help="read exactly the records of a manifest (or of --source/--from/--to) as JSON lines",
        description="Run the replay reader alone on the DirectRunner: every record of the planned ranges, decoded, "
                    "with its event time and provenance, one JSON object per line. Undecodable records and records "
                    "without a usable event time go to the dead-letter file. With --to never it follows the log.",
        epilog=READ_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_flags(read, required=False)
    read.add_argument("--manifest", type=Path, help="read the ranges of this saved manifest (instead of --source)")
    read.add_argument("--out", default="-", help="records as JSON lines to this file (default: standard output)")
    read.add_argument("--dead-letter", type=Path, help="dead letters as JSON lines (default: beside --out, or stderr)")
    read.add_argument("--commit-group", help="live reads only: commit progress to this consumer group")
    read.add_argument("--id-attribute", help="Pub/Sub: deduplicate by this attribute (default: the message id)")
    cliargs.add_kafka_flags(read)
    read.set_defaults(run=run_read)


def run_read(args) -> int:
    from apache_beam.options.pipeline_options import PipelineOptions

    from kappa.replay.archive_source import ReadArchive
    from kappa.replay.kafka_source import ReadFromKafkaReplay

    if args.manifest is None and args.source is None:
        raise ReplayError("read needs --manifest or --source")
    dead_path = args.dead_letter or (Path(args.out).with_suffix(".dead.jsonl") if args.out != "-" else None)
    if args.manifest is not None:
        manifest = Manifest.load(args.manifest)
        read, schema, label = ReadFromKafkaReplay(manifest, commit_group=args.commit_group), manifest.decoding.schema, manifest
    elif isinstance(parse_source(args.source), PubSubSource):
        check_flags(args)
        settings = pubsub_settings(args, parse_source(args.source), args.schema, args.max_out_of_orderness)
        read, schema, label = ReadFromPubSubReplay(settings), args.schema, settings
    elif isinstance(parse_source(args.source), ArchiveSource):
        check_flags(args)
        archive = parse_source(args.source)
        read, schema, label = ReadArchive([archive.path], args.schema, args.event_time), args.schema, archive
    else:
        manifest = plan_manifest(args)
        read, schema, label = ReadFromKafkaReplay(manifest, commit_group=args.commit_group), args.schema, manifest
    if args.commit_group and not (isinstance(label, Manifest) and label.live):
        raise ReplayError("--commit-group is for live reads (--to never): replays never commit offsets")

    if isinstance(label, PubSubReadSettings):
        mode = "following it live (Ctrl-C stops)" if label.live else f"until messages published at {format_instant(label.stop_publish_ms)}"
        print(f"reading {label.subscription}: {mode}", file=sys.stderr, flush=True)
    if isinstance(label, Manifest):
        starts = ", ".join(f"{r.partition}:{r.start}" for r in label.ranges)
        mode = "following it live (Ctrl-C stops)" if label.live else f"{label.total} records"
        print(f"reading {label.topic} from offsets {starts}: {mode}", file=sys.stderr, flush=True)
    started = time.monotonic()
    pipeline = beam.Pipeline(runner=profile_for("direct").runner(), options=PipelineOptions([]))
    out = pipeline | "Read" >> read
    targets = {"records": "stdout" if args.out == "-" else args.out, "dead": str(dead_path) if dead_path else "stderr"}
    for target in targets.values():
        if target not in ("stdout", "stderr"):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).write_text("")  # the writers append: start from an empty file
    (out["records"] | "ToLines" >> beam.ParDo(_RecordLineFn(schema))
     | "WriteRecords" >> beam.ParDo(AppendLinesFn(targets["records"], "read_records_written")))
    (out["dead_letters"] | "DeadToLines" >> beam.Map(lambda dead: json.dumps(dead.to_json()))
     | "WriteDeadLetters" >> beam.ParDo(AppendLinesFn(targets["dead"], "read_dead_written")))
    try:
        result = pipeline.run()
        result.wait_until_finish()
    finally:
        if isinstance(label, PubSubReadSettings):
            delete_replay_subscription(label)
    took = time.monotonic() - started
    counts = metric_counts(result)
    summary = {kind: counts.get(f"read_{kind}_written", 0) for kind in ("records", "dead")}
    print(f"read {summary['records']} records and {summary['dead']} dead letters "
          f"{'' if dead_path is None else f'(to {dead_path}) '}in {took:.1f}s", file=sys.stderr)
    return 0


def pubsub_settings(args, source, schema: str, bound_ms: int) -> PubSubReadSettings:
    """Live on the subscription itself (--to never from latest), else a seeked replay subscription."""
    import os

    from kappa.replay.points import Latest, Never, Now, parse_from, parse_to

    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    now_ms = int(time.time() * 1000)
    start, stop = parse_from(args.start, now_ms), parse_to(args.stop, now_ms)
    decoding = decoding_spec(args, schema).carried()  # contents, not the launcher's paths
    if isinstance(stop, Never):
        stop_ms = None
    elif isinstance(stop, Now):
        stop_ms = now_ms
    elif hasattr(stop, "ms"):
        stop_ms = stop.ms
    else:
        raise ReplayError(f"--to {stop}: a Pub/Sub read stops at now, never or an instant")
    subscription, owned = source.path, False
    if not isinstance(start, Latest) or stop_ms is not None:
        subscription, owned = prepare_replay(source.path, start, host), True
        print(f"replay subscription {subscription} seeked to --from {start} (deleted when the read ends)",
              file=sys.stderr)
    ahead = getattr(args, "max_event_time_ahead", DEFAULT_MAX_AHEAD_MS)
    return PubSubReadSettings(subscription, decoding, args.event_time, args.id_attribute, bound_ms, host, stop_ms,
                              max_event_time_ahead_ms=ahead, owned=owned)


class _RecordLineFn(beam.DoFn):
    """A source record as one JSON line: provenance, event time, key, and the value in JSON form."""

    def __init__(self, schema: str):
        self.schema = schema

    def setup(self):
        from kappa.schemas import make_codec
        from kappa.schemas.catalog import SCHEMA_NAMES

        schema = self.schema if self.schema in SCHEMA_NAMES else json.loads(Path(self.schema).read_text())
        self.json = make_codec("json", schema)

    def process(self, element):
        yield ('{"provenance":' + json.dumps(element.provenance.to_json())
               + ',"event_time":"' + format_instant(element.event_ms) + '"'
               + ',"key":' + json.dumps(element.key.decode("utf-8", "replace") if element.key else None)
               + ',"value":' + self.json.encode(element.value).decode() + "}")
