"""The Google Cloud Pub/Sub emulator shipped with the gcloud SDK, on 127.0.0.1.

It is started from the SDK's own launcher (``platform/pubsub-emulator``), found
beside the ``gcloud`` on PATH or named by ``$KAPPA_PUBSUB_EMULATOR``. Clients reach
it through :func:`emulator_clients` (or ``PUBSUB_EMULATOR_HOST``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kappa.replay.pubsub_clients import emulator_clients
from kappa.runners.errors import KappaError
from kappa.runners.local.process import ServerProcess, find_java, port_in_use

__all__ = ["DEFAULT_PROJECT", "PubSubEmulator", "emulator_clients", "find_emulator"]

#: The project id local topics and subscriptions live in (the emulator accepts any).
DEFAULT_PROJECT = "kappa-local"


def find_emulator() -> Path:
    override = os.environ.get("KAPPA_PUBSUB_EMULATOR")
    if override:
        return Path(override)
    gcloud = shutil.which("gcloud")
    if gcloud:
        sdk_root = Path(os.path.realpath(gcloud)).parent.parent
        launcher = sdk_root / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
        if launcher.exists():
            return launcher
    raise KappaError(
        "Pub/Sub emulator not found: install the gcloud SDK with its 'pubsub-emulator' component, "
        "or set KAPPA_PUBSUB_EMULATOR to its cloud-pubsub-emulator launcher"
    )


class PubSubEmulator:
    """One emulator process; its state is in memory, its log and pid in ``state_dir``."""

    def __init__(self, state_dir: Path, port: int = 8085):
        self.state_dir = state_dir
        self.port = port
        self.process = ServerProcess("pubsub", state_dir, marker=f"--port={port}")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.process.pid() is not None

    def answering(self, timeout_s: float = 2.0) -> bool:
        """True when a real ListTopics call succeeds."""
        import grpc
        from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
        from google.pubsub_v1.types import ListTopicsRequest

        channel = grpc.insecure_channel(self.host)
        try:
            transport = PublisherGrpcTransport(channel=channel)
            transport.list_topics(ListTopicsRequest(project=f"projects/{DEFAULT_PROJECT}"), timeout=timeout_s)
            return True
        except grpc.RpcError:
            return False
        finally:
            channel.close()

    def start(self, timeout_s: float = 60) -> None:
        if self.running():
            return
        launcher = find_emulator()
        find_java()  # the launcher needs it; fail with our message, not the script's
        if port_in_use("127.0.0.1", self.port):
            raise KappaError(f"cannot start the Pub/Sub emulator: 127.0.0.1:{self.port} is already in use "
                             "(choose another with --pubsub-port)")
        self.process.start(
            [str(launcher), "--host=127.0.0.1", f"--port={self.port}"],
            env={"JAVA_OPTS": "-Xmx384m"},
        )
        self.process.wait_ready(self.answering, timeout_s, f"Pub/Sub emulator on {self.host}")

    def stop(self) -> bool:
        return self.process.stop()
