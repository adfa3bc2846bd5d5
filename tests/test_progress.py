"""The run directory's reports, the progress display built from them, and the live
restriction that only splits at checkpoints (pure logic, no runner)."""

from __future__ import annotations

import io
import os

from apache_beam.io.restriction_trackers import OffsetRange

from kappa.replay.decoding import LIVE_STOP, offset_tracker
from kappa.replay.manifest import Manifest, PartitionRange
from kappa.replay.progress import RunChannel
from kappa.runners.progress_view import ProgressView, live_line, progress_bar, replay_done, summary_lines


def _manifest(*ranges) -> Manifest:
    return Manifest("127.0.0.1:9092", "t", "earliest", "now",
                    tuple(PartitionRange("t", p, start, stop) for p, start, stop in ranges))


def test_reports_are_throttled_but_a_final_report_is_always_written(tmp_path):
    channel = RunChannel(tmp_path, interval_s=60)
    channel.report("t-0", partition=0, position=10)
    channel.report("t-0", partition=0, position=20)  # within the interval: skipped
    assert channel.positions()["t-0"]["position"] == 10
    channel.report("t-0", final=True, partition=0, position=30, drained=True)
    assert channel.positions()["t-0"] | {"at": None} == {"partition": 0, "position": 30, "drained": True,
                                                        "final": True, "at": None, "pid": os.getpid()}


def test_a_stop_request_is_seen_by_readers(tmp_path):
    channel = RunChannel(tmp_path / "run")
    assert not channel.stop_requested()
    channel.request_stop()
    assert channel.stop_requested()


def test_the_channel_travels_pickled_without_its_throttle_state(tmp_path):
    import pickle

    channel = RunChannel(tmp_path, interval_s=60)
    channel.report("t-0", partition=0, position=1)
    copy = pickle.loads(pickle.dumps(channel))
    copy.report("t-0", partition=0, position=2)  # a fresh copy has reported nothing yet
    assert channel.positions()["t-0"]["position"] == 2


def test_replay_progress_counts_offsets_past_each_range_start_and_never_beyond_its_stop():
    manifest = _manifest((0, 100, 200), (1, 0, 50), (2, 10, 10))
    positions = {"t-0": {"position": 150}, "t-1": {"position": 80}}  # p1 past its stop: capped
    assert replay_done(manifest, positions) == 50 + 50
    assert progress_bar(100, 150, width=10) == "[######....]  66.7%"
    assert progress_bar(0, 0, width=4) == "[####] 100.0%"  # an empty replay is done


def test_the_replay_line_shows_done_total_rate_and_eta(tmp_path):
    manifest = _manifest((0, 0, 1000))
    channel = RunChannel(tmp_path)
    view = ProgressView(channel, manifest, live=False, stream=io.StringIO())
    channel.report("t-0", final=True, partition=0, position=0)
    view.line()
    channel.report("t-0", final=True, partition=0, position=400)
    line = view.line()
    assert line.startswith("[############..................]  40.0% 400/1,000 offsets")
    assert "ev/s" in line and "ETA" in line


def test_the_live_line_shows_the_lowest_watermark_and_lag_per_partition():
    positions = {
        "t-1": {"partition": 1, "position": 90, "high": 100, "watermark_ms": 1_795_165_260_000},
        "t-0": {"partition": 0, "position": 50, "high": 50, "watermark_ms": 1_795_165_200_000},
        "t-10": {"partition": 10, "position": 5, "high": None, "watermark_ms": None},
    }
    assert live_line(positions) == "watermark 2026-11-20T09:00:00.000Z  lag p0=0 p1=10"


def test_the_summary_names_dead_letters_by_reason():
    lines = summary_lines({"records_read": 1200, "results_written": 48, "dead_letters_too_late": 3,
                           "dead_letters_decode_error": 1, "dead_letters_written": 4}, 2.5)
    assert lines == ["records read      1,200", "results written   48",
                     "dead letters      4 (decode_error 1, too_late 3)", "wall time         2.5s"]


def test_source_ranges_split_only_at_their_current_position():
    """Split by a fraction, an open range's residual would start near 2**62, past any offset;
    a bounded one's would start without the partition's watermark of the records between."""
    live = offset_tracker(OffsetRange(100, LIVE_STOP))
    assert live.try_claim(120)
    assert live.try_split(0.5) is None
    primary, residual = live.try_split(0)  # a checkpoint
    assert (primary.start, primary.stop) == (100, 121)
    assert (residual.start, residual.stop) == (121, LIVE_STOP)

    bounded = offset_tracker(OffsetRange(100, 200))
    assert bounded.try_claim(120)
    assert bounded.try_split(0.5) is None
    primary, residual = bounded.try_split(0)
    assert (primary.start, primary.stop, residual.start, residual.stop) == (100, 121, 121, 200)
