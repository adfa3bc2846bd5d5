"""Small Kafka helpers the commands share: where the cluster is, is it there,
and making sure a topic exists."""

from __future__ import annotations

import os

from kappa.replay.kafka_client import ClientErrors, Unreachable, client_config, wait_for_metadata
from kappa.runners.errors import KappaError

__all__ = ["DEFAULT_BOOTSTRAP", "admin_client", "ensure_topic", "resolve_bootstrap"]

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def resolve_bootstrap(flag: str | None) -> str:
    """``--bootstrap``, else ``$KAFKA_BOOTSTRAP``, else the local stack's broker."""
    return flag or os.environ.get("KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP


def admin_client(bootstrap: str, timeout_s: float = 10.0):
    """An AdminClient for a cluster that answered a metadata request within ``timeout_s``."""
    from confluent_kafka.admin import AdminClient

    errors = ClientErrors()
    admin = AdminClient(client_config({"bootstrap.servers": bootstrap, "log_level": 0, "error_cb": errors}))
    try:
        wait_for_metadata(admin, errors, timeout_s)
    except Unreachable as err:
        raise KappaError(f"cannot reach Kafka at {bootstrap}{err}" + ("" if err.cause else (
            " (start the local broker with `kappa local up`, or point --bootstrap / KAFKA_BOOTSTRAP at a "
            "cluster)"))) from None
    return admin


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
