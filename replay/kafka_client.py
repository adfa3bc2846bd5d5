"""The Kafka client settings a user gives kappa (TLS, SASL, timeouts: any librdkafka
property), merged into every client kappa makes: consumers, producers, admin clients.

They come from ``--kafka-config FILE`` (librdkafka's properties format, ``key=value``
lines) and repeatable ``--kafka-option key=value`` (later ones win), a ``[kafka]``
table of a ``--config`` file, or ``$KAPPA_KAFKA_CONFIG`` (a properties file; what remote
workers and the tests' ``$KAFKA_BOOTSTRAP`` cluster use). They are held in this process
(and in its environment, ``$KAPPA_KAFKA_SETTINGS``, which the SDK worker processes a
local runner starts inherit) and read when a client is made, so they are never in a
manifest, a run directory, a pickled pipeline or a job file; a replay of a manifest
takes them from the same flags. :func:`redact` hides their secret values in any text
kappa shows.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from kappa.replay.errors import ReplayError

__all__ = ["KAFKA_CONFIG_ENV", "ClientErrors", "Unreachable", "client_config", "configure", "read_properties", "redact",
           "refuse_reserved", "user_settings", "wait_for_metadata"]

KAFKA_CONFIG_ENV = "KAPPA_KAFKA_CONFIG"
#: The flags' settings as JSON, held in this process's environment so the worker processes
#: it starts have them too (never written to a file).
_FLAGS_ENV = "KAPPA_KAFKA_SETTINGS"

#: kappa decides these itself: offsets are explicit, commits are kappa's, a missing
#: offset is an error. The cluster is ``--bootstrap`` / the source's address.
RESERVED = {
    "bootstrap.servers": "give the cluster as --bootstrap or in the source (kafka://HOST:PORT/TOPIC)",
    "group.id": "kappa names its groups (--group, --from group:NAME)",
    "enable.auto.commit": "kappa commits offsets itself, once results are durable",
    "enable.auto.offset.store": "kappa commits offsets itself, once results are durable",
    "auto.offset.reset": "a missing offset is an error (--on-missing-offsets decides where to start)",
}

#: Any property naming one of these holds a secret.
_SECRET_WORDS = ("password", "secret", "jaas", "oauthbearer.config", "key.pem", "token")


def read_properties(path: str | Path) -> dict[str, str]:
    """A librdkafka properties file: ``key=value`` lines; blank lines and ``#`` comments skipped."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ReplayError(f"--kafka-config {path}: {err.strerror}") from None
    settings = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ReplayError(f"--kafka-config {path}, line {number}: write key=value (got {line.split('=')[0]!r})")
        settings[key.strip()] = value.strip()
    return refuse_reserved(settings, f"--kafka-config {path}")


def refuse_reserved(settings: dict[str, str], where: str) -> dict[str, str]:
    """``settings``, unless one of them is kappa's to set (ReplayError naming it and ``where``)."""
    for key in settings:
        if key in RESERVED:
            raise ReplayError(f"{where}: {key} is kappa's to set ({RESERVED[key]})")
    return settings


def configure(settings: dict[str, str]) -> None:
    """This process's settings (the CLI's flags), over ``$KAPPA_KAFKA_CONFIG``'s."""
    os.environ[_FLAGS_ENV] = json.dumps(settings)


def user_settings() -> dict[str, str]:
    env = os.environ.get(KAFKA_CONFIG_ENV)
    return {**(read_properties(env) if env else {}), **json.loads(os.environ.get(_FLAGS_ENV) or "{}")}


def client_config(config: dict) -> dict:
    """``config`` (kappa's settings for one client) with the user's settings added."""
    return {**config, **user_settings()}


def redact(text: str) -> str:
    """``text`` with the value of every secret setting replaced by ``***``."""
    for key, value in user_settings().items():
        if value and any(word in key.lower() for word in _SECRET_WORDS):
            text = text.replace(value, "***")
    return text


class ClientErrors:
    """The last error a client reported in the background (authentication, TLS, name
    resolution): a request that times out names it as its cause. Pass as ``error_cb``."""

    def __init__(self):
        self.last = None

    def __call__(self, err) -> None:
        self.last = err

    def refused(self, client) -> bool:
        """Whether the cluster refused us (authentication or TLS): waiting longer cannot help."""
        from confluent_kafka import KafkaError

        client.poll(0)
        if self.last is None:
            return False
        # A TLS 1.3 broker rejects a missing or untrusted client certificate after the
        # handshake: librdkafka reports a transport error carrying the TLS alert.
        return (self.last.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL)
                or "ssl/tls alert" in self.last.str().lower())

    def cause(self, client) -> str:
        """``": <the error>"`` (secrets hidden), or ``""``; serves ``client``'s queued callbacks first."""
        client.poll(0)
        return "" if self.last is None else f": {redact(self.last.str())}"


class Unreachable(Exception):
    """No metadata from the cluster: ``str`` is what to say after "cannot reach Kafka at X"."""

    def __init__(self, waited_s: float | None, cause: str):
        self.cause = cause
        super().__init__(("" if waited_s is None else f" within {waited_s:.0f}s") + cause)


def wait_for_metadata(client, errors: ClientErrors, timeout_s: float, topic: str | None = None):
    """``client.list_topics`` within ``timeout_s``, in short requests, so that a cluster that
    refuses the credentials or the certificate is reported at once; else :class:`Unreachable`."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.list_topics(topic, timeout=min(1.0, max(0.1, deadline - time.monotonic())))
        except KafkaException:
            refused = errors.refused(client)
            if refused or time.monotonic() >= deadline:
                raise Unreachable(None if refused else timeout_s, errors.cause(client)) from None
