"""kappa against a secured cluster: a broker of the test's own with an SSL listener that
requires client certificates (mTLS) and a SASL_SSL listener (SCRAM-SHA-512 and PLAIN),
certificates made by the test with openssl. Every command takes librdkafka settings
from ``--kafka-config`` / ``--kafka-option``; no secret is ever written; a wrong
password or an untrusted certificate is one line naming the cause."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from kappa.runners.home import kappa_home
from kappa.runners.local.kafka import KafkaBroker
from kappa.runners.local.process import free_port
from tests.kafka_helpers import create_topic
from tests.test_crash_restart import _KillableRun, _ends, _read_to
from tests.test_runners import kappa

pytestmark = [pytest.mark.kafka, pytest.mark.runners]

SCRAM_PASSWORD = "scram-Pa55-word-7f3c"
PLAIN_PASSWORD = "plain-Pa55-word-91ab"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(folder: Path, name: str = "ca") -> Path:
    """A CA, a broker certificate for 127.0.0.1 and a client certificate, all PEM."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-days", "2", "-subj", f"/CN=kappa-test-{name}", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who in ("broker", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key", "-out", f"{who}.csr",
                 "-subj", f"/CN=kappa-test-{who}", cwd=folder)
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", f"{name}.pem", "-CAkey", f"{name}.key",
                 "-CAcreateserial", "-out", f"{who}.pem", "-days", "2", "-extfile", "san.ext", cwd=folder)
    # Kafka's PEM keystore: the (PKCS#8) private key and the certificate in one file.
    _openssl("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.pk8", cwd=folder)
    (folder / "broker-keystore.pem").write_text((folder / "broker.pk8").read_text() + (folder / "broker.pem").read_text())
    return folder


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """(broker, certificate folder, {protocol: bootstrap})."""
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    root = tmp_path_factory.mktemp("secured")
    certs = _certificates(root / "certs")
    ports = {"SSL": free_port(), "SASL_SSL": free_port()}
    broker = KafkaBroker(kappa_home(), root / "broker", port=free_port(), controller_port=free_port(),
                         listeners=ports, settings={
                             "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs / "broker-keystore.pem"),
                             "ssl.truststore.type": "PEM", "ssl.truststore.location": str(certs / "ca.pem"),
                             "listener.name.ssl.ssl.client.auth": "required",
                             "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
                             "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                                 "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                             "listener.name.sasl_ssl.plain.sasl.jaas.config":
                                 "org.apache.kafka.common.security.plain.PlainLoginModule required "
                                 f'user_paula="{PLAIN_PASSWORD}";',
                         })
    broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        upsert = UserScramCredentialUpsertion("sam", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                              SCRAM_PASSWORD.encode())
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=30)
        time.sleep(1)  # the credential reaches the broker's cache through the metadata log
        yield broker, certs, {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    finally:
        broker.stop()


def _scram_config(path: Path, certs: Path, password: str = SCRAM_PASSWORD) -> Path:
    path.write_text(f"""# SASL_SSL with SCRAM, as for Confluent Cloud (PLAIN there) or MSK
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=sam
sasl.password={password}
ssl.ca.location={certs / 'ca.pem'}
""")
    return path


def _mtls_options(certs: Path, ca: str = "ca.pem") -> list[str]:
    return ["--kafka-option", "security.protocol=SSL", "--kafka-option", f"ssl.ca.location={certs / ca}",
            "--kafka-option", f"ssl.certificate.location={certs / 'client.pem'}",
            "--kafka-option", f"ssl.key.location={certs / 'client.key'}"]


def _no_secret_in(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in (SCRAM_PASSWORD, PLAIN_PASSWORD):
                assert secret.encode() not in data, f"{path} holds a password"


def _window_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.jsonl"))}


def test_produce_and_replay_over_sasl_ssl_equal_a_replay_over_plaintext_and_write_no_secret(secured, tmp_path):
    broker, certs, secure = secured
    topic, registry = "payments-scram", tmp_path / "registry.json"
    config = _scram_config(tmp_path / "client.properties", certs)
    kappa("produce", "payments", "--topic", topic, "--bootstrap", secure["SASL_SSL"], "--kafka-config", config,
          "--partitions", "2", "--registry", registry, "--seed", "5", "--count", "600", "--rate", "4",
          "--start", "2026-11-20T09:00:00Z", "--no-wait", "--late", "0.02", "--late-by", "30s")
    run_dir = tmp_path / "run"
    kappa("replay", "--pipeline", "merchant_totals", "--source", f"kafka://{secure['SASL_SSL']}/{topic}",
          "--kafka-config", config, "--registry", registry, "--runner", "direct", "--run-dir", run_dir,
          "--sink", f"file:{tmp_path / 'scram' / 'totals.jsonl'}", "--quiet")
    # The same manifest through PLAIN, with the settings as flags only, read by two worker
    # processes (they get the settings from kappa's environment); and the plaintext listener.
    kappa("replay", "--manifest", run_dir / "manifest.json", "--registry", registry, "--runner", "direct",
          "--parallelism", "2", "--kafka-option", "security.protocol=SASL_SSL", "--kafka-option", "sasl.mechanism=PLAIN",
          "--kafka-option", "sasl.username=paula", "--kafka-option", f"sasl.password={PLAIN_PASSWORD}",
          "--kafka-option", f"ssl.ca.location={certs / 'ca.pem'}",
          "--sink", f"file:{tmp_path / 'plain' / 'totals.jsonl'}", "--quiet")
    kappa("replay", "--pipeline", "merchant_totals", "--source", f"kafka://{broker.bootstrap}/{topic}",
          "--registry", registry, "--runner", "direct", "--sink", f"file:{tmp_path / 'open' / 'totals.jsonl'}",
          "--quiet")
    scram = _window_files(tmp_path / "scram")
    assert len([name for name in scram if ".dead." not in name]) >= 3  # 150 s of 1-minute windows
    assert scram == _window_files(tmp_path / "plain") == _window_files(tmp_path / "open")
    _no_secret_in(run_dir)
    _no_secret_in(tmp_path / "scram")
    assert sum(r["stop"] - r["start"] for r in json.loads((run_dir / "manifest.json").read_text())["ranges"]) == 600


def test_a_live_run_over_mtls_writes_to_a_secured_kafka_sink_and_verify_reads_it_back(secured, tmp_path):
    broker, certs, secure = secured
    topic, results, registry = "payments-mtls", "totals-mtls", tmp_path / "registry.json"
    create_topic(_admin(broker.bootstrap), topic, 2)
    create_topic(_admin(broker.bootstrap), results, 1)
    kappa("produce", "payments", "--topic", topic, "--bootstrap", secure["SSL"], *_mtls_options(certs),
          "--registry", registry, "--seed", "6", "--count", "400", "--rate", "40",
          "--start", "2026-11-20T09:00:00Z", "--no-wait")
    run_dir = tmp_path / "live-run"
    run = _KillableRun(["--pipeline", "merchant_totals", "--source", f"kafka://{secure['SSL']}/{topic}",
                        *_mtls_options(certs), "--from", "earliest", "--registry", registry, "--runner", "prism",
                        "--window", "fixed:4s", "--sink", f"kafka://{secure['SSL']}/{results}",
                        "--run-dir", run_dir], tmp_path / "live.log")
    try:
        ends = _ends(broker.bootstrap, topic)
        run.wait_for(lambda: _read_to(run_dir) == ends, "the live run reading to the end", 180)
        time.sleep(2)
        run.drain()
    finally:
        run.kill()
    kappa("replay", "--manifest", run_dir / "manifest.json", "--registry", registry, "--runner", "direct",
          *_mtls_options(certs), "--sink", f"file:{tmp_path / 'replay' / 'totals.jsonl'}", "--quiet")
    verdict = kappa("verify", f"kafka://{secure['SSL']}/{results}", f"file:{tmp_path / 'replay' / 'totals.jsonl'}",
                    *_mtls_options(certs), check=False)
    assert verdict.returncode == 0, verdict.stdout[-3000:] + verdict.stderr[-2000:]
    assert " 0 missing in B, 0 extra in B, 0 not final" in verdict.stdout
    _no_secret_in(run_dir)


@pytest.mark.parametrize("case", ["wrong password", "untrusted certificate", "no client certificate"])
def test_a_refused_connection_is_one_line_naming_the_cause_and_no_secret(secured, tmp_path, case):
    broker, certs, secure = secured
    if case == "wrong password":
        flags = ["--kafka-config", _scram_config(tmp_path / "bad.properties", certs, "not-" + SCRAM_PASSWORD)]
        where, cause = secure["SASL_SSL"], "Authentication failed"
    elif case == "untrusted certificate":
        other = _certificates(tmp_path / "other", "other-ca")
        flags, where, cause = _mtls_options(certs, ca=str(other / "other-ca.pem")), secure["SSL"], "certificate verify failed"
    else:
        flags = ["--kafka-option", "security.protocol=SSL", "--kafka-option", f"ssl.ca.location={certs / 'ca.pem'}"]
        where, cause = secure["SSL"], "SSL"
    started = time.monotonic()
    done = kappa("plan", "--source", f"kafka://{where}/payments-scram", *flags, "--timeout", "60", check=False)
    waited = time.monotonic() - started
    assert done.returncode == 1
    assert waited < 30, f"a refused connection waited {waited:.0f} s of its 60 s timeout"  # it names the cause at once
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kappa: error: cannot reach Kafka at"), done.stderr
    assert cause in lines[0], lines[0]
    assert SCRAM_PASSWORD not in done.stderr


def test_settings_kappa_owns_are_refused_by_name():
    done = kappa("plan", "--source", "kafka://127.0.0.1:1/t", "--kafka-option", "enable.auto.commit=true", check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == ("kappa: error: --kafka-option: enable.auto.commit is kappa's to set "
                                   "(kappa commits offsets itself, once results are durable)")


def _admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def test_settings_come_from_kappa_kafka_config_then_a_config_files_kafka_table_then_flags(tmp_path, monkeypatch):
    """Invariant: later sources win key by key (environment file, ``--config``'s [kafka],
    ``--kafka-option``), and redact hides every secret value they hold."""
    from kappa.replay import kafka_client
    from kappa.runners import cliargs
    from kappa.runners.commands import run_flags
    from kappa.runners.cli import build_parser

    env_file = tmp_path / "env.properties"
    env_file.write_text("# from the environment\nsecurity.protocol=SSL\nsasl.password=env-secret\nclient.id=env\n")
    (tmp_path / "job.toml").write_text('pipeline = "merchant_totals"\n[kafka]\n"client.id" = "toml"\n'
                                       '"security.protocol" = "SASL_SSL"\n"enable.ssl.certificate.verification" = true\n')
    monkeypatch.setenv(kafka_client.KAFKA_CONFIG_ENV, str(env_file))
    argv = ["replay", "--config", str(tmp_path / "job.toml"), "--kafka-option", "client.id=flag"]
    try:
        parser = build_parser()  # as `kappa` does: the parser, then the config file's defaults, then the flags
        run_flags.preload_config(argv)
        cliargs.apply_kafka_flags(parser.parse_args(argv))
        assert kafka_client.user_settings() == {"security.protocol": "SASL_SSL", "sasl.password": "env-secret",
                                                "client.id": "flag", "enable.ssl.certificate.verification": "true"}
        assert kafka_client.redact("login with env-secret failed") == "login with *** failed"
    finally:
        kafka_client.configure({})
