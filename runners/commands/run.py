"""``kappa replay`` and ``kappa live``: one pipeline, any source, any sink, any runner.

Everything the user typed is checked before any work starts (pipeline and window
settings, source and sink addresses, the runner's tools, a Flink master, the sink's
directory or broker); then the replay points are resolved into a manifest, saved in
the run directory, and the job runs:

* **replay**: a bounded read of the manifest's ranges; the runner runs it as a batch
  job where it can, and kappa shows a progress bar, then a summary.
* **live**: an unbounded read committing to the run's consumer group. Ctrl-C, SIGTERM
  or ``--stop-after`` *drains* the run: every reader stops where it is, every open
  window closes as in a replay, and the offsets consumed are saved as a bounded
  manifest (``<run-dir>/manifest.json``), so ``kappa replay --manifest`` reads exactly
  them again. A second Ctrl-C cancels instead. The drained manifest also keeps the
  run's clock marks (records read while a caught-up partition's watermark followed the
  clock, ``PartitionRange.clock_marks``), so the replay drops exactly the records the
  live run dropped, those the clock decided included.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import apache_beam as beam

from kappa.pipelines import PIPELINES, get_pipeline
from kappa.pipelines.transform import WINDOWING_FLAGS, TransformPipeline
from kappa.schemas.registry import is_url, public_location
from kappa.replay.errors import NoCommits, ReplayError
from kappa.replay.kafka_log import commit_offsets
from kappa.replay.manifest import Manifest
from kappa.replay.progress import RunChannel
from kappa.replay.remote_channel import DataflowRunChannel, FlinkRunChannel, MetricsChannel
from kappa.replay.pubsub_source import ReadFromPubSubReplay
from kappa.replay.sources import ArchiveSource, KafkaSource, PubSubSource, parse_source
from kappa.runners.errors import KappaError, UsageError
from kappa.runners.home import kappa_home
from kappa.runners.profiles import LOCAL_MASTER, DataflowSettings, RunnerSettings, local_workers, profile_for
from kappa.runners.progress_view import ProgressView, metric_counts, summary_lines
from kappa.runners.commands.plan import decoding_spec
from kappa.runners.commands.read import pubsub_settings
from kappa.runners.commands.run_flags import add_run_flags
from kappa.runners.sinks import ConsoleSink, FileSink, parse_dead_letter_sink, parse_sink
from kappa.transforms.config import SETTINGS, ConfigError, windowing_config
from kappa.transforms.durations import format_duration_ms
from kappa.transforms.windows import SessionWindows

__all__ = ["Job", "add_parsers", "build_pipeline", "prepare"]

REPLAY_EXAMPLES = """\
examples:
  kappa replay --pipeline merchant_totals --source kafka://127.0.0.1:9092/payment_msg \\
      --from 2026-11-20T09:00:00Z --to now --runner direct --sink file:out/totals.jsonl
  kappa replay --manifest .kappa/runs/merchant_totals-20261121T090000Z/manifest.json --sink file:out/replay.jsonl
  kappa replay --pipeline user_sessions --source file:archive/commerce.jsonl --format json --runner flink
  kappa replay --config jobs/totals.toml --runner dataflow --project p --region europe-west1 \\
      --temp-location gs://bucket/tmp --dry-run --job-file job.json
"""

LIVE_EXAMPLES = """\
examples:
  kappa live --pipeline merchant_totals --source kafka://127.0.0.1:9092/payment_msg --sink file:out/live.jsonl
  kappa live --pipeline merchant_totals --source kafka://HOST:PORT/payment_msg --from group:merchant-totals \\
      --runner flink --sink kafka://HOST:PORT/merchant_totals
  kappa live --pipeline merchant_totals --source kafka://127.0.0.1:9092/payment_msg --early-firing 10s \\
      --stop-after 2m --sink console
Stopping (Ctrl-C, SIGTERM or --stop-after) drains the run and saves the offsets it consumed as
<run-dir>/manifest.json: `kappa replay --manifest` of that file gives the same final windows.
"""


def add_parsers(subparsers) -> None:
    replay = subparsers.add_parser(
        "replay", help="run a pipeline over history: a bounded replay of the log from a chosen point",
        description="Resolve --from/--to into a manifest (saved in the run directory), read exactly those records "
                    "through the pipeline and write its results to the sink. Runs as a batch job; shows progress and "
                    "ends with a summary.",
        epilog=REPLAY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_flags(replay, "replay")
    replay.set_defaults(run=run_replay)
    live = subparsers.add_parser(
        "live", help="run a pipeline over live data, until drained (Ctrl-C) or --stop-after",
        description="Follow the log from --from on a streaming runner, committing progress to the run's consumer "
                    "group once results are durable. Shows the watermark and the lag per partition.",
        epilog=LIVE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_flags(live, "live")
    live.set_defaults(run=run_live)


@dataclass
class Job:
    """A checked, resolved run: what ``build_pipeline`` needs, and how to launch it."""

    pipeline: beam.PTransform
    read: beam.PTransform
    sink: object
    dead_sink: object
    profile: object
    runner_settings: RunnerSettings
    live: bool
    run_dir: Path
    channel: RunChannel
    manifest: Manifest | None
    source_text: str
    group: str | None = None  #: live Kafka runs: the consumer group they commit to
    durable: object = None  #: live Kafka runs: their commit ledger (replay/durable.py CommitSpec)


def run_replay(args) -> int:
    return _run(prepare(args, live=False), args)


def run_live(args) -> int:
    return _run(prepare(args, live=True), args)


def prepare(args, live: bool) -> Job:
    """Check every input, then resolve the source; raises UsageError/KappaError naming the problem."""
    manifest_in = Manifest.load(args.manifest) if getattr(args, "manifest", None) else None
    if manifest_in is not None and manifest_in.live:
        raise UsageError(f"--manifest {args.manifest}: a live manifest has no end; replay a drained run's manifest.json")
    name = args.pipeline or (manifest_in.pipeline.get("name") if manifest_in else None)
    if not name:
        raise UsageError("--pipeline: which pipeline? (choose from " + ", ".join(sorted(PIPELINES)) + ")")
    saved = manifest_in.pipeline.get("settings", {}) if manifest_in else {}
    overrides = {**saved, **{s: getattr(args, s) for s in SETTINGS if getattr(args, s) is not None}}
    try:
        pipeline_class = get_pipeline(name)
        if issubclass(pipeline_class, TransformPipeline):
            _own_windowing(args, name, live)
        pipeline = pipeline_class(replace(windowing_config(pipeline_class.DEFAULTS, overrides), bounded=not live))
    except ConfigError as err:
        raise UsageError(str(err)) from None
    config = pipeline.config
    if manifest_in is None and not args.source:
        raise UsageError("--source: where to read from? (kafka://HOST:PORT/TOPIC, pubsub://PROJECT/SUBSCRIPTION, "
                         "file:PATH" + ("" if live else ", or --manifest FILE") + ")")
    try:
        source = None if manifest_in else parse_source(args.source)
    except ReplayError as err:
        raise UsageError(str(err)) from None
    if live and isinstance(source, ArchiveSource):
        raise UsageError(f"--source {args.source}: an archive file is history; use `kappa replay` for it")
    sink = parse_sink(args.sink, "--sink")
    if live and isinstance(sink, FileSink):  # window files are compacted at close (runners/sinks/live_files.py)
        sink = replace(sink, allowed_lateness_ms=config.allowed_lateness_ms,
                       sessions=isinstance(config.window, SessionWindows))  # a restart's orphan session panes go
    dead_sink = parse_dead_letter_sink(args.dead_letter) if args.dead_letter else sink.dead_letter_default()
    if args.runner == "dataflow" and not args.dry_run and isinstance(sink, (FileSink, ConsoleSink)):
        raise UsageError(f"--sink {args.sink}: Dataflow workers would write it on their own disks; "
                         "use kafka:// or pubsub://")
    settings = _runner_settings(args, pipeline.name)
    profile = profile_for(args.runner)
    profile.preflight(settings, live)
    sink.preflight(args.timeout)
    dead_sink.preflight(args.timeout)

    run_dir = args.run_dir or kappa_home() / "runs" / f"{pipeline.name}-{_stamp()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    channel = _run_channel(settings, run_dir)
    if live:
        pipeline.run_channel = channel  # the windowing marks the runner's clock decisions there
    schema = args.schema or pipeline.input_schema
    described = {"name": name, "settings": {s: v for s, v in overrides.items() if v is not None}}
    group = _live_group(args, pipeline.name) if live and isinstance(source, KafkaSource) else None
    if manifest_in is not None:
        manifest = replace(manifest_in, pipeline=described, ranges=tuple(_still_there(manifest_in, args)))
        if args.registry and manifest.decoding.registry:  # the same schemas, from another registry
            manifest = replace(manifest, decoding=replace(manifest.decoding, registry=public_location(args.registry)))
        if args.schema:  # the same records through another reader schema (an evolved one, a fix)
            manifest = replace(manifest, decoding=replace(manifest.decoding, schema=args.schema))
    elif isinstance(source, KafkaSource):
        manifest = _plan(args, source, schema, config.max_out_of_orderness_ms, group, described)
    else:
        manifest = None
    if not live and manifest is not None:
        _registry_exists(manifest)
    durable = None
    # Workers elsewhere cannot reach the launcher's commit ledger: such a run commits when it drains.
    if group is not None and manifest is not None and not settings.workers_elsewhere:
        manifest, durable = _durable_commits(args, manifest, group, config, run_dir)
        pipeline.durable = durable
    read = _read_transform(args, source, manifest, schema, config.max_out_of_orderness_ms, live, group, channel,
                           batched=getattr(pipeline, "takes_record_batches", False), durable=durable)
    if live and isinstance(source, PubSubSource) and not read.settings.owned:  # the subscription itself
        durable, hold_until = _durable_acks(source, config, run_dir)
        read = ReadFromPubSubReplay(replace(read.settings, durable=durable, hold_until=hold_until))
        pipeline.durable = durable
    if manifest is not None:
        manifest.save(run_dir / ("live-manifest.json" if live else "manifest.json"))
    if settings.parallelism is None and not live and _local_batch(settings):
        settings = replace(settings, parallelism=local_workers(len(manifest.ranges), manifest.total) if manifest else 1)
    return Job(pipeline, read, sink, dead_sink, profile, settings, live, run_dir, channel, manifest,
               str(source or args.manifest), group, durable)


def _own_windowing(args, name: str, live: bool) -> None:
    """A PTransform pipeline windows by itself and cannot say when its results are durable."""
    if live:
        raise UsageError(f"--pipeline {name}: a PTransform runs in replays only (kappa cannot tell when its "
                         "results are final and written, so a live run could not commit safely); write a "
                         "WindowedPipeline for live runs")
    given = [s for s in WINDOWING_FLAGS if getattr(args, s, None) is not None]
    if given:
        raise UsageError(f"--{given[0].replace('_', '-')}: {name} is a PTransform that windows by itself; "
                         "the windowing flags are a WindowedPipeline's")


def _local_batch(settings: RunnerSettings) -> bool:
    """Whether a replay runs on this machine with workers kappa may start as processes."""
    return settings.runner == "direct" or (settings.runner == "flink" and settings.flink_master == LOCAL_MASTER
                                           and settings.environment_type is None)


def _run_channel(settings: RunnerSettings, run_dir: Path) -> RunChannel:
    """The run directory where the workers share it; else the runner's own ways (replay/remote_channel.py)."""
    if not settings.workers_elsewhere:
        return RunChannel(run_dir)
    if settings.runner == "dataflow":
        return DataflowRunChannel(run_dir)
    return FlinkRunChannel(run_dir, settings.flink_master, settings.job_name)


