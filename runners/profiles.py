"""Runner profiles: one set of flags (:class:`RunnerSettings`) turned into the
PipelineOptions of each runner, so the same pipeline object runs unchanged on all.

=========  ==========================================  =============================
runner     replay (bounded)                            live (unbounded)
=========  ==========================================  =============================
direct     batch job (Beam's FnApiRunner), a worker    no: it cannot stream; use prism
           process per core and partition
prism      Beam's prism, batch                         Beam's prism, streaming
flink      embedded Flink or ``--flink-master``        streaming, same
dataflow   Google Cloud Dataflow (or ``--dry-run``)    streaming, streaming engine
=========  ==========================================  =============================

Local runners run the SDK harness inside kappa's process (LOOPBACK), which is what
lets a live run be drained on request and show its progress through the run directory.
A remote Flink's workers are started by its TaskManagers: ``--environment-type PROCESS``
without ``--environment-config`` runs Beam's boot program with this installation's
Python (``runners/local/tools.process_environment``), for clusters whose machines have
kappa installed at the same place; draining and progress then go through Flink's REST
API (``replay/remote_channel.py``). ``preflight`` checks
everything a runner needs before any work starts (a tool not installed, a Flink
master that does not answer, a Dataflow option missing) and raises a one-line error.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import socket
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

from kappa.runners.errors import KappaError, UsageError
from kappa.runners.local.tools import (FLINK_VERSION, flink_job_server_jar, prism_binary, process_environment,
                                      python_boot_binary)

__all__ = ["PROFILES", "RUNNERS", "DataflowSettings", "RunnerSettings", "local_workers", "profile_for"]

RUNNERS = ("direct", "prism", "flink", "dataflow")
#: the longest a live run's bundle lasts on Flink (its option maxBundleTimeMills; default 1000)
LIVE_FLINK_BUNDLE_MS = 100
#: The embedded Flink's heap in a live run (``_quick_jvm_start``).
LIVE_FLINK_HEAP = "1g"
_REPO = Path(__file__).resolve().parents[1]
LOCAL_MASTER = "[local]"


@dataclass(frozen=True)
class DataflowSettings:
    project: str | None = None
    region: str | None = None
    temp_location: str | None = None
    staging_location: str | None = None  #: default: temp_location + /staging
    streaming_engine: bool = True
    num_workers: int | None = None
    max_num_workers: int | None = None
    machine_type: str | None = None
    disk_size_gb: int | None = None
    service_account: str | None = None
    network: str | None = None
    subnetwork: str | None = None
    sdk_container_image: str | None = None
    requirements_file: str | None = None
    setup_file: str | None = None  #: default: kappa's own pyproject.toml, staged as a package
    dry_run: bool = False  #: build and check the job, do not submit it
    job_file: str | None = None  #: write the job description (JSON) here


@dataclass(frozen=True)
class RunnerSettings:
    runner: str
    flink_master: str = LOCAL_MASTER
    parallelism: int | None = None
    environment_type: str | None = None  #: default LOOPBACK for local runners
    environment_config: str | None = None
    job_name: str | None = None
    dataflow: DataflowSettings = field(default_factory=DataflowSettings)
    timeout_s: float = 10.0

    @property
    def workers_elsewhere(self) -> bool:
        """Whether the workers run outside kappa's process (they do not share its run
        directory, nor its commit ledger): Dataflow, or a Flink cluster not told LOOPBACK."""
        return self.runner == "dataflow" or (self.runner == "flink" and self.flink_master != LOCAL_MASTER
                                             and self.environment_type not in (None, "LOOPBACK"))


class _Profile:
    name = ""
    streams = True  #: can run a live (unbounded) pipeline

    def preflight(self, settings: RunnerSettings, live: bool) -> None:
        if live and not self.streams:
            raise UsageError(f"--runner {self.name}: cannot run a live pipeline (it has no streaming mode); "
                             "use --runner prism on this machine, or flink / dataflow")

    def options(self, settings: RunnerSettings, live: bool) -> PipelineOptions:
        args = self._args(settings, live)
        if settings.job_name:
            args.append(f"--job_name={settings.job_name}")
        return PipelineOptions(args, streaming=live, save_main_session=False)

    def runner(self):
        """A runner object, or None to let the options name it."""
        return None

    def _args(self, settings: RunnerSettings, live: bool) -> list[str]:
        raise NotImplementedError

    @staticmethod
    def _environment(settings: RunnerSettings) -> list[str]:
        args = [f"--environment_type={settings.environment_type or 'LOOPBACK'}"]
        if settings.environment_config:
            args.append(f"--environment_config={settings.environment_config}")
        elif settings.environment_type == "PROCESS":
            args.append(f"--environment_config={process_environment()}")
        return args


class _Direct(_Profile):
    name, streams = "direct", False

    def runner(self):
        # Beam's DirectRunner would first try to fetch a prism binary from the internet;
        # a replay is a batch job, which Beam's in-process FnApiRunner runs directly.
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner()

    def _args(self, settings, live):
        workers = settings.parallelism or 1
        # Decoding, most of a replay's work, holds the GIL: more than one worker means one
        # SDK worker process each (Beam hands each a share of the partitions' restrictions).
        mode = ["--direct_running_mode=multi_processing"] if workers > 1 else []
        return [f"--direct_num_workers={workers}", *mode]


#: A local replay of fewer records runs in kappa's own process: starting worker processes
#: costs more than they save below about this many (bench/README.md, "Small replays").
ONE_WORKER_BELOW = 250_000


def local_workers(restrictions: int, records: int | None = None) -> int:
    """A local replay's default parallelism: a worker process per core, no more than there
    are restrictions (partitions) to read; one, in kappa's process, for a small replay."""
    if records is not None and records < ONE_WORKER_BELOW:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), restrictions))


