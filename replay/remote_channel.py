"""The run channel of a run whose workers do not share the launcher's disk (a remote
Flink cluster, Dataflow): the same conversation as :class:`~replay.progress.RunChannel`,
through the runner instead of the run directory.

* **Positions** go out as Beam gauges (``reader:<source>-<partition>:<field>``), set
  with the records of each batch, so they are committed with the bundle that emitted
  them; the launcher reads them from the job's metrics (:meth:`MetricsChannel.attach`).
  Every report is kept (no throttling): after a drain the last one is where the
  partition's drained range ends.
* **A drain** is asked of the runner: Flink's stop-with-savepoint with drain over its
  REST API (:class:`FlinkRunChannel`), Dataflow's drain call (:class:`DataflowRunChannel`).
  Beam's Flink runner (2.62) ends no Python splittable read on a drain (its operators
  re-run the read until its watermark reaches the end, which a live read never does), so
  the readers look for the drain themselves: a stop-with-savepoint in progress on their
  job, polled from the JobManager's REST API every ``poll_s``. Dataflow truncates
  live restrictions itself (``_ReadLivePartitionFn.truncate``).
* **Clock marks** cannot travel this way yet: they are counted
  (``clock_marks_unrecorded``), and the launcher says so when it saves the manifest.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineState

from kappa.replay.decoding import METRICS_NAMESPACE
from kappa.replay.errors import ReplayError
from kappa.replay.progress import RunChannel

__all__ = ["DataflowRunChannel", "FlinkRunChannel", "MetricsChannel", "flink_job_id", "flink_stop_with_drain"]

_PREFIX = "reader:"
_FIELDS = ("partition", "position", "high", "watermark_ms", "drained")
UNRECORDED_MARKS = "clock_marks_unrecorded"


class MetricsChannel(RunChannel):
    """Reports as gauges; positions from the attached PipelineResult's metrics."""

    #: the runner ends the readers' ranges itself, so a finished job's last positions are drained ones
    drains_by_runner = False

    def __init__(self, run_dir, interval_s: float = 0.5):
        super().__init__(run_dir, interval_s)
        self._result = None
        #: whether this launcher asked for the drain: a live job that ended otherwise (Flink's
        #: own ``stop`` without ``--drain`` ends it with windows unwritten) is not a drained one
        self.drain_requested = False

    def attach(self, result) -> None:
        self._result = result

    # -- the readers' side ---------------------------------------------------------
    def report(self, name: str, final: bool = False, **fields) -> None:
        for field in _FIELDS:
            value = fields.get(field)
            if value is not None:
                Metrics.gauge(METRICS_NAMESPACE, f"{_PREFIX}{name}:{field}").set(int(value))

    def record_clock_marks(self, name: str, marks: list[tuple[int, int]]) -> None:
        Metrics.counter(METRICS_NAMESPACE, UNRECORDED_MARKS).inc(len(marks))

    # -- the launcher's side -------------------------------------------------------
    def positions(self) -> dict[str, dict]:
        """The readers' last reports, from the job's metrics once it has ended (Beam's portable
        result keeps the first metrics it is given, and a running job's are empty)."""
        if self._result is None or not PipelineState.is_terminal(self._result.state):
            return {}
        try:
            gauges = self._result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["gauges"]
        except Exception:  # a runner that gives no metrics
            return {}
        return self._reports({g.key.metric.name[len(_PREFIX):]: g.committed.value for g in gauges
                              if g.key.metric.name.startswith(_PREFIX) and g.committed is not None})

    def _reports(self, values: dict[str, int]) -> dict[str, dict]:
        """``{"<reader>:<field>": value}`` as positions() gives them: by reader, then field."""
        out: dict[str, dict] = {}
        for key, value in values.items():
            reader, field = key.rsplit(":", 1)
            out.setdefault(reader, {})[field] = value
        for report in out.values():
            report["drained"] = "drained" in report or self.drains_by_runner
        return out

    def clock_marks(self) -> dict[str, list[tuple[int, int]]]:
        return {}

    def unrecorded_marks(self) -> int:
        if self._result is None:
            return 0
        counters = self._result.metrics().query(
            MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name(UNRECORDED_MARKS))["counters"]
        return sum(c.committed or 0 for c in counters)