def _registry_exists(manifest: Manifest) -> None:
    """A replay of Confluent-format records needs its registry file: a missing one would
    read as empty and turn every record into a decode_error dead letter."""
    decoding, registry = manifest.decoding, manifest.decoding.registry
    if (decoding.format == "confluent" and registry and not is_url(registry) and not Path(registry).exists()
            and any(r.stop is None or r.stop > r.start for r in manifest.ranges)):
        raise UsageError(f"--registry {registry}: no such schema registry file, so no record could be decoded "
                         "(give the file `kappa produce` wrote, or an https:// registry)")


def _durable_acks(source: PubSubSource, config, run_dir: Path):
    """A live Pub/Sub run's ledger: messages are acked once durably done; F, what was
    final at the last acks, is kept in kappa's state for the subscription's next run."""
    import os

    from kappa.replay.durable import HELD_DEADLINE_S, CommitSpec, StartPoint, start_pubsub_run

    final_file = kappa_home() / "pubsub-commits" / f"{source.project}.{source.subscription}.json"
    final, held = start_pubsub_run(str(final_file))
    spec = CommitSpec(str(run_dir.absolute()), "", "", "", config.window, config.allowed_lateness_ms, final,
                      {"pubsub": StartPoint(0)}, subscription=source.path,
                      emulator_host=os.environ.get("PUBSUB_EMULATOR_HOST"), final_file=str(final_file))
    if held:
        print(f"kappa: the last run on {source} did not drain: its held messages come back within "
              f"{HELD_DEADLINE_S + 5} s, and the watermark waits for them", file=sys.stderr)
    return spec, (time.time() + HELD_DEADLINE_S + 5 if held else None)