class _Prism(_Profile):
    name = "prism"

    def preflight(self, settings, live):
        super().preflight(settings, live)
        if not prism_binary().is_file():
            raise KappaError(f"--runner prism: the prism runner is not built yet ({prism_binary()}); "
                             "run `kappa local install` (or scripts/dev setup)")

    def _args(self, settings, live):
        # Its own prism server: Beam's shared one keeps the options of whoever made it first
        # (in a process that ran a DirectRunner pipeline, one without --prism_location).
        return ["--runner=PrismRunner", f"--prism_location={prism_binary()}",
                "--experiments=disable_prism_server_singleton", *self._environment(settings)]


class _FlinkBundleOptions(PipelineOptions):
    """Flink's bundle time, declared so that Beam passes it on to the job server without a
    warning (it knows the options of the runners it ships, not this one)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--max_bundle_time_mills", type=int, default=None,
                            help="Flink: the longest a bundle lasts, in milliseconds")


class _Flink(_Profile):
    name = "flink"

    def preflight(self, settings, live):
        super().preflight(settings, live)
        if not flink_job_server_jar().is_file():
            raise KappaError(f"--runner flink: Beam's Flink job server is not installed ({flink_job_server_jar()}); "
                             "run `kappa local install` (or scripts/dev setup)")
        if settings.environment_type == "PROCESS" and not settings.environment_config and not python_boot_binary().is_file():
            raise KappaError(f"--environment-type PROCESS: Beam's Python worker boot program is not built yet "
                             f"({python_boot_binary()}); run `kappa local install` (or give --environment-config)")
        if settings.flink_master != LOCAL_MASTER:
            check_flink_master(settings.flink_master, settings.timeout_s)
            host = settings.flink_master.removeprefix("http://").rpartition(":")[0]
            if settings.environment_type is None and host not in ("localhost", "127.0.0.1", "[::1]"):
                raise UsageError(f"--flink-master {settings.flink_master}: the cluster's workers cannot reach this "
                                 "process (LOOPBACK); give --environment-type PROCESS, EXTERNAL or DOCKER "
                                 "with --environment-config")

    def _args(self, settings, live):
        args = ["--runner=FlinkRunner", f"--flink_master={settings.flink_master}", f"--flink_version={FLINK_VERSION}",
                f"--flink_job_server_jar={flink_job_server_jar()}", *self._environment(settings)]
        if settings.flink_master == LOCAL_MASTER:
            _quick_jvm_start(live)
        if live:
            # Flink finishes a streaming bundle after 1,000 elements or 1 s (its defaults), and
            # only a finished bundle hands on its output (panes to the sink) and its residual
            # (the reader's next batch): a record waited up to a second at each stage. 100 ms
            # keeps a live run's latency near prism's (bench/README.md, "Live latency").
            args.append(f"--max_bundle_time_mills={LIVE_FLINK_BUNDLE_MS}")
            if (settings.parallelism is None and settings.flink_master == LOCAL_MASTER
                    and settings.environment_type in (None, "LOOPBACK")):
                # A live run's Python work is all in kappa's process (LOOPBACK), one interpreter:
                # a second Flink slot only adds Flink's own work. At 5,000 records/s on 2 cores
                # it kept up with one slot and fell behind with two (bench/README.md).
                args.append("--parallelism=1")
        if settings.parallelism:
            args.append(f"--parallelism={settings.parallelism}")
            if not live and settings.environment_type is None and settings.parallelism > 1:
                # A replay's SDK workers in processes of their own, one per slot: decoding holds
                # the GIL. (A live run's stay in kappa's process: its commit ledger is there.)
                _python_first_on_path()
                args += [f"--sdk_worker_parallelism={settings.parallelism}", "--experiments=use_loopback_process_worker"]
        # No checkpointing by default: with it, Beam keeps Flink's impulse source alive for ever and a
        # drained job never finishes. Without it Flink never finalizes bundles: a live pipeline run
        # commits by its durable results instead (replay/durable.py) and asks for no finalization.
        return args


def _quick_jvm_start(live: bool) -> None:
    """The embedded Flink's JVM with the client compiler alone and the serial collector. A
    replay is a short job whose JVM mostly starts up and moves few elements (partial
    aggregates, not records): it starts seconds sooner on a small machine. A live run's JVM
    moves bundles and timers, not records: at 5,000 records/s for a minute on 2 cores it
    used a quarter less CPU (the server compiler's own work) at the same latency
    (bench/README.md). A live run's heap is capped at ``LIVE_FLINK_HEAP``: the serial
    collector otherwise grows the heap towards a quarter of the machine's memory before it
    collects, and a long run's memory climbed with it (1.7 GB after a million keys, still
    rising; capped, it levelled at 1.3 GB: bench/README.md, "Soak"). A user's own
    JAVA_TOOL_OPTIONS are left as they are."""
    heap = [f"-Xmx{LIVE_FLINK_HEAP}"] if live else []
    os.environ.setdefault("JAVA_TOOL_OPTIONS", " ".join(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", *heap]))


def _python_first_on_path() -> None:
    """Make ``python`` this interpreter: Beam starts a loopback worker process as plain
    ``python`` (worker_pool_main), which outside an activated virtualenv is some other
    Python, without Beam or kappa, and Flink then waits for a worker that never comes."""
    # A script, not a symlink: a virtualenv's Python knows itself by the path it is run as.
    script = f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n"
    digest = hashlib.sha256(script.encode()).hexdigest()[:12]
    bin_dir = Path(tempfile.gettempdir()) / f"kappa-python-{os.getuid()}-{digest}"
    if not (bin_dir / "python").exists():
        bin_dir.mkdir(exist_ok=True)
        partial = bin_dir / f"python.{os.getpid()}"
        partial.write_text(script)
        partial.chmod(0o755)
        os.replace(partial, bin_dir / "python")
    if os.environ.get("PATH", "").split(os.pathsep)[0] != str(bin_dir):
        os.environ["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])


def check_flink_master(master: str, timeout_s: float) -> None:
    """A Flink JobManager answers on its REST port (``/config``); anything else is an error."""
    address = master.removeprefix("http://").removeprefix("https://").rstrip("/")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--flink-master {master}: write HOST:PORT (the JobManager's REST address) or [local]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        raise KappaError(f"--flink-master {master}: nothing answers there ({err.strerror or err})") from None
    try:
        with urllib.request.urlopen(f"http://{address}/config", timeout=timeout_s) as response:
            if b"flink-version" not in response.read(65536):
                raise KappaError(f"--flink-master {master}: answers, but is not a Flink REST endpoint")
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise KappaError(f"--flink-master {master}: answers, but not as a Flink REST endpoint ({err})") from None


class _Dataflow(_Profile):
    name = "dataflow"

    def preflight(self, settings, live):
        super().preflight(settings, live)
        d = settings.dataflow
        missing = [flag for flag, value in (("--project", d.project), ("--region", d.region),
                                            ("--temp-location", d.temp_location)) if not value]
        if missing:
            raise UsageError(f"--runner dataflow: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required")
        for flag, value in (("--temp-location", d.temp_location), ("--staging-location", d.staging_location)):
            if value and not value.startswith("gs://"):
                raise UsageError(f"{flag} {value}: Dataflow needs a Cloud Storage path (gs://BUCKET/PATH)")
        if d.max_num_workers and d.num_workers and d.max_num_workers < d.num_workers:
            raise UsageError(f"--max-num-workers {d.max_num_workers}: fewer than --num-workers {d.num_workers}")
        for flag, value in (("--requirements-file", d.requirements_file), ("--setup-file", d.setup_file)):
            if value and not Path(value).is_file():
                raise UsageError(f"{flag} {value}: no such file")
        if settings.environment_type not in (None, "DOCKER"):
            raise UsageError(f"--environment-type {settings.environment_type}: Dataflow workers run DOCKER containers")

    def _args(self, settings, live):
        d = settings.dataflow
        args = ["--runner=DataflowRunner", f"--project={d.project}", f"--region={d.region}",
                f"--temp_location={d.temp_location}",
                f"--staging_location={d.staging_location or d.temp_location.rstrip('/') + '/staging'}",
                f"--setup_file={d.setup_file or _REPO / 'pyproject.toml'}"]
        if live and d.streaming_engine:
            args.append("--enable_streaming_engine")
        for flag, value in (("num_workers", d.num_workers), ("max_num_workers", d.max_num_workers),
                            ("machine_type", d.machine_type), ("disk_size_gb", d.disk_size_gb),
                            ("service_account_email", d.service_account), ("network", d.network),
                            ("subnetwork", d.subnetwork), ("sdk_container_image", d.sdk_container_image),
                            ("requirements_file", d.requirements_file), ("dataflow_job_file", d.job_file)):
            if value is not None:
                args.append(f"--{flag}={value}")
        if d.max_num_workers:
            args.append("--autoscaling_algorithm=THROUGHPUT_BASED")
        if d.dry_run:
            args.append("--dry_run=True")
        return args


PROFILES = {p.name: p for p in (_Direct(), _Prism(), _Flink(), _Dataflow())}


def profile_for(name: str) -> _Profile:
    if name not in PROFILES:
        raise UsageError(f"--runner {name}: unknown runner (choose from {', '.join(RUNNERS)})")
    return PROFILES[name]
