"""--registry https://...: writer schemas by id over HTTP with basic auth, through
confluent-kafka's SchemaRegistryClient. The server is tests/registry_server.py, a
stand-in speaking Confluent Schema Registry's REST API (Confluent's own server is not
reachable from this machine); it keeps its schemas in a registry file, so the same
replay through the file must give the same results."""

from __future__ import annotations

import json

import pytest

from tests.kafka_helpers import create_topic
from tests.registry_server import RegistryServer
from tests.test_runners import kappa

pytestmark = [pytest.mark.kafka]

PASSWORD = "registry-Pa55-3e1d"


@pytest.fixture
def registry(tmp_path):
    server = RegistryServer(tmp_path / "store.json", "reader", PASSWORD)
    try:
        yield server
    finally:
        server.stop()


def _window_files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.jsonl"))}


def test_produce_registers_over_http_and_a_replay_decodes_by_id_as_a_file_registry_does(
        registry, kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 2)
    with_password = registry.url.replace("http://", f"http://reader:{PASSWORD}@")
    kappa("produce", "payments", "--topic", topic_name, "--bootstrap", kafka_bootstrap, "--registry", with_password,
          "--seed", "9", "--count", "400", "--rate", "5", "--start", "2026-11-20T09:00:00Z", "--no-wait")
    assert f"POST /subjects/{topic_name}-value/versions" in registry.requests
    run_dir = tmp_path / "run"
    kappa("replay", "--pipeline", "merchant_totals", "--source", f"kafka://{kafka_bootstrap}/{topic_name}",
          "--registry", registry.url, "--registry-option", f"basic.auth.user.info=reader:{PASSWORD}",
          "--runner", "direct", "--run-dir", run_dir, "--sink", f"file:{tmp_path / 'http' / 'totals.jsonl'}", "--quiet")
    assert "GET /schemas/ids/1" in registry.requests
    kappa("replay", "--manifest", run_dir / "manifest.json", "--registry", tmp_path / "store.json", "--runner",
          "direct", "--sink", f"file:{tmp_path / 'file' / 'totals.jsonl'}", "--quiet")
    http = _window_files(tmp_path / "http")
    assert len([n for n in http if ".dead." not in n]) >= 2
    assert (tmp_path / "http" / "totals.dead.jsonl").read_text() == ""
    assert http == _window_files(tmp_path / "file")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["decoding"]["registry"] == registry.url and manifest["decoding"]["schema_ids"] == [1]
    for path in run_dir.rglob("*"):
        assert not path.is_file() or PASSWORD.encode() not in path.read_bytes(), path


def test_a_refused_registry_is_one_line_naming_it(registry, kafka_bootstrap, kafka_admin, topic_name):
    create_topic(kafka_admin, topic_name, 1)
    done = kappa("plan", "--source", f"kafka://{kafka_bootstrap}/{topic_name}", "--registry", registry.url,
                 "--registry-option", "basic.auth.user.info=reader:wrong", check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"kappa: error: schema registry {registry.url}: subject ") and "HTTP 401" in lines[0]


def test_a_replay_whose_registry_file_does_not_exist_is_refused_before_it_dead_letters_everything(
        kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 1)
    kappa("produce", "payments", "--topic", topic_name, "--bootstrap", kafka_bootstrap,
          "--registry", tmp_path / "registry.json", "--count", "10", "--no-wait")
    missing = tmp_path / "elsewhere.json"
    done = kappa("replay", "--pipeline", "merchant_totals", "--source", f"kafka://{kafka_bootstrap}/{topic_name}",
                 "--registry", missing, "--runner", "direct", "--sink", f"file:{tmp_path / 'out' / 't.jsonl'}",
                 check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"kappa: error: --registry {missing}: no such schema registry file, so no record could be decoded "
        "(give the file `kappa produce` wrote, or an https:// registry)")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