def _durable_commits(args, manifest: Manifest, group: str, config, run_dir: Path):
    """A live Kafka run's commit ledger (replay/durable.py), continuing the group's last
    commit where the run starts at it: the log's watermark there, and what was final."""
    from kappa.replay.durable import CommitSpec, StartPoint, read_commit_metadata
    from kappa.replay.kafka_log import KafkaTopicLog

    with KafkaTopicLog(manifest.bootstrap, manifest.topic, manifest.isolation_level, args.timeout) as log:
        commits = log.commit_metadata(group, [r.partition for r in manifest.ranges])
    ranges, finals = [], []
    for r in manifest.ranges:
        offset, metadata = commits.get(r.partition, (None, None))
        newest, final = read_commit_metadata(metadata) if offset == r.start else (None, None)
        ranges.append(replace(r, start_newest_ms=newest))
        if final is not None:
            finals.append(final)
    manifest = replace(manifest, ranges=tuple(ranges))
    spec = CommitSpec(str(run_dir.absolute()), manifest.bootstrap, group, manifest.topic, config.window,
                      config.allowed_lateness_ms, min(finals, default=None),
                      {r.partition: StartPoint(r.start, r.start_newest_ms) for r in ranges})
    return manifest, spec


def _still_there(manifest: Manifest, args):
    """The manifest's ranges as the log holds them now (retention may have deleted starts)."""
    from kappa.replay.kafka_log import KafkaTopicLog
    from kappa.replay.resolve import check_ranges_still_there

    with KafkaTopicLog(manifest.bootstrap, manifest.topic, manifest.isolation_level, args.timeout) as log:
        try:
            return check_ranges_still_there(log, manifest.ranges, args.on_missing_offsets)
        except ReplayError as err:
            raise ReplayError(f"--manifest {args.manifest}: {err}") from None


def _runner_settings(args, name: str) -> RunnerSettings:
    dataflow = DataflowSettings(
        args.project, args.region, args.temp_location, args.staging_location, args.streaming_engine,
        args.num_workers, args.max_num_workers, args.machine_type, args.disk_size_gb, args.service_account,
        args.network, args.subnetwork, args.sdk_container_image, args.requirements_file, args.setup_file,
        args.dry_run, args.job_file)
    job_name = args.job_name or f"kappa-{name.replace('_', '-')}-{_stamp().lower()}"
    return RunnerSettings(args.runner, args.flink_master, args.parallelism, args.environment_type,
                          args.environment_config, job_name, dataflow, args.timeout)


