"""A standalone Flink session cluster on 127.0.0.1: one JobManager and one TaskManager,
each its own JVM, started from Flink's own jars (``flink-cluster-pom.xml``), as
``bin/start-cluster.sh`` of Flink's distribution would start them.

It is the *remote* Flink of kappa's tests: jobs reach it over its REST port
(``--flink-master 127.0.0.1:PORT``), Beam's runner classes travel with each job, and
the TaskManager starts the Python workers itself (``--environment-type PROCESS``).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

from kappa.runners.errors import KappaError
from kappa.runners.local.process import ServerProcess, find_java, free_port, maven_jars, port_in_use

__all__ = ["FLINK_CLUSTER_VERSION", "FlinkCluster", "install_flink_cluster"]

_HERE = Path(__file__).resolve().parent
_POM = _HERE / "flink-cluster-pom.xml"
_LOG4J = _HERE / "log4j2.properties"
FLINK_CLUSTER_VERSION = "1.19.0"  # flink-cluster-pom.xml; Beam's job server is built against it

# What Flink's own config.yaml gives every JVM on Java 17 (env.java.opts.all): its
# serializers and RPC reach into these JDK packages.
_JAVA_OPENS = [f"--add-opens=java.base/{package}=ALL-UNNAMED" for package in (
    "java.lang", "java.lang.reflect", "java.io", "java.net", "java.nio", "sun.nio.ch", "java.text", "java.time",
    "java.util", "java.util.concurrent", "java.util.concurrent.atomic", "java.util.concurrent.locks")]


def install_flink_cluster(home: Path, quiet: bool = False) -> Path:
    """Copy the cluster's jars from Maven Central into ``home`` (once); return the lib dir."""
    return maven_jars(_POM, home / f"flink-{FLINK_CLUSTER_VERSION}" / "lib", f"Apache Flink {FLINK_CLUSTER_VERSION}", quiet)


class FlinkCluster:
    """One JobManager (REST on ``rest_port``) and one TaskManager with ``slots`` slots.

    The other ports (RPC, blob server, data) are free ones picked at start, so several
    clusters and the embedded Flink of other runs never collide. ``state_dir`` holds the generated
    ``flink-conf.yaml``, the logs, the pid files and the savepoints."""

    def __init__(self, home: Path, state_dir: Path, rest_port: int = 8081, slots: int = 4,
                 taskmanager_memory: str = "1536m"):
        self.home = home
        self.state_dir = state_dir
        self.rest_port = rest_port
        self.slots = slots
        self.taskmanager_memory = taskmanager_memory
        self.conf_dir = state_dir / "conf"
        self.savepoints = state_dir / "savepoints"
        self.jobmanager = ServerProcess("jobmanager", state_dir, marker=str(self.conf_dir))
        self.taskmanager = ServerProcess("taskmanager", state_dir, marker=str(self.conf_dir))

    @property
    def master(self) -> str:
        """What ``--flink-master`` takes: the JobManager's REST address."""
        return f"127.0.0.1:{self.rest_port}"

    def running(self) -> bool:
        return self.jobmanager.pid() is not None

    def answering(self, timeout_s: float = 2.0) -> bool:
        """True once the REST API answers and a TaskManager has registered its slots."""
        try:
            with urllib.request.urlopen(f"http://{self.master}/taskmanagers", timeout=timeout_s) as response:
                return any(tm.get("slotsNumber", 0) > 0 for tm in json.load(response)["taskmanagers"])
        except (OSError, ValueError, KeyError):
            return False

    def start(self, timeout_s: float = 90) -> None:
        """Start both processes and return once the TaskManager's slots are offered."""
        if self.running():
            return
        if port_in_use("127.0.0.1", self.rest_port):
            raise KappaError(f"cannot start Flink: 127.0.0.1:{self.rest_port} is already in use "
                             "(choose another with --flink-port)")
        java = find_java()
        classpath = f"{install_flink_cluster(self.home)}/*"
        self._write_config()
        base = [java, *_JAVA_OPENS, f"-Dlog4j2.configurationFile={_LOG4J}", "-cp", classpath]
        self.jobmanager.start([*base, "-Xmx512m", "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
                               "--configDir", str(self.conf_dir)], cwd=self.state_dir)
        jvm, dynamic = self._taskmanager_resources(base)
        # In its state dir: the Python workers it starts write their pipeline_options.json there.
        self.taskmanager.start([*base, *jvm, "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
                                "--configDir", str(self.conf_dir), *dynamic], cwd=self.state_dir)
        try:
            self.jobmanager.wait_ready(self.answering, timeout_s, f"Flink cluster on {self.master}")
        except KappaError:
            self.stop()
            raise

    def stop(self) -> bool:
        stopped = self.taskmanager.stop()  # first, so the JobManager does not wait for it to return
        return self.jobmanager.stop() or stopped

    def _write_config(self) -> None:
        settings = {
            "jobmanager.rpc.address": "127.0.0.1", "jobmanager.bind-host": "127.0.0.1",
            "jobmanager.rpc.port": free_port(),  # the TaskManager finds the JobManager by it
            "rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1", "rest.port": self.rest_port,
            "taskmanager.host": "127.0.0.1", "taskmanager.bind-host": "127.0.0.1", "taskmanager.rpc.port": 0,
            "taskmanager.data.port": 0, "blob.server.port": 0,
            "taskmanager.numberOfTaskSlots": self.slots, "parallelism.default": 1,
            "taskmanager.memory.process.size": self.taskmanager_memory,
            # Beam's operators hold their state on the heap; the Python workers do the work.
            "taskmanager.memory.managed.fraction": 0.1,
            "jobmanager.memory.process.size": "768m",
            "state.savepoints.dir": self.savepoints.as_uri(),
            "io.tmp.dirs": str(self.state_dir / "tmp"),
        }
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "tmp").mkdir(exist_ok=True)
        (self.conf_dir / "flink-conf.yaml").write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))

    def _taskmanager_resources(self, base: list[str]) -> tuple[list[str], list[str]]:
        """The TaskManager's JVM flags and memory settings, worked out from the config by
        Flink's own BashJavaUtils, as its taskmanager.sh does (the TaskManager refuses to
        start without them)."""
        result = subprocess.run([*base, "org.apache.flink.runtime.util.bash.BashJavaUtils", "GET_TM_RESOURCE_PARAMS",
                                 "--configDir", str(self.conf_dir)], capture_output=True, text=True)
        lines = [line.split(":", 1)[1] for line in result.stdout.splitlines()
                 if line.startswith("BASH_JAVA_UTILS_EXEC_RESULT:")]
        if result.returncode != 0 or len(lines) != 2:
            tail = (result.stdout + result.stderr).strip().splitlines()[-1:]
            raise KappaError(f"cannot work out the Flink TaskManager's memory: {' '.join(tail)}")
        return lines[0].split(), lines[1].split()
