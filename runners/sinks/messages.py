"""The message writers: Kafka (an idempotent producer, flushed in finish_bundle) and
Pub/Sub (publish futures awaited in finish_bundle); a failed delivery fails the bundle."""

from __future__ import annotations

from typing import TYPE_CHECKING

import apache_beam as beam

from kappa.replay.kafka_client import client_config
from kappa.runners.errors import KappaError
from kappa.schemas.jsonform import format_instant

from kappa.runners.sinks.files import _dead_letter_line, _result_codec, _result_line

if TYPE_CHECKING:
    from kappa.runners.sinks.kinds import PubSubSink, Sink

_DELIVERY_TIMEOUT_S = 60.0  #: how long finish_bundle waits for the broker before failing the bundle


def _result_attributes(result: dict) -> dict[str, str]:
    """What a message carries beside its body: enough to route or dedupe without decoding."""
    window = f"{format_instant(result['window_start'])}/{format_instant(result['window_end'])}"
    return {"id": result["id"], "pipeline": result["pipeline"], "window": window, "timing": result["timing"]}


# -- the writers ------------------------------------------------------------------------------------

class _DeliverFn(beam.DoFn):
    """Base of the message writers: the sink, and the counter of what it confirmed written."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.counter = beam.metrics.Metrics.counter("kappa", sink.counter_name)


class _KafkaWriteFn(_DeliverFn):
    """Produce each record; ``finish_bundle`` flushes and fails the bundle on any failed delivery."""

    def setup(self):
        from confluent_kafka import Producer

        self.sink.preflight()
        self.codec = _result_codec(self.sink.format)
        self.producer = Producer(client_config({
            "bootstrap.servers": self.sink.bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "message.timeout.ms": int(_DELIVERY_TIMEOUT_S * 1000), "log_level": 0}))

    def start_bundle(self):
        self.sent, self.failures = 0, []

    def process(self, element):
        if self.sink.dead_letters:
            key, value = element.key, _dead_letter_line(element).encode()
            headers = [("kappa-reason", element.reason.encode())]
        else:
            key, value = element["id"].encode(), self.codec.encode(element)
            headers = [(f"kappa-{name}", text.encode()) for name, text in _result_attributes(element).items()]
        while True:
            try:
                self.producer.produce(self.sink.topic, value=value, key=key, headers=headers,
                                      on_delivery=self._delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self.producer.poll(1)
        self.sent += 1
        self.producer.poll(0)

    def _delivered(self, err, _message):
        if err is not None:
            self.failures.append(err.str())

    def finish_bundle(self):
        left = self.producer.flush(_DELIVERY_TIMEOUT_S)
        if left or self.failures:
            raise KappaError(f"{self.sink.flag} {self.sink}: {left + len(self.failures)} of {self.sent} records "
                             f"not delivered ({(self.failures or ['flush timed out'])[0]})")
        self.counter.inc(self.sent)

    def teardown(self):
        producer = getattr(self, "producer", None)
        if producer is not None:
            producer.flush(_DELIVERY_TIMEOUT_S)


def _ensure_pubsub_topic(sink: PubSubSink, timeout_s: float):
    """The publisher for ``sink``, after creating its topic if it was missing."""
    from google.api_core import exceptions
    from google.auth.exceptions import DefaultCredentialsError

    from kappa.replay.pubsub_clients import pubsub_clients

    try:
        publisher, _ = pubsub_clients(sink.emulator_host)
        publisher.create_topic(name=sink.path, timeout=timeout_s, retry=None)
    except exceptions.AlreadyExists:
        pass
    except (exceptions.GoogleAPICallError, DefaultCredentialsError) as err:
        where = f"the emulator at {sink.emulator_host}" if sink.emulator_host else "Google Cloud Pub/Sub"
        message = getattr(err, "message", None) or str(err)
        raise KappaError(f"{sink.flag} {sink}: cannot reach {where} within {timeout_s:.0f}s: "
                         f"{message.splitlines()[0] if message else type(err).__name__}") from None
    return publisher


class _PubSubWriteFn(_DeliverFn):
    """Publish each record as JSON; ``finish_bundle`` waits for every publish."""

    def setup(self):
        self.publisher = _ensure_pubsub_topic(self.sink, 10.0)

    def start_bundle(self):
        self.futures = []

    def process(self, element):
        if self.sink.dead_letters:
            data, attributes = _dead_letter_line(element).encode(), {"reason": element.reason}
        else:
            data, attributes = _result_line(element).encode(), _result_attributes(element)
        self.futures.append(self.publisher.publish(self.sink.path, data, **attributes))

    def finish_bundle(self):
        from concurrent.futures import TimeoutError as FutureTimeout

        from google.api_core import exceptions

        failures = []
        for future in self.futures:
            try:
                future.result(timeout=_DELIVERY_TIMEOUT_S)
            except (exceptions.GoogleAPICallError, FutureTimeout) as err:
                failures.append(str(err) or type(err).__name__)
        if failures:
            raise KappaError(f"{self.sink.flag} {self.sink}: {len(failures)} of {len(self.futures)} records "
                             f"not published ({failures[0]})")
        self.counter.inc(len(self.futures))
