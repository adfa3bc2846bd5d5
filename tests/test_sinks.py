"""Result sinks: window files a re-run overwrites byte for byte, the same files from the
live writer, Kafka messages keyed by result id, Pub/Sub attributes, dead letters beside
the results, and one-line errors naming the flag."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from confluent_kafka import Consumer, TopicPartition

from kappa.pipelines.base import result_record
from kappa.runners.errors import KappaError, UsageError
from kappa.runners.local.process import free_port
from kappa.runners.local.pubsub import DEFAULT_PROJECT, emulator_clients
from kappa.runners.sinks import (
    ConsoleSink, FileSink, KafkaSink, PubSubSink, parse_dead_letter_sink, parse_sink, read_window_file, window_file,
    window_files,
)
from kappa.runners.sinks.files import _encode
from kappa.runners.sinks.live_files import append_result, compact_window_file
from kappa.schemas import make_codec
from kappa.schemas.records import DeadLetter, Provenance
from kappa.transforms.engine import Pane

MINUTE = 60_000
T0 = 1_795_165_200_000  # 2026-11-20T09:00:00Z


def results_over(windows: int = 2, keys: tuple[str, ...] = ("Zeta", "Acme"), panes: int = 2,
                 pipeline: str = "merchant_totals", start_ms: int = T0) -> list[dict]:
    """merchant_totals-like results: ``panes`` panes (the last one final) per key and minute window."""
    out = []
    for w in range(windows):
        window = (start_ms + w * MINUTE, start_ms + (w + 1) * MINUTE)
        for n, key in enumerate(keys):
            for i in range(panes):
                last = i == panes - 1
                pane = Pane(key, window, "ON_TIME" if last else "EARLY", i, last, None)
                values = {"count": i + n + w + 1, "total_amount": Decimal("12.50") * (i + n + w + 1)}
                out.append(result_record(pipeline, pane, values))
    return out


def run_writes(writes, live: bool = False):
    """Run one DirectRunner pipeline applying ``write(pipeline, live)`` for each; returns the result."""
    pipeline = beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"]))
    for write in writes:
        write(pipeline, live)
    result = pipeline.run()
    result.wait_until_finish()
    return result


def write_results(sink, results: list[dict], live: bool = False):
    return run_writes([lambda p, lv: sink.write_results(p | "Results" >> beam.Create(results), lv)], live)


def counter(result, name: str) -> int:
    found = result.metrics().query(MetricsFilter().with_namespace("kappa").with_name(name))["counters"]
    return sum(c.committed or c.attempted for c in found)


def dead_letter(n: int, window: tuple[int, int] | None = None) -> DeadLetter:
    provenance = Provenance("kafka", "payments", 0, n, T0)
    if window is None:
        return DeadLetter("decode_error", "not valid JSON", provenance, b"{oops", b"k")
    return DeadLetter("too_late", "arrived late", provenance, None, b"k", window[0] + 1, 5000, window)


def _by_window_then_key(results: list[dict]) -> list[dict]:
    return sorted(results, key=lambda r: (r["window_start"], r["key"], r["pane_index"]))


# -- file sink ----------------------------------------------------------------------------------

def test_window_files_are_named_by_window_in_compact_utc():
    start = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    end = datetime(2026, 11, 20, 9, 1, 0, 250_000, tzinfo=timezone.utc)
    assert window_file(Path("out/totals.jsonl"), start, end) == \
        Path("out/totals-20261120T090000Z-20261120T090100.250Z.jsonl")


def test_file_sink_writes_one_sorted_file_per_window(tmp_path):
    results = results_over()
    shuffled = random.Random(7).sample(results, len(results))
    sink = parse_sink(f"file:{tmp_path}/out/totals.jsonl")
    sink.preflight(5)
    outcome = write_results(sink, shuffled)
    files = window_files(tmp_path / "out" / "totals.jsonl")
    assert [f.name for f in files] == ["totals-20261120T090000Z-20261120T090100Z.jsonl",
                                       "totals-20261120T090100Z-20261120T090200Z.jsonl"]
    codec = make_codec("json", "window_result")
    for path, start in zip(files, (T0, T0 + MINUTE)):
        written = [codec.decode(line) for line in path.read_bytes().splitlines()]
        assert [(r["key"], r["pane_index"]) for r in written] == [("Acme", 0), ("Acme", 1), ("Zeta", 0), ("Zeta", 1)]
        assert {int(r["window_start"].timestamp() * 1000) for r in written} == {start}
    assert counter(outcome, "results_written") == len(results)


def test_running_the_same_pipeline_twice_leaves_the_same_files(tmp_path):
    sink = parse_sink(f"file:{tmp_path}/totals.jsonl")
    write_results(sink, results_over())
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    write_results(sink, results_over()[::-1])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first
    assert len(first) == 2


def test_avro_window_files_round_trip_with_exact_decimals(tmp_path):
    results = results_over(windows=1)
    sink = parse_sink(f"file:{tmp_path}/totals.avro")
    write_results(sink, results)
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    write_results(sink, results)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first  # same sync marker: same bytes
    [path] = window_files(tmp_path / "totals.avro")
    assert read_window_file(path) == _by_window_then_key(results)
    assert isinstance(read_window_file(path)[0]["values"]["total_amount"], Decimal)


@pytest.mark.parametrize("suffix", [".jsonl", ".avro"])
def test_live_writer_leaves_the_same_files_as_a_bounded_run(tmp_path, suffix):
    results = results_over()
    write_results(FileSink(tmp_path / "bounded" / f"totals{suffix}"), results)
    redelivered = results + results[:3]  # a live source may deliver a result twice
    write_results(FileSink(tmp_path / "live" / f"totals{suffix}"), redelivered, live=True)
    bounded = {p.name: p.read_bytes() for p in (tmp_path / "bounded").iterdir()}
    assert {p.name: p.read_bytes() for p in (tmp_path / "live").iterdir()} == bounded


def test_a_restarted_live_writer_adds_to_the_window_files_it_finds(tmp_path):
    """A live run restarted on the same sink keeps every pane the first run wrote: the
    window file on disk is what each result is appended to, not runner state."""
    results = results_over()
    early, late = [r for r in results if r["pane_index"] == 0], [r for r in results if r["pane_index"] == 1]
    sink = FileSink(tmp_path / "live" / "totals.jsonl")
    write_results(sink, early, live=True)
    write_results(sink, late + early[:1], live=True)  # the restart re-emits one result, with its id
    write_results(FileSink(tmp_path / "bounded" / "totals.jsonl"), results)
    assert {p.name: p.read_bytes() for p in (tmp_path / "live").iterdir()} == \
        {p.name: p.read_bytes() for p in (tmp_path / "bounded").iterdir()}


@pytest.mark.parametrize("live", [True, False], ids=["live", "bounded"])
def test_a_session_merged_away_leaves_no_file_and_other_keys_keep_theirs(tmp_path, live):
    """A superseded session (its last pane ``merged_into`` another) is dropped from its
    window file, and a file left with nothing is removed: no orphan windows."""
    old, merged = (T0, T0 + 10_000), (T0, T0 + 15_000)
    early = result_record("user_sessions", Pane("u1", old, "EARLY", 0, False, None), {"events": 1})
    superseded = result_record("user_sessions", Pane("u1", old, "EARLY", 1, True, None, merged), {})
    other = result_record("user_sessions", Pane("u2", old, "ON_TIME", 0, True, None), {"events": 4})
    final = result_record("user_sessions", Pane("u1", merged, "ON_TIME", 0, True, None), {"events": 2})
    sink = FileSink(tmp_path / "sessions.jsonl")
    write_results(sink, [early, other, final], live=live)
    assert len(window_files(sink.path)) == 2
    write_results(sink, [early, other, final, superseded], live=live)
    files = {p.name: [r["key"] for r in read_window_file(p)] for p in window_files(sink.path)}
    assert sorted(files.values()) == [["u1"], ["u2"]], "u1's old session is gone, u2's stays"
    write_results(FileSink(tmp_path / "one.jsonl"), [early, superseded], live=live)
    assert window_files(tmp_path / "one.jsonl") == [], "a window file with nothing left is removed"


def _bytes_this_process_wrote() -> int:
    """The kernel's count of bytes this process passed to write() (``/proc/self/io``): the
    DirectRunner runs the sink here, so it counts every byte the sink wrote, however written."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["wchar"])