class FlinkRunChannel(MetricsChannel):
    """A live run on a remote Flink cluster: drained with stop-with-savepoint (REST)."""

    def __init__(self, run_dir, master: str, job_name: str, poll_s: float = 2.0):
        super().__init__(run_dir)
        self.master, self.job_name, self.poll_s = master, job_name, poll_s
        self._checked = self._polled = -1e9
        self._stopping = False
        self._job_id: str | None = None
        self._running: dict[str, dict] = {}

    def __getstate__(self):
        return {**super().__getstate__(), "master": self.master, "job_name": self.job_name, "poll_s": self.poll_s}

    def __setstate__(self, state):
        self.__init__(state["run_dir"], state["master"], state["job_name"], state["poll_s"])

    def stop_requested(self) -> bool:
        """Whether the job is being stopped (a stop-with-savepoint is in progress), asked of
        the JobManager at most every ``poll_s``; once seen, for good."""
        now = time.monotonic()
        if self._stopping or now - self._checked < self.poll_s:
            return self._stopping
        self._checked = now
        try:
            self._job_id = self._job_id or flink_job_id(self.master, self.job_name)
            if self._job_id is not None:
                self._stopping = _flink_stopping(self.master, self._job_id)
        except ReplayError:
            pass  # the JobManager is busy or restarting: ask again next time
        return self._stopping

    def positions(self) -> dict[str, dict]:
        """While the job runs, the readers' gauges as Flink's REST API shows them (its
        metrics of the running tasks, for the progress view: at most every ``poll_s``);
        once it has ended, the job's final metrics (for the drained manifest)."""
        if self._result is not None and PipelineState.is_terminal(self._result.state):
            return super().positions()
        now = time.monotonic()
        if now - self._polled >= self.poll_s:
            self._polled = now
            try:
                self._job_id = self._job_id or flink_job_id(self.master, self.job_name)
                self._running = self._reports(flink_reader_gauges(self.master, self._job_id)) if self._job_id else {}
            except ReplayError:
                pass  # keep the last view
        return self._running

    def request_stop(self) -> None:
        job_id = flink_job_id(self.master, self.job_name)
        if job_id is None:
            raise ReplayError(f"Flink at {self.master} runs no job named {self.job_name}")
        flink_stop_with_drain(self.master, job_id)
        self.drain_requested = True


class DataflowRunChannel(MetricsChannel):
    """A live run on Dataflow: drained with Dataflow's drain call (untested here: no
    Dataflow is reachable). Dataflow truncates the live restrictions itself."""

    drains_by_runner = True

    def stop_requested(self) -> bool:
        return False

    def request_stop(self) -> None:
        result = self._result
        if result is None or not result._runner.dataflow_client.modify_job_state(result.job_id(), "JOB_STATE_DRAINING"):
            raise ReplayError("Dataflow did not accept the drain request")
        self.drain_requested = True


# -- Flink's REST API ------------------------------------------------------------------------
def _rest(master: str, path: str, body: dict | None = None, timeout_s: float = 10.0) -> dict:
    address = master.removeprefix("http://").rstrip("/")
    request = urllib.request.Request(f"http://{address}{path}", method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ReplayError(f"Flink's REST API at {master} ({path}): {err}") from None


def flink_job_id(master: str, job_name: str) -> str | None:
    """The id of the newest job named ``job_name`` (kappa's job names carry a timestamp)."""
    jobs = [j for j in _rest(master, "/jobs/overview")["jobs"] if j["name"] == job_name]
    return max(jobs, key=lambda j: j["start-time"])["jid"] if jobs else None


def _flink_stopping(master: str, job_id: str) -> bool:
    """A stop-with-savepoint (a synchronous savepoint) in progress. Flink's REST API does not
    tell a drain from a plain stop; the launcher trusts only the drains it asked for."""
    history = _rest(master, f"/jobs/{job_id}/checkpoints").get("history", [])
    return any(c.get("is_savepoint") and c.get("status") == "IN_PROGRESS" and "SYNC" in c.get("checkpoint_type", "")
               for c in history)


def flink_reader_gauges(master: str, job_id: str) -> dict[str, int]:
    """The readers' gauges of a running job, ``{"<reader>:<field>": value}``. Beam's Flink runner
    registers each Beam metric as a Flink metric of its task, named ``<namespace>_<name>`` with
    ``:`` as ``_`` (``kappa_reader_t-0_position``)."""
    prefix = f"{METRICS_NAMESPACE}_{_PREFIX.rstrip(':')}_"
    out = {}
    for vertex in _rest(master, f"/jobs/{job_id}")["vertices"]:
        if vertex["status"] != "RUNNING":
            continue
        path = f"/jobs/{job_id}/vertices/{vertex['id']}/metrics"
        ids = [m["id"] for m in _rest(master, path) if f".{prefix}" in m["id"]]
        if not ids:
            continue
        for metric in _rest(master, f"{path}?get={','.join(ids)}"):
            name = metric["id"].split(f".{prefix}", 1)[1]
            field = next((f for f in _FIELDS if name.endswith(f"_{f}")), None)
            if field is not None and metric.get("value") not in (None, ""):
                out[f"{name[:-len(field) - 1]}:{field}"] = int(float(metric["value"]))
    return out


def flink_stop_with_drain(master: str, job_id: str) -> str:
    """Flink's stop-with-savepoint with drain: sources end, the watermark goes to the end (every
    window fires), a savepoint is taken, the job finishes. The savepoint goes to the cluster's
    ``state.savepoints.dir`` (kappa does not resume from it: a drained run resumes from its
    manifest and group commit), else to /tmp/kappa-savepoints on the JobManager."""
    config = {entry["key"]: entry["value"] for entry in _rest(master, "/jobmanager/config")}
    body: dict = {"drain": True}
    if "state.savepoints.dir" not in config:
        body["targetDirectory"] = "file:///tmp/kappa-savepoints"
    return _rest(master, f"/jobs/{job_id}/stop", body)["request-id"]
