"""``kappa replay`` / ``kappa live`` / ``kappa verify`` as a user meets them: bad input
gives one line naming the problem before any work starts (exit 2 for usage, 1 for
what the environment refuses), config files and flags combine, every flag has help."""

from __future__ import annotations

import pytest

from kappa.runners.cli import build_parser, main
from kappa.runners.profiles import check_flink_master
from kappa.runners.errors import KappaError
from kappa.runners.local.process import free_port


def _fails(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, f"expected one line, got:\n{err}"
    return code, err


@pytest.mark.parametrize("argv, code, message", [
    (["replay", "--pipeline", "merchant_totals", "--source", "ftp://x/y"], 2, "unknown source scheme 'ftp'"),
    (["replay", "--pipeline", "merchant_totals", "--source", "file:/no/such/archive.jsonl"], 2, "no such file"),
    (["replay", "--pipeline", "merchant_totals", "--source", "kafka://127.0.0.1:9/t", "--sink", "s3://b/k"], 2,
     "--sink s3://b/k: unknown sink scheme"),
    (["replay", "--source", "kafka://127.0.0.1:9/t"], 2, "--pipeline: which pipeline?"),
    (["replay", "--pipeline", "merchant_totals"], 2, "--source: where to read from?"),
    (["replay", "--pipeline", "merchant_totals", "--source", "kafka://127.0.0.1:9/t", "--window", "weekly"], 2,
     "--window weekly"),
    (["live", "--pipeline", "merchant_totals", "--source", "kafka://127.0.0.1:9/t", "--runner", "direct"], 2,
     "--runner direct: cannot run a live pipeline"),
    (["replay", "--pipeline", "merchant_totals", "--source", "kafka://127.0.0.1:9/t", "--runner", "flink",
      "--flink-master", "nohostport"], 2, "--flink-master nohostport: write HOST:PORT"),
    (["replay", "--pipeline", "merchant_totals", "--source", "kafka://127.0.0.1:9/t", "--runner", "dataflow",
      "--project", "p", "--region", "r", "--temp-location", "gs://b/t", "--sink", "file:out/x.jsonl"], 2,
     "Dataflow workers would write it on their own disks"),
    (["replay", "--pipeline", "merchant_totals", "--source", "kafka://127.0.0.1:9/t", "--runner", "dataflow",
      "--project", "p", "--region", "r", "--temp-location", "/tmp/x", "--dry-run"], 2,
     "--temp-location /tmp/x: Dataflow needs a Cloud Storage path"),
    (["live", "--pipeline", "no_such_pipeline"], 2,
     "--pipeline no_such_pipeline: unknown pipeline (choose from fraud_alerts, merchant_totals"),
])
def test_bad_input_is_one_line_naming_the_problem(capsys, argv, code, message):
    got, err = _fails(capsys, argv)
    assert got == code
    assert err.startswith("kappa: error: ") and message in err


@pytest.mark.parametrize("argv", [
    ["replay", "--runner", "spark"],
])
def test_argparse_choices_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_an_unreachable_flink_master_fails_before_work_starts(capsys):
    port = free_port()
    got, err = _fails(capsys, ["replay", "--pipeline", "merchant_totals", "--source", "kafka://127.0.0.1:9/t",
                               "--runner", "flink", "--flink-master", f"127.0.0.1:{port}", "--timeout", "2"])
    assert got == 1
    assert f"--flink-master 127.0.0.1:{port}: nothing answers there" in err


def test_a_sink_that_cannot_be_written_fails_before_work_starts(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    got, err = _fails(capsys, ["replay", "--pipeline", "merchant_totals", "--source", "kafka://127.0.0.1:9/t",
                               "--sink", f"file:{blocker}/out/totals.jsonl"])
    assert got == 1
    assert err.startswith(f"kappa: error: --sink file:{blocker}/out/totals.jsonl")


def test_flink_master_check_rejects_what_is_not_flink(tmp_path):
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(KappaError, match="not .*Flink REST endpoint"):
            check_flink_master(f"127.0.0.1:{server.server_port}", 2.0)
    finally:
        server.shutdown()


def test_a_config_file_supplies_flags_and_flags_given_win(capsys, tmp_path):
    config = tmp_path / "job.toml"
    config.write_text('pipeline = "merchant_totals"\nsource = "ftp://from-the-file/t"\n[windowing]\nwindow = "2m"\n')
    got, err = _fails(capsys, ["replay", "--config", str(config)])
    assert got == 2 and "--source ftp://from-the-file/t" in err  # the file's source was used
    got, err = _fails(capsys, ["replay", "--config", str(config), "--source", "gopher://flag/t"])
    assert got == 2 and "--source gopher://flag/t" in err  # the flag won


@pytest.mark.parametrize("text, message", [
    ('pipline = "merchant_totals"\n', "'pipline' is not a flag of `kappa replay`"),
    ('runner = "spark"\n', "runner 'spark' is not one of"),
    ('quiet = "yes"\n', "quiet takes true or false"),
    ("pipeline = \n", "not valid TOML"),
])
def test_a_bad_config_file_is_a_usage_error(capsys, tmp_path, text, message):
    config = tmp_path / "job.toml"
    config.write_text(text)
    got, err = _fails(capsys, ["replay", "--config", str(config)])
    assert got == 2 and message in err


def test_every_flag_of_every_command_has_help_and_every_command_examples():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    for name, command in sub.choices.items():
        undocumented = [a.dest for a in command._actions if not a.help and a.dest != "help"]
        assert not undocumented, f"kappa {name}: flags without help: {undocumented}"
        assert "examples:" in (command.epilog or ""), f"kappa {name} --help shows no examples"


@pytest.mark.parametrize("command", ["plan", "verify", "produce", "local"])
def test_commands_that_run_no_pipeline_start_without_importing_beam(command):
    """Importing Beam takes a second or two: a command that runs no pipeline must not pay
    for it, for its --help or (plan) for its planner."""
    import subprocess
    import sys

    script = (f"import sys; from kappa.runners.cli import build_parser; build_parser({command!r}); "
              "import kappa.replay.plan; print('apache_beam' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
