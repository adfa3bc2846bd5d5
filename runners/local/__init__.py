"""The embedded local stack: a real Apache Kafka broker (KRaft, single node) and the
real Pub/Sub emulator, on 127.0.0.1, with their state under ``kappa_home()``."""

from kappa.runners.local.kafka import KAFKA_VERSION, KafkaBroker, install_kafka
from kappa.runners.local.pubsub import PubSubEmulator

__all__ = ["KAFKA_VERSION", "KafkaBroker", "PubSubEmulator", "install_kafka"]
