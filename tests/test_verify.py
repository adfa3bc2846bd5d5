"""`kappa verify A B`: equal result sets agree; a changed value, a missing, an extra or a
not-final window is reported with the window named; re-deliveries count once; windows
with too-late data can be left out; file, Kafka and Pub/Sub sets compare alike."""

from __future__ import annotations

import argparse
import json
import uuid
from decimal import Decimal

import pytest

from kappa.runners.errors import KappaError, UsageError
from kappa.runners.local.process import free_port
from kappa.runners.local.pubsub import DEFAULT_PROJECT, emulator_clients
from kappa.runners.sinks import FileSink, parse_sink
from kappa.runners.commands.verify import add_parsers, compare, final_panes, read_result_set
from tests.test_sinks import MINUTE, T0, dead_letter, results_over, write_results


def verify(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="kappa")
    add_parsers(parser.add_subparsers())
    args = parser.parse_args(["verify", *argv])
    return args.run(args)


def file_set(tmp_path, name: str, results: list[dict], suffix: str = ".jsonl") -> str:
    spec = f"file:{tmp_path}/{name}/totals{suffix}"
    write_results(parse_sink(spec), results)
    return spec


def changed(results: list[dict], window_start_ms: int, key: str) -> list[dict]:
    """The results with the final pane of (key, window) counting one more payment."""
    out = []
    for r in results:
        if r["key"] == key and r["is_last"] and r["window_start"].timestamp() * 1000 == window_start_ms:
            r = {**r, "values": {"count": r["values"]["count"] + 1, "total_amount": Decimal("13.00")}}
        out.append(r)
    return out


def test_equal_sets_agree_across_formats(tmp_path, capsys):
    results = results_over()
    a = file_set(tmp_path, "a", results, ".avro")  # decimals as Decimal
    b = file_set(tmp_path, "b", results[::-1])  # decimals as "12.50" strings
    assert verify(a, b) == 0
    out = capsys.readouterr().out
    assert "4 agree, 0 values differ, 0 missing in B, 0 extra in B, 0 not final" in out
    assert out.rstrip().endswith("A and B agree")


def test_a_changed_value_a_missing_and_an_extra_window_are_reported(tmp_path, capsys):
    results = results_over(windows=3)
    a = file_set(tmp_path, "a", results[:-4])  # A has windows 0 and 1
    b_results = changed(results, T0, "Acme")
    b = file_set(tmp_path, "b", [r for r in b_results if r["window_start"].timestamp() * 1000 != T0 + MINUTE])
    assert verify(a, b) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "1 agree, 1 values differ, 2 missing in B, 2 extra in B, 0 not final" in lines[2]
    assert ("merchant_totals key=Acme [2026-11-20T09:00:00Z, 2026-11-20T09:01:00Z): values differ: "
            "A count=3 total_amount=37.50 | B count=4 total_amount=13.00") in lines
    assert any(l.startswith("merchant_totals key=Zeta [2026-11-20T09:01:00Z, 2026-11-20T09:02:00Z): missing in B")
               for l in lines)
    assert any(l.startswith("merchant_totals key=Acme [2026-11-20T09:02:00Z, 2026-11-20T09:03:00Z): extra in B")
               for l in lines)
    assert lines[-1] == "A and B differ"


def test_show_limits_the_listed_windows(tmp_path, capsys):
    results = results_over(windows=3)
    assert verify(file_set(tmp_path, "a", results), file_set(tmp_path, "b", results[:4]), "--show", "1") == 1
    out = capsys.readouterr().out
    assert out.count("missing in B:") == 1 and "... and 3 more (--show 4 lists them all)" in out


def test_a_window_without_a_last_pane_is_not_final():
    results = results_over(windows=1, keys=("Acme",))
    comparison = compare(final_panes(results), final_panes(results[:1]))
    assert comparison.counts["not final"] == 1 and not comparison.ok
    assert "not final: no is_last pane in B" in comparison.problems[0][1]


def test_redelivered_copies_of_a_result_count_once():
    results = results_over()
    assert final_panes(results + results[:5]).finals == final_panes(results).finals
    assert compare(final_panes(results + results), final_panes(results)).ok


def test_pipeline_narrows_the_comparison(tmp_path, capsys):
    a = file_set(tmp_path, "a", results_over() + results_over(pipeline="fraud_alerts"))
    b = file_set(tmp_path, "b", results_over())
    assert verify(a, b, "--pipeline", "merchant_totals") == 0
    with pytest.raises(UsageError, match="^--pipeline nope: no results"):
        verify(a, b, "--pipeline", "nope")