def _plan(args, source: KafkaSource, schema: str, bound_ms: int, group: str | None, described: dict) -> Manifest:
    """A replay's manifest; a live run's (stop ``never``), starting where ``group`` stands if it has commits."""
    from kappa.replay.plan import plan_kafka_replay

    decoding = decoding_spec(args, schema, source.topic)

    def plan(start: str, stop: str) -> Manifest:
        return plan_kafka_replay(source.bootstrap, source.topic, start, stop, decoding, args.event_time, bound_ms,
                                 args.on_missing_offsets, args.isolation_level, described, timeout_s=args.timeout)

    if group is None:
        return plan(args.start, args.stop)
    if args.start is not None:
        return plan(args.start, "never")
    try:
        # Partitions the group has no commit for start by --on-missing-offsets (error by default).
        return plan(f"group:{group}", "never")
    except NoCommits:
        print(f"kappa: consumer group {group} has no commits on {source.topic}: a new group starts at the end of "
              "the log (--from earliest reads the backlog)", file=sys.stderr)
        return plan("latest", "never")


def _live_group(args, name: str) -> str:
    """The consumer group a live Kafka run commits to: --group, else the --from group, else kappa-<pipeline>."""
    if args.group:
        return args.group
    if (args.start or "").startswith("group:"):
        return args.start[len("group:"):]
    return f"kappa-{name}"


def _read_transform(args, source, manifest, schema, bound_ms, live, group, channel, batched=False, durable=None):
    from kappa.replay.archive_source import ReadArchive
    from kappa.replay.kafka_source import ReadFromKafkaReplay
    from kappa.replay.pubsub_source import ReadFromPubSubReplay

    if manifest is not None:
        return ReadFromKafkaReplay(manifest, commit_group=group, channel=channel, durable=durable,
                                   max_event_time_ahead_ms=args.max_event_time_ahead, batched=batched and not live)
    if isinstance(source, PubSubSource):
        if live:
            args.start, args.stop = args.start or "latest", "never"
        return ReadFromPubSubReplay(replace(pubsub_settings(args, source, schema, bound_ms), channel=channel))
    return ReadArchive([source.path], schema, args.event_time, bound_ms)


def build_pipeline(p: beam.Pipeline, job: Job) -> None:
    """Source -> pipeline -> sink, with every dead letter (source's and pipeline's) to the dead-letter sink."""
    read = p | "Read" >> job.read
    out = read["records"] | "Pipeline" >> job.pipeline
    results_written = job.sink.write_results(out["results"], job.live)
    dead = (read["dead_letters"], out["dead_letters"]) | "AllDeadLetters" >> beam.Flatten()
    dead_written = job.dead_sink.write_dead_letters(dead, job.live)
    if job.durable is not None:  # commits follow the watermark after both sinks
        from kappa.replay.durable import probe_durable

        probe_durable(p, [results_written, dead_written], job.durable)


def _run(job: Job, args) -> int:
    from kappa.replay.pubsub_source import ReadFromPubSubReplay, delete_replay_subscription

    try:
        return _run_job(job, args)
    finally:
        if isinstance(job.read, ReadFromPubSubReplay):
            delete_replay_subscription(job.read.settings)


