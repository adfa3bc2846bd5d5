"""`kappa local up|status|down` manage real processes and report them truthfully."""

from __future__ import annotations

import pytest

from kappa.runners.local.process import free_port
from tests.test_cli_errors import kappa

pytestmark = [pytest.mark.kafka, pytest.mark.pubsub]


def test_up_status_down_lifecycle(tmp_path):
    env = {"KAPPA_HOME": str(tmp_path)}
    ports = ["--kafka-port", str(free_port()), "--kafka-controller-port", str(free_port()),
             "--pubsub-port", str(free_port())]
    try:
        up = kappa("local", "up", *ports, env=env, timeout=180)
        assert up.returncode == 0, up.stderr
        assert "kafka: ready on 127.0.0.1:" in up.stdout and "pubsub: ready on 127.0.0.1:" in up.stdout

        again = kappa("local", "up", env=env)  # ports remembered from the first `up`
        assert again.returncode == 0 and again.stdout.count("already running") == 2, again.stdout + again.stderr

        status = kappa("local", "status", env=env)
        assert status.returncode == 0 and status.stdout.count(": running on 127.0.0.1:") == 2, status.stdout
        assert (tmp_path / "local" / "kafka" / "data" / "meta.properties").exists()
    finally:
        down = kappa("local", "down", env=env, timeout=120)
    assert down.returncode == 0 and down.stdout.count(": stopped") == 2, down.stdout + down.stderr

    after = kappa("local", "status", env=env)
    assert after.returncode == 3 and after.stdout.count(": stopped") == 2, after.stdout
