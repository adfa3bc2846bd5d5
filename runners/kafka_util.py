"""Small Kafka helpers the commands share: where the cluster is, is it there,
and making sure a topic exists."""

from __future__ import annotations

import os
import time

from kappa.replay.kafka_client import ClientErrors, client_config
from kappa.runners.errors import KappaError

__all__ = ["DEFAULT_BOOTSTRAP", "admin_client", "ensure_topic", "resolve_bootstrap"]

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def resolve_bootstrap(flag: str | None) -> str:
    """``--bootstrap``, else ``$KAFKA_BOOTSTRAP``, else the local stack's broker."""
    return flag or os.environ.get("KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP


def admin_client(bootstrap: str, timeout_s: float = 10.0):
    """An AdminClient for a cluster that answered a metadata request within ``timeout_s``."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors = ClientErrors()
    admin = AdminClient(client_config({"bootstrap.servers": bootstrap, "log_level": 0, "error_cb": errors}))
    deadline = time.monotonic() + timeout_s
    while True:  # short requests: a cluster that refuses the credentials is reported at once
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return admin
        except KafkaException:
            if time.monotonic() < deadline and not errors.refused(admin):
                continue
            waited = "" if errors.refused(admin) else f" within {timeout_s:.0f}s"
            cause = errors.cause(admin)
            raise KappaError(f"cannot reach Kafka at {bootstrap}{waited}" + (cause or (
                " (start the local broker with `kappa local up`, or point --bootstrap / KAFKA_BOOTSTRAP at a "
                "cluster)"))) from None


def ensure_topic(admin, topic: str, partitions: int) -> int:
    """Create ``topic`` with ``partitions`` if it is missing; return its partition count."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    existing = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
    if existing is not None and existing.error is None:
        return len(existing.partitions)
    # replication_factor=-1: the cluster's default (1 on the local broker).
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=-1)])[topic]
    try:
        future.result(timeout=30)
    except KafkaException as err:
        if "TOPIC_ALREADY_EXISTS" not in str(err):
            raise KappaError(f"cannot create topic {topic!r}: {err.args[0].str()}") from None
    return partitions