def test_windows_with_too_late_data_are_excluded(tmp_path, capsys):
    results = results_over()
    a = file_set(tmp_path, "a", results)
    b = file_set(tmp_path, "b", changed(results, T0 + MINUTE, "Zeta"))
    dead = tmp_path / "live.dead.jsonl"
    by_log = dead_letter(2, (T0 + MINUTE, T0 + 2 * MINUTE))._replace(decided_by="log")
    by_clock = by_log._replace(decided_by="clock")
    dead.write_text("".join(json.dumps(d.to_json()) + "\n" for d in [dead_letter(1), by_log]))
    assert verify(a, b) == 1
    assert verify(a, b, "--exclude-too-late", str(dead)) == 1, "both runs dropped what the log decided"
    dead.write_text("".join(json.dumps(d.to_json()) + "\n" for d in [dead_letter(1), by_clock]))
    capsys.readouterr()
    assert verify(a, b, "--exclude-too-late", str(dead)) == 0
    assert ("2 agree, 0 values differ, 0 missing in B, 0 extra in B, 0 not final, 2 excluded (too late by the clock "
            "in a live run)") in capsys.readouterr().out


@pytest.mark.kafka
def test_file_and_kafka_copies_of_the_same_results_agree_even_produced_twice(tmp_path, kafka_bootstrap, topic_name):
    results = results_over()
    sink = parse_sink(f"kafka://{kafka_bootstrap}/{topic_name}?format=avro")
    sink.preflight(10)
    write_results(sink, results)
    write_results(sink, results)  # a re-run: the same ids again
    assert verify(file_set(tmp_path, "a", results), str(sink)) == 0
    assert verify(str(sink), file_set(tmp_path, "b", changed(results, T0, "Zeta"))) == 1


@pytest.mark.pubsub
def test_a_pubsub_subscription_is_read_until_quiet(tmp_path, pubsub_host, monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_host)
    name = f"verify-{uuid.uuid4().hex[:10]}"
    sink = parse_sink(f"pubsub://{DEFAULT_PROJECT}/{name}")
    sink.preflight(10)
    _, subscriber = emulator_clients(pubsub_host)
    subscription = subscriber.subscription_path(DEFAULT_PROJECT, name)
    subscriber.create_subscription(request={"name": subscription, "topic": sink.path})
    results = results_over()
    write_results(sink, results)
    assert verify(f"pubsub://{subscription}", file_set(tmp_path, "a", results), "--timeout", "2") == 0


def test_unknown_schemes_and_empty_globs_are_usage_errors(tmp_path):
    b = file_set(tmp_path, "b", results_over(windows=1))
    with pytest.raises(UsageError, match="^A ftp://x: unknown result-set scheme 'ftp'"):
        verify("ftp://x", b)
    with pytest.raises(UsageError, match=r"^A file:.*/nothing/totals.jsonl: no window files match .*totals-\*\.jsonl"):
        verify(f"file:{tmp_path}/nothing/totals.jsonl", b)
    with pytest.raises(UsageError, match="^--exclude-too-late .*: cannot read it"):
        verify(b, b, "--exclude-too-late", str(tmp_path / "missing.jsonl"))


def test_an_unreachable_broker_is_an_environment_error(tmp_path):
    b = file_set(tmp_path, "b", results_over(windows=1))
    with pytest.raises(KappaError, match="^B kafka://127.0.0.1:.*: cannot reach Kafka") as err:
        verify(b, f"kafka://127.0.0.1:{free_port()}/totals", "--timeout", "1")
    assert not isinstance(err.value, UsageError)


def test_window_files_of_another_sink_are_not_read(tmp_path):
    results = results_over(windows=1)
    write_results(FileSink(tmp_path / "totals-eu.jsonl"), results_over(windows=1, keys=("Other",)))
    write_results(FileSink(tmp_path / "totals.jsonl"), results)
    assert final_panes(read_result_set(f"file:{tmp_path}/totals.jsonl", "A")).finals == final_panes(results).finals


def test_a_session_merged_away_is_no_window_on_either_side():
    """A live run's early pane of a session later merged away ends with a superseded last
    pane: that window is neither final nor 'not final', so the live run agrees with a
    replay that only ever saw the merged session."""
    from kappa.pipelines.base import result_record
    from kappa.transforms.engine import Pane

    old, merged = (T0, T0 + 10_000), (T0, T0 + 15_000)
    live = [result_record("user_sessions", Pane("u", old, "EARLY", 0, False, None), {"events": 1}),
            result_record("user_sessions", Pane("u", old, "EARLY", 1, True, None, merged), {}),
            result_record("user_sessions", Pane("u", merged, "EARLY", 0, False, None), {"events": 2}),
            result_record("user_sessions", Pane("u", merged, "ON_TIME", 1, True, None), {"events": 2})]
    replay = [result_record("user_sessions", Pane("u", merged, "ON_TIME", 0, True, None), {"events": 2})]
    a, b = final_panes(live), final_panes(replay)
    assert not a.not_final and set(a.finals) == set(b.finals)
    assert compare(a, b).ok
    assert not compare(final_panes(live[:1] + live[2:]), b).ok, "without the superseded pane, [0, 10s) is not final"
