"""Session fixtures for the real components: an Apache Kafka broker, the Pub/Sub
emulator and a standalone Flink cluster, each started once per test session on free
ports with throw-away data.

``KAFKA_BOOTSTRAP`` / ``PUBSUB_EMULATOR_HOST`` / ``FLINK_MASTER`` point the tests at
running ones instead. A component that cannot start fails every test that needs it: these
fixtures never skip.
"""

from __future__ import annotations

import os
import uuid

import pytest

from kappa.runners.home import kappa_home
from kappa.runners.kafka_util import admin_client
from kappa.runners.local.flink_cluster import FlinkCluster
from kappa.runners.local.kafka import KafkaBroker
from kappa.runners.local.process import free_port
from kappa.runners.local.pubsub import PubSubEmulator


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> str:
    """bootstrap.servers of a real broker that answers."""
    existing = os.environ.get("KAFKA_BOOTSTRAP")
    if existing:
        admin_client(existing)  # raises, failing the test, if it does not answer
        yield existing
        return
    broker = KafkaBroker(kappa_home(), tmp_path_factory.mktemp("kafka"), port=free_port(), controller_port=free_port())
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def pubsub_host(tmp_path_factory) -> str:
    """host:port of a real Pub/Sub emulator that answers."""
    existing = os.environ.get("PUBSUB_EMULATOR_HOST")
    if existing:
        yield existing
        return
    emulator = PubSubEmulator(tmp_path_factory.mktemp("pubsub"), port=free_port())
    emulator.start()
    try:
        yield emulator.host
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def flink_master(tmp_path_factory) -> str:
    """The REST address (host:port) of a real standalone Flink cluster that answers."""
    from kappa.runners.profiles import check_flink_master

    existing = os.environ.get("FLINK_MASTER")
    if existing:
        check_flink_master(existing, 10)  # raises, failing the test, if it does not answer
        yield existing
        return
    cluster = FlinkCluster(kappa_home(), tmp_path_factory.mktemp("flink"), rest_port=free_port())
    cluster.start()
    try:
        yield cluster.master
    finally:
        cluster.stop()


@pytest.fixture
def topic_name(request) -> str:
    """A topic name no other test uses."""
    return f"t-{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kafka_admin(kafka_bootstrap):
    return admin_client(kafka_bootstrap)
