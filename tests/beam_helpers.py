"""Small helpers for tests that run Beam pipelines in this process."""

from __future__ import annotations

import uuid

import apache_beam as beam

_COLLECTED: dict[str, list] = {}


class Collect(beam.DoFn):
    """Appends every element to a list kept by tag (the DirectRunner runs in this process)."""

    def __init__(self, tag: str):
        self.tag = tag

    def process(self, element):
        _COLLECTED[self.tag].append(element)


def new_tag() -> str:
    tag = uuid.uuid4().hex
    _COLLECTED[tag] = []
    return tag


def collected(tag: str) -> list:
    return _COLLECTED.pop(tag)


class Sum:
    """The simplest aggregation: a sum of numbers."""

    def create(self):
        return 0

    def add(self, acc, value):
        return acc + value

    def merge(self, accs):
        return sum(accs)

    def extract(self, acc):
        return acc


class HandState:
    """A stateful DoFn's ReadModifyWriteState, for tests that play the runner by hand."""

    def __init__(self, value=None):
        self.value = value

    def read(self):
        return self.value

    def write(self, value):
        self.value = value

    def clear(self):
        self.value = None


def asks_for_finalization(read: beam.PTransform) -> bool:
    """Whether the pipeline ``read`` builds has a step that asks the runner to finalize its bundles."""
    from apache_beam.portability.api import beam_runner_api_pb2

    pipeline = beam.Pipeline()
    _ = pipeline | read
    payloads = [beam_runner_api_pb2.ParDoPayload.FromString(t.spec.payload)
                for t in pipeline.to_runner_api().components.transforms.values()
                if t.spec.urn == "beam:transform:pardo:v1"]
    return any(p.requests_finalization for p in payloads)
