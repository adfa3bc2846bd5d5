"""The flags of ``kappa live`` and ``kappa replay``, and the TOML config file that can
hold any of them (flags given on the command line win over the file).

A config file uses the flags' long names, dashes or underscores alike; tables only
group keys for the reader (``[dataflow] project = "p"`` is ``--project p``), except
``[kafka]``, whose keys are librdkafka settings (``--kafka-option``)::

    pipeline = "merchant_totals"
    source = "kafka://127.0.0.1:9092/payment_msg"
    runner = "flink"
    window = "1m"
    [dataflow]
    region = "europe-west1"
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from kappa.pipelines import PIPELINES
from kappa.runners import cliargs
from kappa.runners.errors import UsageError
from kappa.runners.home import default_registry_path
from kappa.runners.profiles import RUNNERS
from kappa.replay.resolve import ON_MISSING
from kappa.schemas.catalog import SCHEMA_NAMES
from kappa.schemas.codec import FORMATS
from kappa.transforms.event_time import DEFAULT_MAX_AHEAD_MS

__all__ = ["add_run_flags", "preload_config"]

_PARSERS: dict[str, argparse.ArgumentParser] = {}


def add_run_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """Every flag of ``kappa <command>`` (live or replay), in groups."""
    _PARSERS[command] = parser
    live = command == "live"
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML file holding any of these flags by their long names; flags given here win "
                             "(e.g. --config jobs/merchant_totals.toml)")

    what = parser.add_argument_group("pipeline")
    what.add_argument("--pipeline", metavar="NAME", help="the pipeline to run: " + ", ".join(sorted(PIPELINES))
                      + ", or your own WindowedPipeline subclass as my_package.my_module:MyPipeline or "
                        "path/to/file.py:MyPipeline (e.g. --pipeline merchant_totals)")
    what.add_argument("--window", help="window: fixed:1m | sliding:5m/1m | session:30s (default: the pipeline's)")
    what.add_argument("--allowed-lateness", metavar="DURATION", help="how long after a window's end late data still "
                      "updates it, e.g. 5m (default: the pipeline's); later data goes to the dead letters as too_late")
    what.add_argument("--trigger", help="watermark | count:N | processing-time:30s (default watermark)")
    what.add_argument("--early-firing", metavar="DURATION", help="watermark trigger: an early pane at most this "
                      "often while a window is open, e.g. 10s")
    what.add_argument("--late-firing", metavar="SPEC", help="watermark trigger: a late pane per late element "
                      "(element) or every N (count:N)")
    what.add_argument("--accumulation", choices=["accumulating", "discarding"], help="panes repeat earlier data "
                      "(accumulating, default) or only what is new")
    what.add_argument("--max-out-of-orderness", metavar="DURATION", help="watermark bound: max event time seen "
                      "minus this, e.g. 30s (default: the pipeline's)")

    cliargs.add_kafka_flags(parser)
    source = parser.add_argument_group("source")
    source.add_argument("--source", help="kafka://HOST:PORT/TOPIC | pubsub://PROJECT/SUBSCRIPTION | file:PATH "
                        "(.jsonl or .avro archive), e.g. --source kafka://127.0.0.1:9092/payment_msg")
    if live:
        source.add_argument("--from", dest="start", default=None,
                            help="where to start: group:<id> (where that consumer group stands), latest, earliest, "
                                 "an ISO-8601 instant, -PT1H (default: group:<--group> if it has commits, else latest)")
        source.add_argument("--group", help="consumer group the live run commits its progress to, once results are "
                                            "durable (default: the --from group, else kappa-<pipeline>)")
        source.add_argument("--stop-after", type=cliargs.duration_ms, metavar="DURATION",
                            help="drain and stop after this long, e.g. 2m (default: run until Ctrl-C / SIGTERM)")
    else:
        source.add_argument("--from", dest="start", default="earliest",
                            help="earliest | latest | ISO-8601 instant | -PT6H | offsets:0=12,1=30 | group:<id> | "
                                 "snapshot:<name> (Pub/Sub) (default earliest)")
        source.add_argument("--to", dest="stop", default="now",
                            help="now | ISO-8601 instant | +PT1H | offsets:0=99,1=120 (default now: the log's end "
                                 "at launch)")
        source.add_argument("--manifest", type=Path, metavar="FILE", help="replay exactly the ranges of this saved "
                            "manifest (kappa plan --save, or a live run's run-dir/manifest.json) instead of --source")
    source.add_argument("--format", choices=FORMATS, default="confluent", help="value encoding (default confluent)")
    source.add_argument("--schema", help=f"reader schema: {', '.join(SCHEMA_NAMES)} or an .avsc file "
                                         "(default: the pipeline's input schema)")
    cliargs.add_registry_flags(source, default_registry_path())
    source.add_argument("--event-time", default="field:timestamp", help="field:<name> | create_time | "
                        "log_append_time | publish_time | attribute:<name> (default field:timestamp)")
    source.add_argument("--max-event-time-ahead", type=cliargs.duration_ms, default=DEFAULT_MAX_AHEAD_MS,
                        metavar="DURATION", help="an event time further ahead of its record's broker timestamp is a "
                        "future_event_time dead letter and does not move the watermark (default 1d)")
    source.add_argument("--on-missing-offsets", choices=ON_MISSING, default="error",
                        help="offsets deleted by retention, or a group without commits: fail (default) or start at "
                             "the log start")
    source.add_argument("--isolation-level", choices=["read_committed", "read_uncommitted"], default="read_committed",
                        help="transactional records: committed only (default) or all")
    source.add_argument("--id-attribute", help="Pub/Sub: deduplicate by this attribute (default: the message id)")

    out = parser.add_argument_group("output")
    out.add_argument("--sink", default="console",
                     help="where results go: file:out/totals.jsonl (.avro; one file per window) | "
                          "kafka://HOST:PORT/TOPIC | pubsub://projects/P/topics/T | console (default console)")
    out.add_argument("--dead-letter", metavar="SINK", help="where dead letters go (default: beside the sink: "
                     "file:out/totals.dead.jsonl, topic TOPIC.dead-letters, or stderr for the console)")
    out.add_argument("--run-dir", type=Path, help="the run's directory: manifest, progress, stop request "
                                                  "(default .kappa/runs/<pipeline>-<time>)")
    out.add_argument("--quiet", action="store_true", help="no progress display, only the summary")

    run = parser.add_argument_group("runner")
    run.add_argument("--runner", choices=RUNNERS, default="prism" if live else "direct",
                     help=f"where the pipeline runs (default {'prism' if live else 'direct'}); e.g. --runner flink")
    run.add_argument("--flink-master", default="[local]", metavar="HOST:PORT",
                     help="Flink JobManager REST address, or [local] for an embedded Flink (default [local])")
    run.add_argument("--parallelism", type=cliargs.positive_int, help="worker parallelism (Flink, direct); a replay on direct or the embedded Flink defaults to a worker process per core, up to the number of partitions, and to one in kappa's own process below 250,000 records")
    run.add_argument("--environment-type", choices=["LOOPBACK", "PROCESS", "EXTERNAL", "DOCKER"],
                     help="how workers run the Python SDK (default LOOPBACK: in this process; a remote Flink "
                          "needs PROCESS, EXTERNAL or DOCKER)")
    run.add_argument("--environment-config", help="the SDK environment's config, e.g. an image or a command")
    run.add_argument("--job-name", help="job name shown by the runner (default kappa-<pipeline>-<time>)")
    run.add_argument("--timeout", type=cliargs.positive_float, default=10.0, metavar="SECONDS",
                     help="how long to wait for brokers and masters to answer before work starts (default 10)")

    df = parser.add_argument_group("dataflow (--runner dataflow)")
    df.add_argument("--project", help="Google Cloud project")
    df.add_argument("--region", help="Dataflow region, e.g. europe-west1")
    df.add_argument("--temp-location", metavar="GS_PATH", help="gs://BUCKET/tmp for temporary files")
    df.add_argument("--staging-location", metavar="GS_PATH", help="gs://BUCKET/staging (default TEMP/staging)")
    df.add_argument("--no-streaming-engine", dest="streaming_engine", action="store_false",
                    help="live runs: do not use Dataflow's Streaming Engine")
    df.add_argument("--num-workers", type=cliargs.positive_int, help="initial number of workers")
    df.add_argument("--max-num-workers", type=cliargs.positive_int, help="autoscaling ceiling")
    df.add_argument("--machine-type", help="worker machine type, e.g. n2-standard-4")
    df.add_argument("--disk-size-gb", type=cliargs.positive_int, help="worker disk size")
    df.add_argument("--service-account", help="worker service account e-mail")
    df.add_argument("--network", help="VPC network")
    df.add_argument("--subnetwork", help="subnetwork, e.g. regions/europe-west1/subnetworks/dataflow")
    df.add_argument("--sdk-container-image", help="worker image (default: Beam's for this SDK version)")
    df.add_argument("--requirements-file", help="extra packages for the workers")
    df.add_argument("--setup-file", help="package staged to the workers (default: kappa's pyproject.toml)")
    df.add_argument("--dry-run", action="store_true", help="build and check the Dataflow job offline; do not submit")
    df.add_argument("--job-file", help="write the Dataflow job description (JSON) to this file")


def preload_config(argv: list[str]) -> None:
    """Turn a ``--config`` file's settings into the sub-command's defaults (before parsing)."""
    if not argv or argv[0] not in _PARSERS:
        return
    path = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
    if path is None:
        return
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as err:
        raise UsageError(f"--config {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"--config {path}: not valid TOML ({err})") from None
    parser = _PARSERS[argv[0]]
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    defaults = {}
    kafka = data.pop("kafka", None)
    if isinstance(kafka, dict):  # [kafka] "security.protocol" = "SASL_SSL": librdkafka settings
        defaults["kafka_option"] = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in kafka.items()]
    for key, value in _flatten(data).items():
        dest = key.replace("-", "_")
        dest = {"from": "start", "to": "stop"}.get(dest, dest)
        action = actions.get(dest)
        if action is None:
            raise UsageError(f"--config {path}: {key!r} is not a flag of `kappa {argv[0]}`")
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise UsageError(f"--config {path}: {key} takes true or false")
            defaults[dest] = value
        elif isinstance(action, argparse._AppendAction):
            defaults[dest] = [str(v) for v in (value if isinstance(value, list) else [value])]
        elif action.choices and str(value) not in action.choices:
            raise UsageError(f"--config {path}: {key} {value!r} is not one of {', '.join(map(str, action.choices))}")
        else:
            defaults[dest] = str(value)  # parsed and checked by the flag's own type, as if typed
    parser.set_defaults(**defaults)


def _flatten(data: dict) -> dict:
    out = {}
    for key, value in data.items():
        out.update(_flatten(value) if isinstance(value, dict) else {key: value})
    return out
