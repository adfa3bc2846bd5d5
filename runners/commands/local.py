"""``kappa local up|down|status|install|reset``: the embedded local stack."""

from __future__ import annotations

import argparse
import json
import shutil
import time

from kappa.runners import cliargs
from kappa.runners.home import kappa_home
from kappa.runners.local import tools
from kappa.runners.local.flink_cluster import FLINK_CLUSTER_VERSION, FlinkCluster, install_flink_cluster
from kappa.runners.local.kafka import KAFKA_VERSION, KafkaBroker, install_kafka
from kappa.runners.local.pubsub import PubSubEmulator

__all__ = ["add_parsers", "local_stack"]

SERVICES = ("kafka", "pubsub", "flink")
DEFAULT_SERVICES = ("kafka", "pubsub")  #: the Flink cluster only when asked for: it is the heavy one


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "local",
        help="start, stop or inspect the local Kafka broker, Pub/Sub emulator and Flink cluster",
        description=(
            f"The embedded local stack: a real Apache Kafka {KAFKA_VERSION} broker (KRaft, single node; "
            "jars from Maven Central, fetched on first use) and the gcloud SDK's Pub/Sub emulator, "
            f"both on 127.0.0.1; with --only flink, a standalone Apache Flink {FLINK_CLUSTER_VERSION} session cluster "
            "(one JobManager, one TaskManager) to run jobs on as on a remote one. State lives in {kappa_home() / 'local'} (set KAPPA_HOME to move it)."
        ),
        epilog=(
            "examples:\n"
            "  kappa local up                      # both services; prints where each listens\n"
            "  kappa local up --only kafka --kafka-port 19092\n"
            "  kappa local up --only flink         # a standalone Flink cluster: --flink-master 127.0.0.1:8081\n"
            "  kappa local status\n"
            "  kappa local install                 # Kafka and Flink jars, prism, Flink job server, Python worker boot\n"
            "  kappa local down\n"
            "  kappa local reset --only kafka      # stop and delete the broker's data"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=["up", "down", "status", "install", "reset"],
                   help="up: start and wait until answering; down: stop; status: report; "
                        "install: fetch the Kafka and Flink jars, build Beam's prism runner and Python worker boot "
                        "program, fetch Beam's Flink job server (each once); reset: stop and delete all local data")
    p.add_argument("--only", choices=SERVICES,
                   help="act on one service only (default: kafka and pubsub; the Flink cluster only with --only flink)")
    p.add_argument("--kafka-port", type=cliargs.port, help="broker port (default 9092, or the one it was started with)")
    p.add_argument("--kafka-controller-port", type=cliargs.port, help="KRaft controller port (default 9093)")
    p.add_argument("--pubsub-port", type=cliargs.port, help="emulator port (default 8085)")
    p.add_argument("--flink-port", type=cliargs.port, help="the Flink cluster's REST port (default 8081)")
    p.set_defaults(run=run)


def local_stack(kafka_port=None, controller_port=None, pubsub_port=None) -> tuple[KafkaBroker, PubSubEmulator]:
    """The local broker and emulator, on the ports given, else those last started with."""
    home = kappa_home()
    state = home / "local"
    saved = _saved_ports(state)
    broker = KafkaBroker(home, state / "kafka",
                         port=kafka_port or saved.get("kafka_port", 9092),
                         controller_port=controller_port or saved.get("kafka_controller_port", 9093))
    emulator = PubSubEmulator(state / "pubsub", port=pubsub_port or saved.get("pubsub_port", 8085))
    return broker, emulator


def _flink_cluster(port=None) -> FlinkCluster:
    state = kappa_home() / "local"
    return FlinkCluster(kappa_home(), state / "flink", rest_port=port or _saved_ports(state).get("flink_port", 8081))


def run(args) -> int:
    broker, emulator = local_stack(args.kafka_port, args.kafka_controller_port, args.pubsub_port)
    flink = _flink_cluster(args.flink_port)
    wanted = [args.only] if args.only else list(SERVICES if args.action == "down" else DEFAULT_SERVICES)
    if args.action == "install":
        print(f"Kafka {KAFKA_VERSION} jars in {install_kafka(broker.home)}")
        print(f"prism runner (Beam {tools.BEAM_VERSION}) at {tools.install_prism()}")
        print(f"Flink {tools.FLINK_VERSION} job server at {tools.install_flink_job_server()}")
        print(f"Flink {FLINK_CLUSTER_VERSION} cluster jars in {install_flink_cluster(broker.home)}")
        print(f"Python worker boot program (Beam {tools.BEAM_VERSION}) at {tools.install_python_boot()}")
        return 0
    if args.action == "up":
        return _up(broker, emulator, flink, wanted)
    if args.action in ("down", "reset"):
        for name, service in (("kafka", broker), ("pubsub", emulator), ("flink", flink)):
            if name in wanted:
                print(f"{name}: {'stopped' if service.stop() else 'was not running'}")
        if args.action == "reset":
            for name in wanted:
                shutil.rmtree(kappa_home() / "local" / name, ignore_errors=True)
            print(f"deleted local data of {', '.join(wanted)}")
        return 0
    return _status(broker, emulator, flink, wanted)


def _up(broker: KafkaBroker, emulator: PubSubEmulator, flink: FlinkCluster, wanted: list[str]) -> int:
    if "kafka" in wanted:
        _start("kafka", broker, lambda: broker.bootstrap, f"data in {broker.data_dir}")
    if "pubsub" in wanted:
        _start("pubsub", emulator, lambda: emulator.host, f"export PUBSUB_EMULATOR_HOST={emulator.host}")
    if "flink" in wanted:
        _start("flink", flink, lambda: flink.master, f"--runner flink --flink-master {flink.master} "
                                                      "--environment-type PROCESS")
    _save_ports(broker, emulator, flink)
    return 0


def _start(name: str, service, address, note: str) -> None:
    if service.running():
        print(f"{name}: already running on {address()}")
        return
    started = time.monotonic()
    print(f"{name}: starting ...", flush=True)
    service.start()
    print(f"{name}: ready on {address()} in {time.monotonic() - started:.1f}s ({note})")


def _status(broker: KafkaBroker, emulator: PubSubEmulator, flink: FlinkCluster, wanted: list[str]) -> int:
    healthy = True
    for name, service, address in (("kafka", broker, broker.bootstrap), ("pubsub", emulator, emulator.host),
                                   ("flink", flink, flink.master)):
        if name not in wanted:
            continue
        process = service.jobmanager if name == "flink" else service.process
        pid = process.pid()
        if pid is None:
            print(f"{name}: stopped")
            healthy = False
        elif service.answering(timeout_s=5) or service.answering(timeout_s=5):  # patient: a busy machine is slow, not down
            print(f"{name}: running on {address} (pid {pid})")
        else:
            print(f"{name}: process {pid} is up but {address} does not answer (log: {process.log_file})")
            healthy = False
    return 0 if healthy else 3


def _saved_ports(state) -> dict:
    try:
        return json.loads((state / "ports.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _save_ports(broker: KafkaBroker, emulator: PubSubEmulator, flink: FlinkCluster) -> None:
    path = broker.state_dir.parent / "ports.json"
    path.write_text(json.dumps({
        "kafka_port": broker.port,
        "kafka_controller_port": broker.controller_port,
        "pubsub_port": emulator.port,
        "flink_port": flink.rest_port,
    }))
