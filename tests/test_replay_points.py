"""The replay-point grammar and its resolution against a log (pure, in-memory log)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kappa.replay.errors import ReplayError
from kappa.replay.points import (
    AfterStart, AtInstant, AtOffsets, Earliest, GroupPosition, Latest, Never, Now, Snapshot, parse_from, parse_to,
)
from kappa.replay.resolve import resolve_ranges

NOW = 1_795_165_200_000  # 2026-11-20T09:00:00Z


class MemoryLog:
    """An in-memory topic: per partition, record timestamps from ``low`` on."""

    def __init__(self, partitions: dict[int, list[int]], low: dict[int, int] | None = None,
                 committed: dict[str, dict[int, int]] | None = None, topic: str = "t"):
        self.topic = topic
        self.stamps = partitions
        self.low = low or {p: 0 for p in partitions}
        self.commits = committed or {}

    def partitions(self):
        return sorted(self.stamps)

    def watermarks(self, p):
        return self.low[p], self.low[p] + len(self.stamps[p])

    def offset_for_time(self, p, ms):
        for i, ts in enumerate(self.stamps[p]):
            if ts >= ms:
                return self.low[p] + i
        return None

    def committed(self, group, partitions):
        return {p: self.commits.get(group, {}).get(p) for p in partitions}


@pytest.mark.parametrize("text, point", [
    ("earliest", Earliest()), ("latest", Latest()),
    ("2026-11-20T09:00:00Z", AtInstant(NOW)), ("-PT6H", AtInstant(NOW - 6 * 3_600_000)), ("-90s", AtInstant(NOW - 90_000)),
    ("offsets:1=1180,0=1200", AtOffsets(((0, 1200), (1, 1180)))), ("group:merchant-totals", GroupPosition("merchant-totals")),
    ("snapshot:before-fix", Snapshot("before-fix")),
])
def test_from_points_parse(text, point):
    assert parse_from(text, NOW) == point


@pytest.mark.parametrize("text, point", [
    ("now", Now()), ("never", Never()), ("2026-11-20T09:00:00Z", AtInstant(NOW)), ("+PT1H", AfterStart(3_600_000)),
    ("offsets:0=5", AtOffsets(((0, 5),))),
])
def test_to_points_parse(text, point):
    assert parse_to(text, NOW) == point


@pytest.mark.parametrize("text, message", [
    ("yesterday", "--from 'yesterday' is not a replay point"),
    ("offsets:0=1,0=2", "partition 0 is given twice"),
    ("offsets:0:1", "is not partition=offset"),
    ("group:", "needs a consumer group id"),
    ("2026-11-20T09:00:00", "no UTC offset"),
    ("-PTX", "is not a duration"),
])
def test_bad_from_points_say_what_is_wrong(text, message):
    with pytest.raises(ReplayError, match=message):
        parse_from(text, NOW)


def test_bad_to_points_say_what_is_wrong():
    with pytest.raises(ReplayError, match="--to 'later' is not a replay point"):
        parse_to("later", NOW)
    with pytest.raises(ReplayError, match=r"--to \+soon"):
        parse_to("+soon", NOW)


LOG = MemoryLog({0: [10, 20, 30, 40], 1: [15, 25], 2: []}, low={0: 100, 1: 0, 2: 7},
                committed={"g": {0: 102, 1: 1}, "half": {0: 101}})


def _spans(ranges):
    return {r.partition: (r.start, r.stop) for r in ranges}


def test_earliest_to_now_reads_every_partition_whole():
    assert _spans(resolve_ranges(LOG, Earliest(), Now())) == {0: (100, 104), 1: (0, 2), 2: (7, 7)}


def test_latest_to_never_is_live_from_the_end():
    assert _spans(resolve_ranges(LOG, Latest(), Never())) == {0: (104, None), 1: (2, None), 2: (7, None)}


def test_instants_resolve_per_partition_to_the_first_offset_at_or_after():
    ranges = resolve_ranges(LOG, AtInstant(20), AtInstant(35))
    assert _spans(ranges) == {0: (101, 103), 1: (1, 2), 2: (7, 7)}
    assert "offsets-for-times" in ranges[0].start_selector


def test_after_start_counts_from_the_from_instant():
    assert _spans(resolve_ranges(LOG, AtInstant(20), AfterStart(15))) == _spans(resolve_ranges(LOG, AtInstant(20), AtInstant(35)))
    with pytest.raises(ReplayError, match="must then be an instant"):
        resolve_ranges(LOG, Earliest(), AfterStart(15))


def test_offsets_read_only_the_partitions_listed():
    assert _spans(resolve_ranges(LOG, AtOffsets(((0, 102),)), Now())) == {0: (102, 104)}
    with pytest.raises(ReplayError, match="has no partition 5"):
        resolve_ranges(LOG, AtOffsets(((5, 0),)), Now())
    with pytest.raises(ReplayError, match="beyond its end"):
        resolve_ranges(LOG, AtOffsets(((0, 105),)), Now())
    with pytest.raises(ReplayError, match="no stop offset for partition 1"):
        resolve_ranges(LOG, AtOffsets(((0, 100), (1, 0))), AtOffsets(((0, 101),)))
    with pytest.raises(ReplayError, match="before its start offset"):
        resolve_ranges(LOG, AtOffsets(((0, 102),)), AtOffsets(((0, 101),)))


def test_deleted_offsets_are_an_error_unless_the_fallback_is_asked_for():
    with pytest.raises(ReplayError, match=r"offset 50 of t\[0\] was already deleted.*--on-missing-offsets=earliest"):
        resolve_ranges(LOG, AtOffsets(((0, 50),)), Now())
    ranges = resolve_ranges(LOG, AtOffsets(((0, 50),)), Now(), on_missing="earliest")
    assert _spans(ranges) == {0: (100, 104)} and "deleted by retention" in ranges[0].start_selector


def test_group_points_read_where_the_group_stands():
    assert _spans(resolve_ranges(LOG, GroupPosition("g"), Now(), on_missing="earliest")) == {0: (102, 104), 1: (1, 2), 2: (7, 7)}
    with pytest.raises(ReplayError, match="no committed offset for partition 1"):
        resolve_ranges(LOG, GroupPosition("half"), Now())
    with pytest.raises(ReplayError, match="has no committed offsets on 't'"):
        resolve_ranges(LOG, GroupPosition("nobody"), Now())


def test_an_instant_past_the_end_is_an_error_for_bounded_reads_only():
    with pytest.raises(ReplayError, match="after the end of the log"):
        resolve_ranges(LOG, AtInstant(41), Now())
    assert _spans(resolve_ranges(LOG, AtInstant(41), Never())) == {0: (104, None), 1: (2, None), 2: (7, None)}
    with pytest.raises(ReplayError, match="is before --from"):
        resolve_ranges(LOG, AtInstant(30), AtInstant(20))


def test_snapshot_points_are_for_pubsub():
    with pytest.raises(ReplayError, match="for Pub/Sub"):
        resolve_ranges(LOG, Snapshot("s"), Now())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 100), min_size=1, max_size=30), st.integers(-5, 105), st.integers(0, 50))
def test_instant_ranges_hold_exactly_the_offsets_between_the_two_seek_points(stamps, t_from, span):
    """For any log and instants a <= b: start is the first offset with ts >= a (or the end),
    stop the first with ts >= b (or the end), and start <= stop."""
    log = MemoryLog({0: stamps})
    first = next((i for i, ts in enumerate(stamps) if ts >= t_from), None)
    if first is None:
        with pytest.raises(ReplayError):
            resolve_ranges(log, AtInstant(t_from), AtInstant(t_from + span))
        return
    [r] = resolve_ranges(log, AtInstant(t_from), AtInstant(t_from + span))
    stop = next((i for i, ts in enumerate(stamps) if ts >= t_from + span), len(stamps))
    assert (r.start, r.stop) == (first, max(stop, first))
