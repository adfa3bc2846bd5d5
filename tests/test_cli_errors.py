"""Bad input gets one line naming what was wrong, a non-zero exit, and no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from kappa.runners.local.process import free_port


def kappa(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kappa.runners.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, code: int) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [l for l in result.stderr.splitlines() if "error:" in l]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]


@pytest.mark.parametrize("args, fragments", [
    (["produce", "rides"], ["argument domain", "invalid choice: 'rides'"]),
    (["produce", "payments", "--count", "-5"], ["argument --count", "at least 1"]),
    (["produce", "payments", "--count", "many"], ["argument --count", "whole number"]),
    (["produce", "payments", "--rate", "0"], ["argument --rate", "positive"]),
    (["produce", "payments", "--disorder", "1.5"], ["argument --disorder", "between 0 and 1"]),
    (["produce", "payments", "--late-by", "soon"], ["argument --late-by", "not a duration"]),
    (["produce", "payments", "--start", "2026-11-20T09:00"], ["argument --start", "no UTC offset"]),
    (["produce", "payments", "--format", "xml"], ["argument --format", "invalid choice"]),
    (["produce", "payments", "--disorder", "0.6", "--late", "0.5"], ["--disorder plus --late"]),
    (["produce", "payments", "--archive", "out.txt", "--no-kafka"], ["argument --archive", ".jsonl or .avro"]),
    (["produce", "payments", "--no-kafka"], ["--no-kafka needs --archive"]),
    (["local", "up", "--kafka-port", "70000"], ["argument --kafka-port", "1-65535"]),
    (["local", "sideways"], ["argument action", "invalid choice"]),
    (["plan"], ["--source"]),
    (["plan", "--source", "kafka://h:1/t", "--max-out-of-orderness", "lots"], ["argument --max-out-of-orderness"]),
    (["plan", "--source", "kafka://h:1/t", "--on-missing-offsets", "latest"], ["argument --on-missing-offsets"]),
])
def test_bad_flags_are_named(args, fragments):
    assert_one_line_error(kappa(*args), *fragments, code=2)


@pytest.mark.parametrize("args, fragments", [
    (["plan", "--source", "mqtt://x/y"], ["unknown source scheme 'mqtt'"]),
    (["plan", "--source", "kafka://no-port/t"], ["'no-port' is not HOST:PORT"]),
    (["plan", "--source", "kafka://127.0.0.1:9092/t", "--from", "yesterday"], ["--from 'yesterday' is not a replay point"]),
    (["plan", "--source", "kafka://127.0.0.1:9092/t", "--to", "+soon"], ["--to +soon"]),
    (["plan", "--source", "kafka://127.0.0.1:9092/t", "--event-time", "ingest"], ["--event-time", "not an event-time source"]),
    (["plan", "--source", "kafka://127.0.0.1:9092/t", "--schema", "nope"], ["--schema 'nope'"]),
    (["read", "--source", "file:/no/such/file.jsonl"], ["no such file"]),
    (["read"], ["read needs --manifest or --source"]),
])
def test_bad_replay_input_is_named_before_any_work(args, fragments):
    assert_one_line_error(kappa(*args), *fragments, code=1)


def test_missing_manifest_file_is_named(tmp_path):
    assert_one_line_error(kappa("read", "--manifest", str(tmp_path / "m.json")), "cannot read manifest", code=1)


def test_plan_against_an_unreachable_broker_names_it():
    port = free_port()
    result = kappa("plan", "--source", f"kafka://127.0.0.1:{port}/payment_msg", "--timeout", "2")
    assert_one_line_error(result, f"cannot reach Kafka at 127.0.0.1:{port} within 2s", code=1)


def test_unreachable_broker_is_named_after_a_bounded_wait():
    port = free_port()
    result = kappa("produce", "payments", "--count", "1", "--bootstrap", f"127.0.0.1:{port}", timeout=60)
    assert_one_line_error(result, f"cannot reach Kafka at 127.0.0.1:{port}", code=1)


def test_broker_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = kappa("local", "up", "--only", "kafka", "--kafka-port", str(port),
                       "--kafka-controller-port", str(free_port()), env={"KAPPA_HOME": str(tmp_path)})
    assert_one_line_error(result, f"127.0.0.1:{port} is already in use", "--kafka-port", code=1)


def test_missing_java_is_a_one_line_error(tmp_path):
    env = {"KAPPA_HOME": str(tmp_path), "PATH": str(tmp_path / "empty"), "JAVA_HOME": ""}
    result = kappa("local", "up", "--kafka-port", str(free_port()), "--kafka-controller-port", str(free_port()),
                   env=env)
    assert_one_line_error(result, "Java not found", code=1)


def test_unwritable_archive_folder_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = kappa("produce", "payments", "--archive", str(blocker / "x.jsonl"), "--no-kafka")
    assert_one_line_error(result, "--archive", code=1)