def test_the_live_writer_writes_each_pane_once_and_each_window_once_more(tmp_path):
    """Appending a pane costs the pane: n results of one window are written once as they
    come and once more when the window closes (its file compacted), about twice the file,
    where rewriting the file per result wrote O(n²) bytes (500 times the file for these
    1,000 results, 158 MB; bench/file_sink.py has the figures)."""
    results = results_over(windows=1, keys=tuple(f"merchant-{n:04d}" for n in range(500)), panes=2)
    sink = FileSink(tmp_path / "totals.jsonl")
    before = _bytes_this_process_wrote()
    outcome = write_results(sink, results, live=True)
    written = _bytes_this_process_wrote() - before
    [path] = window_files(sink.path)
    size = path.stat().st_size
    assert counter(outcome, "file_sink_bytes_written") == 2 * size
    assert written < 3 * size, f"{written:,} bytes written for a {size:,}-byte window file"


@pytest.mark.parametrize("suffix", [".jsonl", ".avro"])
def test_an_open_window_file_is_appended_to_and_compacted_to_what_a_replay_writes(tmp_path, suffix):
    """Before its window closes a live window file holds every pane so far in arrival order,
    a re-emitted one possibly twice (same id); compacting it gives the bounded run's bytes."""
    results = results_over(windows=1)
    target = window_file(tmp_path / "live" / f"totals{suffix}", results[0]["window_start"], results[0]["window_end"])
    arrivals = results[::-1] + results[:1]  # a restart re-emits the first result
    for result in arrivals:
        append_result(target, result)
    assert [r["id"] for r in read_window_file(target)] == [r["id"] for r in arrivals]
    compact_window_file(target)
    write_results(FileSink(tmp_path / "bounded" / f"totals{suffix}"), results)
    assert target.read_bytes() == window_files(tmp_path / "bounded" / f"totals{suffix}")[0].read_bytes()


@pytest.mark.parametrize("suffix", [".jsonl", ".avro"])
def test_an_append_torn_by_a_kill_is_not_a_result_and_is_cut_before_the_next(tmp_path, suffix):
    """A live writer killed inside an append leaves part of a record at the end of the file:
    readers leave it out (its bundle did not finish, so the result comes again), and the
    next append cuts it off first."""
    results = results_over(windows=1)
    done, torn, again = results[:2], results[2], results[3:]
    sink = FileSink(tmp_path / "live" / f"totals{suffix}")
    write_results(sink, done, live=True)
    [path] = window_files(sink.path)
    with path.open("ab") as out:
        out.write(_encode(path, [torn], header=False)[:-20])
    assert [r["id"] for r in read_window_file(path)] == [r["id"] for r in _by_window_then_key(done)]
    write_results(sink, [torn, *again], live=True)
    write_results(FileSink(tmp_path / "bounded" / f"totals{suffix}"), results)
    assert path.read_bytes() == window_files(tmp_path / "bounded" / f"totals{suffix}")[0].read_bytes()


def test_dead_letters_go_beside_the_results_as_json_lines_written_once(tmp_path):
    sink = parse_sink(f"file:{tmp_path}/totals.avro")
    dead_sink = sink.dead_letter_default()
    assert dead_sink == FileSink(tmp_path / "totals.dead.jsonl", dead_letters=True)
    letters = [dead_letter(3), dead_letter(1, (T0, T0 + MINUTE))]

    def write(p, live):
        dead_sink.write_dead_letters(p | beam.Create(letters), live)

    outcome = run_writes([write])
    run_writes([write])
    lines = (tmp_path / "totals.dead.jsonl").read_text().splitlines()
    assert sorted(lines) == sorted(json.dumps(d.to_json()) for d in letters)
    assert counter(outcome, "dead_letters_written") == 2
    run_writes([write], live=True)  # live runs append
    assert len((tmp_path / "totals.dead.jsonl").read_text().splitlines()) == 4


# -- Kafka and Pub/Sub --------------------------------------------------------------------------

@pytest.mark.kafka
def test_kafka_sink_keys_and_headers_carry_the_result_id(kafka_bootstrap, topic_name):
    results = results_over()
    sink = parse_sink(f"kafka://{kafka_bootstrap}/{topic_name}?format=avro")
    sink.preflight(10)  # creates the topic
    outcome = write_results(sink, results)
    assert counter(outcome, "results_written") == len(results)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"probe-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic_name, 0, 0)])
    messages = [consumer.poll(10) for _ in results]
    consumer.close()
    codec = make_codec("avro", "window_result")
    decoded = [codec.decode(m.value()) for m in messages]
    assert sorted(decoded, key=lambda r: r["id"]) == sorted(results, key=lambda r: r["id"])
    for message, record in zip(messages, decoded):
        headers = {k: v.decode() for k, v in message.headers()}
        assert message.key() == record["id"].encode() and headers["kappa-id"] == record["id"]
        assert headers["kappa-pipeline"] == "merchant_totals" and headers["kappa-timing"] == record["timing"]
        assert headers["kappa-window"].endswith("Z") and "/" in headers["kappa-window"]


@pytest.mark.pubsub
def test_pubsub_sink_attributes_carry_the_result_id(pubsub_host, monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_host)
    name = f"results-{uuid.uuid4().hex[:10]}"
    sink = parse_sink(f"pubsub://projects/{DEFAULT_PROJECT}/topics/{name}")
    sink.preflight(10)  # creates the topic
    publisher, subscriber = emulator_clients(pubsub_host)
    subscription = subscriber.subscription_path(DEFAULT_PROJECT, name)
    subscriber.create_subscription(request={"name": subscription, "topic": sink.path})
    results = results_over(windows=1)
    write_results(sink, results)
    received = []
    while len(received) < len(results):
        response = subscriber.pull(subscription=subscription, max_messages=100, timeout=10)
        received += response.received_messages
    codec = make_codec("json", "window_result")
    assert sorted(m.message.attributes["id"] for m in received) == sorted(r["id"] for r in results)
    for m in received:
        assert codec.decode(m.message.data)["id"] == m.message.attributes["id"]
        assert m.message.attributes["pipeline"] == "merchant_totals"


# -- the grammar and its errors -----------------------------------------------------------------

def test_dead_letter_sinks_default_beside_the_result_sink():
    assert parse_sink("kafka://h:9092/totals").dead_letter_default() == \
        KafkaSink("h:9092", "totals.dead-letters", "json", dead_letters=True)
    pubsub = parse_sink("pubsub://kappa-local/totals").dead_letter_default()
    assert isinstance(pubsub, PubSubSink) and pubsub.path == "projects/kappa-local/topics/totals-dead-letters"
    assert parse_sink("-").dead_letter_default() == ConsoleSink("stderr", dead_letters=True)
    assert parse_dead_letter_sink("file:out/dead.jsonl") == FileSink(Path("out/dead.jsonl"), "--dead-letter", True)
    assert "one per window" in parse_sink("file:out/totals.jsonl").describe()


@pytest.mark.parametrize("text, fragment", [
    ("ftp://x", "--sink ftp://x: unknown sink scheme 'ftp' (use kafka://, pubsub://, file: or console)"),
    ("kafka://localhost/t", "--sink kafka://localhost/t: 'localhost' is not HOST:PORT"),
    ("kafka://h:1", "--sink kafka://h:1: write kafka://HOST:PORT/TOPIC"),
    ("kafka://h:1/t?format=xml", "--sink kafka://h:1/t?format=xml: unknown format 'xml'"),
    ("file:out/totals.csv", "--sink file:out/totals.csv: write file:PATH.jsonl or file:PATH.avro"),
    ("pubsub://projects/p/subscriptions/s", "--sink pubsub://projects/p/subscriptions/s: write pubsub://projects/"),
])
def test_a_sink_that_cannot_work_as_typed_is_a_usage_error(text, fragment):
    with pytest.raises(UsageError) as err:
        parse_sink(text)
    assert str(err.value).startswith(fragment)


@pytest.mark.parametrize("text", ["file:out/dead.avro", "kafka://h:1/t?format=avro"])
def test_dead_letters_are_always_json(text):
    with pytest.raises(UsageError, match=r"^--dead-letter .*JSON"):
        parse_dead_letter_sink(text)


def test_an_unwritable_directory_fails_the_preflight(tmp_path):
    (tmp_path / "plain").write_text("a regular file")
    sink = parse_sink(f"file:{tmp_path}/plain/out/totals.jsonl")
    with pytest.raises(KappaError) as err:
        sink.preflight(5)
    assert not isinstance(err.value, UsageError)
    assert str(err.value).startswith(f"--sink file:{tmp_path}/plain/out/totals.jsonl: cannot write to directory")


def test_an_unreachable_broker_fails_the_preflight_quickly():
    sink = parse_sink(f"kafka://127.0.0.1:{free_port()}/totals")
    with pytest.raises(KappaError) as err:
        sink.preflight(1)
    assert not isinstance(err.value, UsageError)
    assert str(err.value).startswith(f"--sink {sink}: cannot reach Kafka")


def test_console_sink_prints_one_json_line_per_result(capfd):
    results = results_over(windows=1)
    write_results(parse_sink("console"), results)
    lines = [line for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    codec = make_codec("json", "window_result")
    assert sorted(codec.decode(line.encode())["id"] for line in lines) == sorted(r["id"] for r in results)