def _run_job(job: Job, args) -> int:
    log = _beam_log_to(job.run_dir / "beam.log")
    say = lambda text: print(f"kappa: {text}", file=sys.stderr, flush=True)  # noqa: E731
    what = f"{job.manifest.total:,} offsets of {job.manifest.topic}" if job.manifest and not job.live else job.source_text
    say(f"{'live' if job.live else 'replay'} {job.pipeline.name} on {job.profile.name}: {what}")
    say(job.pipeline.config.describe())
    say(f"results -> {job.sink.describe()}; dead letters -> {job.dead_sink.describe()}; run dir {job.run_dir}")
    options = job.profile.options(job.runner_settings, job.live)
    started = time.monotonic()
    p = beam.Pipeline(runner=job.profile.runner(), options=options)
    build_pipeline(p, job)
    # No bar for a replay on remote workers: Beam's Flink batch stages report their metrics only
    # as they finish, and a bar at 0% until the end would say nothing true.
    bar = job.manifest if job.live or not job.runner_settings.workers_elsewhere else None
    view = ProgressView(job.channel, bar, job.live)
    try:
        with (view if not args.quiet else _Nothing()):
            result = p.run()
            if isinstance(job.channel, MetricsChannel):
                job.channel.attach(result)  # the readers report through the job's metrics
            # Beam's job-server wrapper took SIGINT to stop its server before anything else;
            # kappa's own handler (SIGTERM's) takes it back: the server ends with kappa.
            if callable(signal.getsignal(signal.SIGTERM)) and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.getsignal(signal.SIGTERM))
            if job.runner_settings.dataflow.dry_run:
                return _dry_run_done(result, job, say)
            if job.live:
                _follow(result, job, args, say)
            else:
                result.wait_until_finish()
    except (KappaError, ReplayError, KeyboardInterrupt):
        raise
    except Exception as err:  # the runner's report of a failed job: name its cause, keep the details in the log
        logging.getLogger("apache_beam").exception("the job failed")
        raise KappaError(f"the job failed: {_cause(str(err), log) or type(err).__name__} (details: {log.path})") from None
    state = str(result.state)
    for line in summary_lines(metric_counts(result), time.monotonic() - started):
        say(line)
    if job.live and job.durable is not None and job.durable.subscription is not None and "DONE" in state:
        from kappa.replay.durable import ledger

        ledger(job.durable).drained()  # every message pulled is in a written result: ack them all
    if job.live and job.manifest is not None:
        if "DONE" in state and isinstance(job.channel, MetricsChannel) and not job.channel.drain_requested:
            say("the job was stopped outside kappa (a stop that may not have drained): no replay manifest saved, "
                "nothing committed; the group keeps its last commit")
        elif "DONE" in state:  # drained to the end: every result written
            _save_drained_manifest(job, say)
        else:  # cancelled: what the windows held was not written; the group keeps its last durable commit
            say(f"the job ended {state}: no replay manifest saved; the group keeps its last commit (records "
                "durably done), so the next run rebuilds the open windows")
    if "DONE" not in state and not (job.live and "CANCELLED" in state):
        cause = _cause("", log) if "FAILED" in state else None
        raise KappaError(f"the job ended {state}{f': {cause}' if cause else ''} (details: {log.path})")
    return 0


def _dry_run_done(result, job: Job, say) -> int:
    job_file = job.runner_settings.dataflow.job_file
    if job_file:  # Beam writes it only when it submits
        from kappa.runners.dataflow_job import job_json

        Path(job_file).write_text(job_json(result.job) + "\n")
    say("dry run: the Dataflow job was built and checked, not submitted"
        + (f"; its description is in {job_file}" if job_file else ""))
    return 0


@dataclass(frozen=True)
class RunLog:
    """A run's log file, and where this run's lines begin in it: a run directory used again
    keeps the earlier runs' lines, and a failure must not be named after one of theirs."""

    path: Path
    start: int = 0

    def lines(self) -> list[str]:
        try:
            with self.path.open("rb") as log:
                log.seek(self.start)
                return log.read().decode(errors="replace").splitlines()
        except OSError:
            return []


def _beam_log_to(path: Path) -> RunLog:
    """Beam's and the runners' logs (worker tracebacks included) go to the run directory;
    the terminal keeps kappa's own lines, and a failure names its cause and this file."""
    start = path.stat().st_size if path.exists() else 0
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "kappa_run_log", False):
            root.removeHandler(handler)
            handler.close()
        elif isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.CRITICAL)  # Beam's basicConfig handler on stderr
    handler = logging.FileHandler(path)
    handler.kappa_run_log = True
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in root.handlers):
        quiet = logging.StreamHandler()
        quiet.setLevel(logging.CRITICAL)
        root.addHandler(quiet)  # else Beam's basicConfig would add a chatty one later
    return RunLog(path, start)


def _cause(report: str, log: RunLog) -> str | None:
    """The most telling line of a job failure: a kappa error raised in a worker (the
    runner's report may only reach the log), else the report's last 'XError: ...' (the
    log's, when the runner reported nothing)."""
    reported = [line.strip() for line in report.splitlines() if line.strip()]
    logged = [line.strip() for line in log.lines()]
    for marker in ("LostState: ", "ReplayError: ", "KappaError: "):
        for line in reported + logged:
            if marker in line:
                return line.split(marker, 1)[1][:600]
    errors = [line for line in (reported or logged) if re.match(r"^[\w.]*(Error|Exception): ", line)]
    if errors:
        return errors[-1][:600]
    return reported[-1][:600] if reported else None


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _follow(result, job: Job, args, say) -> None:
    """Wait for a stop request (signal or --stop-after), then drain; a second request cancels."""
    requests = threading.Event()
    count = [0]

    def on_signal(signum, frame):
        count[0] += 1
        requests.set()
        if count[0] > 1:
            say("stopping now (cancel)")
            result.cancel()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        deadline = None if args.stop_after is None else time.monotonic() + args.stop_after / 1000
        say("running; Ctrl-C drains and stops" + (f" (or after {format_duration_ms(args.stop_after)})"
                                                  if args.stop_after else ""))
        while not requests.is_set() and not _terminal(result):
            if deadline is not None and time.monotonic() >= deadline:
                break
            requests.wait(1.0)
        if not _terminal(result):
            say("draining: readers stop where they are, open windows close (Ctrl-C again cancels)")
            try:
                job.channel.request_stop()
            except ReplayError as err:
                say(f"the runner did not take the drain ({err}): cancelling instead")
                result.cancel()
            result.wait_until_finish()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _terminal(result) -> bool:
    return any(word in str(result.state) for word in ("DONE", "FAILED", "CANCELLED", "STOPPED", "DRAINED"))


def _save_drained_manifest(job: Job, say) -> None:
    positions = job.channel.positions()
    undrained = [r.partition for r in job.manifest.ranges
                 if not positions.get(f"{r.topic}-{r.partition}", {}).get("drained")]
    if undrained:
        say(f"partitions {undrained} were not drained (the run was cancelled or failed): no replay manifest saved")
        return
    recorded = job.channel.clock_marks()
    ranges = []
    for r in job.manifest.ranges:
        name = f"{r.topic}-{r.partition}"
        stop = positions[name]["position"]
        ranges.append(replace(r, stop=stop, stop_selector=f"drained at {stop}",
                              clock_marks=_clock_marks(recorded.get(name, ()), r.start, stop)))
    drained = replace(job.manifest, ranges=tuple(ranges), to_point="drained")
    path = job.run_dir / "manifest.json"
    drained.save(path)
    marked = sum(len(r.clock_marks) for r in ranges)
    unrecorded = job.channel.unrecorded_marks() if isinstance(job.channel, MetricsChannel) else 0
    if unrecorded:
        say(f"{unrecorded:,} records met a watermark the clock had moved past the log's, and a remote run cannot "
            "record those yet: the replay may decide their fate differently (kappa verify --exclude-too-late)")
    if marked:
        say(f"{marked:,} records met a watermark the clock had moved past the log's (a caught-up partition's, or "
            "a runner's that did not wait for them): the manifest records those watermarks so the replay decides "
            "their fate the same")
    # The pipeline has finished, so every result is durable: the next live run of the group
    # starts exactly here, whether or not the runner finalized bundles while it ran.
    commit_offsets(drained.bootstrap, job.group, drained.topic, {r.partition: r.stop for r in ranges},
                   metadata=_drained_metadata(job))
    say(f"committed the drained offsets to consumer group {job.group}")
    say(f"the live run read {drained.total:,} offsets; replay exactly them with: kappa replay --manifest {path}")


def _drained_metadata(job: Job) -> dict[int, str]:
    """The drained commit's metadata: the log's watermark at each partition's end, so the
    next run's cutoffs continue from it. Nothing is marked final: a drain closed its windows
    early, and the next run's records for them form new panes."""
    from kappa.replay.durable import commit_metadata, ledger

    if job.durable is None:
        return {}
    partitions = ledger(job.durable).partitions
    return {p: commit_metadata(part.newest_ms, None) for p, part in partitions.items()}


def _clock_marks(recorded, start: int, stop: int) -> tuple[tuple[int, int], ...]:
    """A partition's clock marks for the drained range ``[start, stop)``, by offset; an offset
    recorded twice (a retried bundle read it again, later) keeps its greatest watermark."""
    marks: dict[int, int] = {}
    for offset, watermark_ms in recorded:
        if start <= offset < stop:
            marks[offset] = max(watermark_ms, marks.get(offset, watermark_ms))
    return tuple(sorted(marks.items()))


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
