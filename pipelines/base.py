"""What every pipeline shares: key the records, window and aggregate them with the
event-time engine, turn panes into result records (shared/DESIGN.md), and gather
dead letters (``invalid_record`` for records without a usable key, ``too_late``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import apache_beam as beam

from kappa.schemas.jsonform import format_instant
from kappa.schemas.records import DeadLetter, SourceRecord
from kappa.transforms.config import WindowingConfig, windowing_config
from kappa.transforms.engine import Aggregation, Pane
from kappa.transforms.batch import WindowInBatch
from kappa.transforms.windowing import WindowPerKey

__all__ = ["InvalidRecord", "WindowedPipeline", "result_id", "result_record"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INVALID = "invalid"


class InvalidRecord(ValueError):
    """A decoded record a pipeline cannot use (no key, a missing field); a dead letter."""

    reason = "invalid_record"


def result_id(pipeline: str, key: str, window: tuple[int, int], pane_index: int | None = None) -> str:
    """Deterministic ids. With ``pane_index`` None: the id of the window's final value,
    the same in every run over the same records (live or replay, any runner, with or
    without early panes, after a restart); with a pane index: that pane's own id."""
    pane = "final" if pane_index is None else str(pane_index)
    text = f"{pipeline}\x1f{key}\x1f{window[0]}\x1f{window[1]}\x1f{pane}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _interval(window: tuple[int, int]) -> str:
    return "/".join(format_instant(t) for t in window)


def result_record(pipeline: str, pane: Pane, values: dict) -> dict:
    """A window_result record (``schemas/avro/window_result.avsc``): ``id`` is the final-value
    id on the window's last pane and the pane's own id on the others; ``pane_id`` is always
    the pane's own. A superseded session's last pane (``merged_into``) carries no values."""
    pane_id = result_id(pipeline, str(pane.key), pane.window, pane.pane_index)
    return {
        "id": result_id(pipeline, str(pane.key), pane.window) if pane.is_last else pane_id,
        "pane_id": pane_id,
        "pipeline": pipeline,
        "key": str(pane.key),
        "window_start": _EPOCH + timedelta(milliseconds=pane.window[0]),
        "window_end": _EPOCH + timedelta(milliseconds=pane.window[1]),
        "timing": pane.timing,
        "pane_index": pane.pane_index,
        "is_last": pane.is_last,
        "merged_into": None if pane.merged_into is None else _interval(pane.merged_into),
        "values": values,
    }


def _results(name: str, values_of: Callable[[Any], dict | None]):
    """Pane -> its result record; none for a pane whose aggregate ``values_of`` turns down."""
    def to_results(pane: Pane) -> list[dict]:
        if pane.merged_into is not None:
            return [result_record(name, pane, {})]
        values = values_of(pane.value)
        return [] if values is None else [result_record(name, pane, values)]
    return to_results


class _Keying:
    """record -> its key, or the ``invalid_record`` dead letter of a record without a usable one (counted)."""

    def __init__(self, key_of: Callable[[dict], str]):
        self.key_of = key_of

    def __call__(self, record: SourceRecord):
        try:
            return self.key_of(record.value)
        except (InvalidRecord, KeyError, TypeError) as err:
            beam.metrics.Metrics.counter("kappa", "dead_letters_invalid_record").inc()
            return DeadLetter("invalid_record", f"no usable key: {err}", record.provenance, None, record.key,
                              record.event_ms)


class _KeyFn(beam.DoFn):
    def __init__(self, keying: _Keying):
        self.keying = keying

    def process(self, record: SourceRecord):
        key = self.keying(record)
        yield beam.pvalue.TaggedOutput(_INVALID, key) if isinstance(key, DeadLetter) else (key, record)


class WindowedPipeline(beam.PTransform):
    """Base of the pipelines: subclasses set ``name``, ``DEFAULTS`` and the four hooks."""

    name: str = ""
    input_schema: str = ""  #: the schema its source records are decoded with (schemas/avro)
    DEFAULTS: dict[str, str] = {}
    #: A bounded replay windows as Beam combines (transforms/batch.py), with the same
    #: results as the per-key engine; False runs the engine (the reference, in tests).
    batch_windowing: bool = True
    #: A live run's RunChannel (set by ``kappa live``): the windowing marks there the records
    #: a runner's watermark decided, so the drained manifest's replay decides them alike.
    run_channel = None
    #: A live Kafka run's commits (replay/durable.py, set by ``kappa live``): windows written
    #: before a restart are not emitted again, and open sessions hold their offsets.
    durable = None

    def __init__(self, config: WindowingConfig | None = None, **overrides: str | None):
        super().__init__(self.name)
        self.config = config or windowing_config(self.DEFAULTS, overrides)

    @property
    def takes_record_batches(self) -> bool:
        """Whether its input may be RecordBatches as well as records (a bounded source can batch)."""
        return self.config.bounded and self.batch_windowing

    # hooks
    def key_of(self, value: dict) -> str:
        raise NotImplementedError

    def value_of(self, record: SourceRecord) -> Any:
        return record.value

    def aggregation(self) -> Aggregation:
        raise NotImplementedError

    def values(self, aggregate) -> dict | None:
        """The result values of one pane's aggregate; None emits no result for it."""
        raise NotImplementedError

    def expand(self, records):
        keying = _Keying(self.key_of)
        if self.takes_record_batches:
            windowed = records | "Window" >> WindowInBatch(self.config, self.aggregation(), self.value_of, keying)
            panes, dead = windowed["panes"], windowed["dead_letters"]
        else:
            keyed = records | "Key" >> beam.ParDo(_KeyFn(keying)).with_outputs(_INVALID, main="keyed")
            windowed = keyed.keyed | "Window" >> WindowPerKey(self.config, self.aggregation(), self.value_of,
                                                              channel=self.run_channel, durable=self.durable)
            panes = windowed["panes"]
            dead = (keyed[_INVALID], windowed["too_late"]) | "DeadLetters" >> beam.Flatten()
        results = panes | "ToResults" >> beam.FlatMap(_results(self.name, self.values))
        return {"results": results, "dead_letters": dead}
