"""Your own ``PTransform`` as a pipeline, for replays: ``--pipeline my.py:MyTransform``.

The contract, for a transform that windows by itself (Beam's ``WindowInto``, triggers,
``CombinePerKey``, state: anything):

* a ``beam.PTransform`` subclass made without arguments; ``name`` (a class attribute, in
  every result; default: the class's name) and ``input_schema`` (as a WindowedPipeline's);
* its input: the source's records, ``SourceRecord`` (``.value`` decoded, ``.event_ms``,
  ``.provenance``), each stamped with its event time;
* its output: ``{"results": ..., "dead_letters": ...}`` (or the results alone), where a
  result is a dict with ``key``, ``window_start`` and ``window_end`` (epoch ms, an aware
  ``datetime`` or ISO-8601) and ``values`` (a dict), and a dead letter a ``DeadLetter``.

kappa completes each result as a ``window_result`` record: the ids (the same identity a
WindowedPipeline's results have), ``pipeline``, and, where the transform does not say,
``timing`` ON_TIME, ``pane_index`` 0, ``is_last`` true. A result missing a field fails
the job with one line naming it: it is the transform's bug, not bad input.

Replays only: kappa cannot tell when such a transform's windows are final and written,
so a live run could not commit offsets safely. For live runs, write a WindowedPipeline
(kappa then windows, fires and commits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import apache_beam as beam

from kappa.pipelines.base import result_record
from kappa.replay.errors import ReplayError
from kappa.schemas.jsonform import EPOCH, parse_instant
from kappa.transforms.config import WindowingConfig
from kappa.transforms.durations import format_duration_ms
from kappa.transforms.engine import ON_TIME, Pane

__all__ = ["TransformPipeline", "transform_pipeline"]

#: The windowing flags that mean nothing to a transform that windows by itself.
WINDOWING_FLAGS = ("window", "allowed_lateness", "trigger", "early_firing", "late_firing", "accumulation")


@dataclass(frozen=True)
class OwnWindowing(WindowingConfig):
    """A transform's settings as kappa knows them: only the sources' watermark bound."""

    def describe(self) -> str:
        return (f"windowing: the transform's own; watermark bound {format_duration_ms(self.max_out_of_orderness_ms)}"
                " (each record's cutoff)")


class TransformPipeline(beam.PTransform):
    """A user's PTransform behind the pipeline interface kappa's run command uses."""

    name = ""
    input_schema = ""
    DEFAULTS = {"window": "fixed:1m"}  # a placeholder the transform never sees (OwnWindowing)
    transform_class: type[beam.PTransform] | None = None
    takes_record_batches = False
    run_channel = None
    durable = None

    def __init__(self, config: WindowingConfig):
        super().__init__(self.name)
        self.config = OwnWindowing(config.window, max_out_of_orderness_ms=config.max_out_of_orderness_ms,
                                   bounded=config.bounded)

    def expand(self, records):
        out = records | self.transform_class.__name__ >> self.transform_class()
        if isinstance(out, beam.PCollection):
            out = {"results": out}
        if not isinstance(out, dict) or "results" not in out or set(out) - {"results", "dead_letters"}:
            raise ReplayError(f"pipeline {self.name}: {self.transform_class.__name__} must return "
                              "{'results': ..., 'dead_letters': ...} (got "
                              f"{sorted(out) if isinstance(out, dict) else type(out).__name__})")
        results = out["results"] | "CompleteResults" >> beam.Map(_complete, self.name)
        dead = out.get("dead_letters")
        if dead is None:
            dead = records.pipeline | "NoDeadLetters" >> beam.Create([])
        return {"results": results, "dead_letters": dead}


def transform_pipeline(cls: type[beam.PTransform]) -> type[TransformPipeline]:
    """The pipeline class of a user's PTransform class."""
    name = getattr(cls, "name", None) if isinstance(getattr(cls, "name", None), str) else None
    return type(cls.__name__, (TransformPipeline,), {
        "name": name or re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower(),
        "input_schema": getattr(cls, "input_schema", "") or "", "transform_class": cls,
        "__module__": TransformPipeline.__module__})


def _complete(result, pipeline: str) -> dict:
    """A transform's result as a window_result record (ids and the fields it left out)."""
    if not isinstance(result, dict):
        raise ReplayError(f"pipeline {pipeline}: a result must be a dict, not {type(result).__name__}")
    missing = [f for f in ("key", "window_start", "window_end", "values") if f not in result]
    if missing:
        raise ReplayError(f"pipeline {pipeline}: a result has no {', '.join(missing)} (it has {sorted(result)})")
    window = (_ms(result["window_start"], pipeline), _ms(result["window_end"], pipeline))
    pane = Pane(result["key"], window, result.get("timing", ON_TIME), result.get("pane_index", 0),
                result.get("is_last", True), None)
    return result_record(pipeline, pane, dict(result["values"]))


def _ms(instant, pipeline: str) -> int:
    if isinstance(instant, int) and not isinstance(instant, bool):
        return instant
    if isinstance(instant, str):
        try:
            instant = parse_instant(instant, "window bound")
        except ValueError as err:
            raise ReplayError(f"pipeline {pipeline}: a result's {err}") from None
    if isinstance(instant, datetime) and instant.tzinfo is not None:
        return (instant - EPOCH) // timedelta(milliseconds=1)  # exact integers, as event times are
    raise ReplayError(f"pipeline {pipeline}: a result's window bound {instant!r} is not epoch ms, an aware datetime "
                      "or ISO-8601")
