"""Transcript tests: readable files of input / watermark steps and the panes and dead
letters they must produce, run through TestStream on the DirectRunner (streaming)
and, where a transcript says what a replay gives, as a bounded batch replay.

Transcripts marked ``must_fail`` hold a wrong expectation: the checker must reject
them, so a checker that accepts anything is caught. A missing or empty transcript
folder fails the suite.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import apache_beam as beam
import pytest
import yaml
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing import test_stream

from kappa.schemas.records import Provenance, SourceRecord
from tests.beam_helpers import Collect, Sum, collected, new_tag
from kappa.transforms.config import SETTINGS, windowing_config
from kappa.transforms.windowing import WindowPerKey

TRANSCRIPTS = Path(__file__).parent / "transcripts"


def _record(key: str, t: int, value: int) -> tuple[str, SourceRecord]:
    return key, SourceRecord({"value": value}, t, key.encode(), Provenance("test", "transcript", None, t, None))


def _run(spec: dict, streaming: bool) -> tuple[Counter, Counter]:
    config = windowing_config({k: str(v) for k, v in spec.items() if k in SETTINGS})
    tag, late_tag = new_tag(), new_tag()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = streaming
    with beam.Pipeline(options=options) as p:
        if streaming:
            stream = test_stream.TestStream()
            for step in spec["steps"]:
                if "elements" in step:
                    stream = stream.add_elements([beam.window.TimestampedValue(_record(*e), e[1] / 1000)
                                                  for e in step["elements"]])
                else:
                    stream = stream.advance_watermark_to(step["watermark"] / 1000)
            source = p | stream.advance_watermark_to_infinity()
        else:
            elements = [_record(*e) for step in spec["steps"] for e in step.get("elements", [])]
            source = p | beam.Create(elements) | beam.Map(lambda kv: beam.window.TimestampedValue(kv, kv[1].event_ms / 1000))
        out = source | WindowPerKey(config, Sum(), lambda r: r.value["value"])
        out["panes"] | "Keep panes" >> beam.ParDo(Collect(tag))
        out["too_late"] | "Keep late" >> beam.ParDo(Collect(late_tag))
    # A superseded session's pane ends with the session it merged into: ..., null, start, end.
    panes = Counter((p.key, p.window[0], p.window[1], p.timing, p.pane_index, p.is_last, p.value, *(p.merged_into or ()))
                    for p in collected(tag))
    late = Counter((d.key.decode(), d.event_ms, d.window[0], d.window[1]) for d in collected(late_tag))
    return panes, late


def check(spec: dict) -> None:
    """Raise AssertionError if the transcript's expectations are not met."""
    panes, late = _run(spec, streaming=True)
    assert panes == Counter(tuple(p) for p in spec["expect"]["panes"]), f"panes: {sorted(panes)}"
    assert late == Counter(tuple(t) for t in spec["expect"].get("too_late", [])), f"too late: {sorted(late)}"
    if "replay" in spec:
        replayed, replay_late = _run(spec, streaming=False)
        finals = Counter((p[0], p[1], p[2], p[6]) for p in replayed.elements() if p[5] and len(p) == 7)
        assert finals == Counter(tuple(r) for r in spec["replay"]), f"replay finals: {sorted(finals)}"
        assert not replay_late


def _transcripts() -> list[Path]:
    files = sorted(TRANSCRIPTS.glob("*.yaml"))
    if not files:  # never a silently empty suite
        raise RuntimeError(f"no transcripts in {TRANSCRIPTS}")
    return files


@pytest.mark.parametrize("path", _transcripts(), ids=lambda p: p.stem)
def test_transcript(path):
    spec = yaml.safe_load(path.read_text())
    if spec.get("must_fail"):
        with pytest.raises(AssertionError):
            check(spec)
    else:
        check(spec)
