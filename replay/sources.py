"""Source addresses, one grammar for every command:

* ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC``
* ``pubsub://PROJECT/SUBSCRIPTION`` (live, or replay by seek on that subscription)
* ``file:PATH`` an archive written by ``kappa produce --archive`` (``.jsonl`` or ``.avro``)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kappa.replay.errors import ReplayError

__all__ = ["ArchiveSource", "KafkaSource", "PubSubSource", "parse_source"]


@dataclass(frozen=True)
class KafkaSource:
    bootstrap: str
    topic: str

    def __str__(self):
        return f"kafka://{self.bootstrap}/{self.topic}"


@dataclass(frozen=True)
class PubSubSource:
    project: str
    subscription: str

    @property
    def path(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.subscription}"

    def __str__(self):
        return f"pubsub://{self.project}/{self.subscription}"


@dataclass(frozen=True)
class ArchiveSource:
    path: Path

    def __str__(self):
        return f"file:{self.path}"


def parse_source(text: str) -> KafkaSource | PubSubSource | ArchiveSource:
    if text.startswith("kafka://"):
        rest = text[len("kafka://"):]
        bootstrap, _, topic = rest.partition("/")
        if not bootstrap or not topic or "/" in topic:
            raise ReplayError(f"--source {text}: write kafka://HOST:PORT/TOPIC")
        for server in bootstrap.split(","):
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit():
                raise ReplayError(f"--source {text}: {server!r} is not HOST:PORT")
        return KafkaSource(bootstrap, topic)
    if text.startswith("pubsub://"):
        project, _, subscription = text[len("pubsub://"):].partition("/")
        if not project or not subscription or "/" in subscription:
            raise ReplayError(f"--source {text}: write pubsub://PROJECT/SUBSCRIPTION")
        return PubSubSource(project, subscription)
    if text.startswith("file:"):
        path = Path(text[len("file:"):])
        if path.suffix not in (".jsonl", ".avro"):
            raise ReplayError(f"--source {text}: an archive is a .jsonl or .avro file")
        if not path.is_file():
            raise ReplayError(f"--source {text}: no such file")
        return ArchiveSource(path)
    scheme = text.split(":", 1)[0] if ":" in text else text
    raise ReplayError(f"--source {text}: unknown source scheme {scheme!r} (use kafka://, pubsub:// or file:)")
