"""A real Apache Kafka broker for development, tests and the demo.

Single node, KRaft (combined broker and controller), listening on 127.0.0.1 only.
The jars come from Maven Central (``install_kafka``: Maven resolves
``kafka_2.13`` and its runtime dependencies); no Docker, no mock cluster.
"""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from pathlib import Path

from kappa.runners.errors import KappaError
from kappa.runners.local.process import ServerProcess, find_java, maven_jars, port_in_use

__all__ = ["KAFKA_VERSION", "KafkaBroker", "install_kafka", "kafka_lib_dir"]

_HERE = Path(__file__).resolve().parent
_POM = _HERE / "kafka-pom.xml"
KAFKA_VERSION = re.search(r"<kafka.version>([^<]+)<", _POM.read_text()).group(1)

# Settings for a local broker that replay tests can trust:
# - retention off: Kafka deletes by record timestamp, and demo or test data with
#   old event times would otherwise vanish at once;
# - any CreateTime accepted, so tests can write event times far in the past or future;
# - no auto-created topics: a mistyped topic is an error, not a new empty topic.
_BROKER_SETTINGS = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "num.partitions": "4",
    "auto.create.topics.enable": "false",
    "log.retention.ms": "-1",
    "log.message.timestamp.type": "CreateTime",
    "log.message.timestamp.before.max.ms": str(2**63 - 1),
    "log.message.timestamp.after.max.ms": str(2**63 - 1),
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
}


def kafka_lib_dir(home: Path) -> Path:
    return home / f"kafka-{KAFKA_VERSION}" / "lib"


def install_kafka(home: Path, quiet: bool = False) -> Path:
    """Copy Kafka's runtime jars from Maven Central into ``home`` (once); return the lib dir."""
    return maven_jars(_POM, kafka_lib_dir(home), f"Apache Kafka {KAFKA_VERSION}", quiet)


class KafkaBroker:
    """One local broker. ``state_dir`` holds its data, config, log and pid file.

    ``listeners`` adds secured listeners beside the PLAINTEXT one (security protocol ->
    port, e.g. ``{"SASL_SSL": 9094}``), configured by ``settings`` (broker properties);
    the tests start such a broker with certificates and SCRAM users of their own."""

    def __init__(self, home: Path, state_dir: Path, port: int = 9092, controller_port: int = 9093,
                 heap: str = "768m", listeners: dict[str, int] | None = None, settings: dict[str, str] | None = None):
        self.home = home
        self.listeners = dict(listeners or {})
        self.settings = dict(settings or {})
        self.state_dir = state_dir
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.data_dir = state_dir / "data"
        self.config_file = state_dir / "server.properties"
        self.process = ServerProcess("broker", state_dir, marker=str(self.config_file))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.process.pid() is not None

    def answering(self, timeout_s: float = 2.0) -> bool:
        """True when the broker serves metadata (a real request, not a port check)."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            return bool(admin.list_topics(timeout=timeout_s).brokers)
        except Exception:  # KafkaException while the broker is still starting
            return False

    def start(self, timeout_s: float = 90) -> None:
        """Start the broker and return once it answers; a no-op if it already runs."""
        if self.running():
            return
        java = find_java()
        for port, flag in ((self.port, "--kafka-port"), (self.controller_port, "--kafka-controller-port")):
            if port_in_use("127.0.0.1", port):
                raise KappaError(f"cannot start Kafka: 127.0.0.1:{port} is already in use (choose another with {flag})")
        lib = install_kafka(self.home)
        self._write_config()
        classpath = f"{lib}/*"
        if not (self.data_dir / "meta.properties").exists():
            self._format(java, classpath)
        self.process.start(
            [java, f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
             f"-Dlog4j2.configurationFile={_HERE / 'log4j2.properties'}",
             "-cp", classpath, "kafka.Kafka", str(self.config_file)]
        )
        self.process.wait_ready(self.answering, timeout_s, f"Kafka broker on {self.bootstrap}")

    def stop(self) -> bool:
        return self.process.stop()

    def _write_config(self) -> None:
        extra = "".join(f",{name}://127.0.0.1:{port}" for name, port in self.listeners.items())
        settings = {
            **_BROKER_SETTINGS,
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}{extra}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}{extra}",
            "listener.security.protocol.map": ",".join(
                [_BROKER_SETTINGS["listener.security.protocol.map"], *(f"{n}:{n}" for n in self.listeners)]),
            "log.dirs": str(self.data_dir),
            **self.settings,
        }
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def _format(self, java: str, classpath: str) -> None:
        cid = _cluster_id()
        result = subprocess.run(
            [java, "-Xmx256m", f"-Dlog4j2.configurationFile={_HERE / 'log4j2.properties'}",
             "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cid, "-c", str(self.config_file)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-1:]
            raise KappaError(f"cannot format Kafka storage in {self.data_dir}: {' '.join(tail)}")


def _cluster_id() -> str:
    """A random cluster id in Kafka's form (URL-safe base64 of 16 bytes), never starting
    with '-', which the storage tool would take for an option (as Kafka's own Uuid does)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid
