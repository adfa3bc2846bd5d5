"""The commit ledger of live Kafka runs (replay/durable.py), as pure logic: what a live
run commits is never past a record that is not yet durably done.

The end-to-end promise (SIGKILL, restart, verify against a replay) is
tests/test_crash_restart.py; here the ledger's arithmetic is checked against its
definition over generated reads and durable watermarks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kappa.replay.durable import (CommitSpec, StartPoint, _Ledger, already_final, commit_metadata,
                            read_commit_metadata)
from tests.beam_helpers import Sum
from kappa.transforms.engine import KeyEngine
from kappa.transforms.triggers import TriggerPolicy
from kappa.transforms.windows import FixedWindows, SessionWindows, SlidingWindows

windows = st.one_of(st.builds(FixedWindows, st.integers(1, 50)),
                    st.builds(lambda p, k: SlidingWindows(p * k, p), st.integers(1, 20), st.integers(1, 4)),
                    st.builds(SessionWindows, st.integers(1, 30)))


def _spec(window, lateness: int = 0, final_through: int | None = None, partitions=(0,)) -> CommitSpec:
    return CommitSpec("test-run", "127.0.0.1:1", "g", "t", window, lateness, final_through,
                      {p: StartPoint(0, None) for p in partitions})


@given(window=windows, lateness=st.integers(0, 20),
       steps=st.lists(st.one_of(st.tuples(st.just("read"), st.lists(st.integers(0, 300), max_size=6)),
                                st.tuples(st.just("durable"), st.integers(0, 400))), max_size=30))
def test_the_commit_is_the_lowest_offset_whose_record_is_not_done_under_the_durable_watermark(window, lateness, steps):
    """Invariant: after any reads (batches of event times, in offset order) and durable
    watermarks F (only rising), the committed offset of a partition is the lowest offset
    of a record whose close (the watermark at which all its windows, or for sessions its
    proto-session, have closed) is above F; the reader's position when there is none.
    So no record is committed before everything it leads to is written."""
    spec = _spec(window, lateness)
    book = _Ledger(spec)
    read: list[tuple[int, int]] = []  # (offset, event time)
    durable = None
    for kind, what in steps:
        if kind == "read":
            batch = [(len(read) + i, t) for i, t in enumerate(what)]
            read += batch
            book.read(0, [(o, spec.close_ms(t), None) for o, t in batch], len(read), None, None)
        else:
            durable = what if durable is None else max(durable, what)
            book.durable(what)
        points, f = book.commit_points()
        assert f == durable
        needed = [o for o, t in read if f is None or spec.close_ms(t) > f]
        assert points[0].offset == (min(needed) if needed else len(read))


def test_a_record_closes_with_its_last_window_or_its_proto_session():
    assert _spec(FixedWindows(10), 5).close_ms(12) == 25
    assert _spec(SlidingWindows(10, 5), 0).close_ms(12) == 20  # windows [5, 15) and [10, 20)
    assert _spec(SessionWindows(7), 3).close_ms(12) == 22


def test_an_open_session_holds_its_first_offset_until_its_close_is_durable():
    """A session's close is known only at the windowing stage: its hold keeps the commit
    at its earliest record while it is open, and after it closes, until F reaches its close."""
    spec = _spec(SessionWindows(10), 0, partitions=(0, 1))
    book = _Ledger(spec)
    book.read(0, [(o, spec.close_ms(t), t - 1) for o, t in enumerate(range(100, 150, 5))], 10, 145, 140)
    book.read(1, [], 4, None, 140)
    book.hold_sessions("k", {(100, 160): (160, {0: (0, 99)})})
    book.durable(200)  # past every proto-session's close: only the hold keeps offset 0
    assert book.commit_points()[0] == {0: StartPoint(0, 99), 1: StartPoint(4, None)}
    book.hold_sessions("k", {})  # closed at 160: its last pane is written once F >= 160, as it is
    assert book.commit_points()[0][0] == StartPoint(10, 145)

    book = _Ledger(spec)
    book.read(0, [], 10, 145, 140)
    book.hold_sessions("k", {(100, 160): (160, {0: (3, 99)})})
    book.durable(150)
    book.hold_sessions("k", {})
    assert book.commit_points()[0][0] == StartPoint(3, 99), "closed, but not yet known to be written"
    book.durable(160)
    assert book.commit_points()[0][0] == StartPoint(10, 145)


def test_a_restart_counts_what_was_final_before_it_as_durable():
    spec = _spec(FixedWindows(10), 0, final_through=50)
    book = _Ledger(spec)
    book.read(0, [(0, spec.close_ms(41), None), (1, spec.close_ms(55), 41)], 2, 55, None)
    assert book.commit_points() == ({0: StartPoint(1, 41)}, 50)
    assert already_final(50, 50) and not already_final(51, 50) and not already_final(10, None)


def test_commit_metadata_round_trips_and_another_tools_is_ignored():
    assert read_commit_metadata(commit_metadata(123, 456)) == (123, 456)
    assert read_commit_metadata(commit_metadata(None, None)) == (None, None)
    for foreign in ("", None, "x", '{"kappa": 99}', "[1]"):
        assert read_commit_metadata(foreign) == (None, None)


def test_merged_sessions_keep_the_lowest_offset_of_each_partition():
    engine = KeyEngine("k", SessionWindows(10), TriggerPolicy("watermark"), Sum(), bounded=False)
    engine.add(None, 1, 100, 0, hold=(0, 7, "a"))
    engine.add(None, 1, 120, 0, hold=(1, 3, "b"))
    engine.add(None, 1, 121, 0, hold=(0, 9, "c"))
    assert engine.holds() == {(100, 110): (110, {0: (7, "a")}), (120, 131): (131, {1: (3, "b"), 0: (9, "c")})}
    engine.add(None, 1, 109, 0, hold=(0, 12, "d"))  # [100, 110) grows to [100, 119)
    engine.add(None, 1, 115, 0, hold=(1, 5, "e"))  # joins [100, 119) and [120, 131)
    assert engine.holds() == {(100, 131): (131, {0: (7, "a"), 1: (3, "b")})}
