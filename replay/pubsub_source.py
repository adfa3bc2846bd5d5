"""Pub/Sub under the same interface as Kafka: live reads, and replays by seek.

Beam Python's ``ReadFromPubSub`` is a native source that only Dataflow and the old
Python direct runner implement (Beam issue #27443); portable runners such as Flink
and Prism cannot run it (#20143). So kappa reads Pub/Sub with google-cloud-pubsub
inside a splittable DoFn, the same on every runner: synchronous pulls in batches,
each message decoded by the codec, timestamped with its event time
(``publish_time``, ``attribute:<name>`` or a payload field), deduplicated by an id
attribute (or the message id) against redeliveries (an id counts as seen only once
the bundle that emitted it is committed, or in a pipeline's live run once the pull that
emitted it returns: ``redelivery.py``, ``_PullDurableFn``), and routed to dead letters
when it cannot be decoded.

* **live**: pulls for ever; a pipeline's live run acks a message once the results that
  hold it are durable (``durable.py``), a raw read (``kappa read``) when Beam finalizes the
  bundle, so a crash redelivers instead of losing. The watermark is max event
  time seen minus the bound; an empty pull means caught up, and the watermark then
  follows the clock.
* **replay**: :func:`prepare_replay` creates a dedicated replay subscription on the
  source subscription's topic and seeks it to a time (the topic must retain
  messages) or a snapshot; the live subscription is never touched. The read is
  bounded: messages published at or after the stop time are left unacked (leased for
  a while, so they do not fill the pulls), and the read finishes once a few
  consecutive pulls, over at least ``finish_quiet_s``, bring nothing from before the
  stop.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.utils.timestamp import Duration, Timestamp

from kappa.replay.decoding import (DEAD_LETTER, FAILURES, METRICS_NAMESPACE, RECORDS_READ, RecordDecoder, SourceWatermark,
                             at_event_time, count_dead_letter, expand_read, offset_tracker)
from kappa.replay.durable import ledger
from kappa.replay.errors import ReplayError
from kappa.replay.manifest import CarriedDecoding, DecodingSpec
from kappa.replay.progress import RunChannel
from kappa.replay.pubsub_clients import emulator_clients, pubsub_clients
from kappa.replay.points import AtInstant, Earliest, FromPoint, Snapshot
from kappa.replay.redelivery import DUPLICATE, UNDECIDED, Redeliveries
from kappa.schemas.records import Provenance, SourceRecord
from kappa.transforms.event_time import DEFAULT_MAX_AHEAD_MS, EventTimeSpec

__all__ = ["PubSubReadSettings", "emulator_clients", "ReadFromPubSubReplay", "delete_replay_subscription", "prepare_replay",
           "pubsub_clients"]

_SEEN_LIMIT = 200_000  # ids remembered for deduplication
_HAND_BACK_S = 5  #: a copy of a message whose first bundle is not yet committed comes back after this
_BEYOND_LEASE_S = 60  #: a bounded read keeps messages published after its stop out of its pulls this long


@dataclass(frozen=True)
class PubSubReadSettings:
    subscription: str  #: projects/<p>/subscriptions/<s>
    decoding: DecodingSpec | CarriedDecoding  #: carried (contents, not paths) when it goes to workers
    event_time: str = "publish_time"
    id_attribute: str | None = None  #: dedupe by this attribute; by message id when None
    max_out_of_orderness_ms: int = 0
    emulator_host: str | None = None  #: host:port of the emulator; None: $PUBSUB_EMULATOR_HOST or Google
    stop_publish_ms: int | None = None  #: bounded replay: read what was published before this
    batch_size: int = 1000
    pull_timeout_s: float = 2.0
    finish_after_idle_pulls: int = 3
    #: bounded: ... and no message from before the stop for this long (see _pull)
    finish_quiet_s: float = 5.0
    checkpoint_every_s: float = 1.0
    channel: RunChannel | None = None  #: progress reports, and stop requests for live reads
    owned: bool = False  #: a replay subscription made for this read (prepare_replay): deleted after it
    #: a live pipeline run: messages stay unacked until durably done (replay/durable.py)
    durable: object = None
    #: a restart after a run that did not drain (epoch seconds): until then the messages that
    #: run held come back (redelivered once their ack deadline lapses), so the watermark
    #: stays where it is and no record's cutoff is set by the newer messages pulled meanwhile
    hold_until: float | None = None
    max_event_time_ahead_ms: int = DEFAULT_MAX_AHEAD_MS  #: further ahead of the publish time: future_event_time
    #: a bundle not committed (finalized) this long after it began is taken as failed: its
    #: messages' redeliveries are emitted again (replay/redelivery.py)
    redelivery_settle_s: float = 60.0

    @property
    def live(self) -> bool:
        return self.stop_publish_ms is None


def prepare_replay(subscription: str, start: FromPoint, emulator_host: str | None = None,
                   name: str | None = None) -> str:
    """Create a replay subscription on ``subscription``'s topic, seeked to ``start``.

    ``start`` is an instant (needs topic message retention), ``snapshot:<name>`` or
    ``earliest`` (the topic's retention start). Returns the replay subscription path.
    """
    from google.api_core import exceptions

    _, subscriber = pubsub_clients(emulator_host)
    try:
        source = subscriber.get_subscription(request={"subscription": subscription}, timeout=15)
    except exceptions.NotFound:
        raise ReplayError(f"Pub/Sub subscription {subscription} does not exist") from None
    except exceptions.GoogleAPICallError as err:
        raise ReplayError(f"Pub/Sub did not answer for {subscription}: {err.message}") from None
    project = subscription.split("/")[1]
    replay = name or f"{subscription.rsplit('/', 1)[1]}-replay-{time.strftime('%Y%m%d%H%M%S')}"
    replay_path = subscriber.subscription_path(project, replay)
    subscriber.create_subscription(request={"name": replay_path, "topic": source.topic,
                                            "ack_deadline_seconds": 60, "retain_acked_messages": True})
    seek = {"subscription": replay_path}
    if isinstance(start, Snapshot):
        seek["snapshot"] = subscriber.snapshot_path(project, start.name)
    elif isinstance(start, AtInstant):
        seek["time"] = _proto_time(start.ms)
    elif isinstance(start, Earliest):
        seek["time"] = _proto_time(0)
    else:
        raise ReplayError(f"--from {start}: a Pub/Sub replay starts at an instant, snapshot:<name> or earliest")
    try:
        subscriber.seek(request=seek, timeout=30)
    except exceptions.GoogleAPICallError as err:
        subscriber.delete_subscription(request={"subscription": replay_path})
        raise ReplayError(f"cannot seek the replay subscription to --from {start}: {err.message}") from None
    return replay_path


def acknowledge(subscriber, subscription: str, ack_ids: list[str]) -> None:
    for start in range(0, len(ack_ids), 1000):  # the API takes at most a few thousand per call
        subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ack_ids[start:start + 1000]})


def delete_replay_subscription(settings: PubSubReadSettings) -> None:
    """Delete the replay subscription a read made for itself, once the read is over (a
    subscription left behind keeps retaining messages, and they count against the topic)."""
    from google.api_core import exceptions

    if not settings.owned:
        return
    _, subscriber = pubsub_clients(settings.emulator_host)
    try:
        subscriber.delete_subscription(request={"subscription": settings.subscription}, timeout=15)
    except exceptions.NotFound:
        pass
    except exceptions.GoogleAPICallError as err:
        print(f"kappa: could not delete the replay subscription {settings.subscription}: {err.message}",
              file=sys.stderr)


def _proto_time(ms: int):
    from google.protobuf.timestamp_pb2 import Timestamp as ProtoTimestamp

    stamp = ProtoTimestamp()
    stamp.FromMilliseconds(ms)
    return stamp


class _PullFn(beam.DoFn, RestrictionProvider, WatermarkEstimatorProvider):
    """Bounded (replay) pulls; the restriction counts pulls, one claimed per batch."""

    def __init__(self, settings: PubSubReadSettings):
        super().__init__()
        self.settings = settings

    def initial_restriction(self, element):
        return OffsetRange(0, sys.maxsize)

    def create_tracker(self, restriction):
        return offset_tracker(restriction)

    def restriction_size(self, element, restriction):
        return 1

    def split(self, element, restriction):
        yield restriction

    def initial_estimator_state(self, element, restriction):
        return None

    def create_watermark_estimator(self, estimator_state):
        return SourceWatermark(self.settings.max_out_of_orderness_ms, estimator_state)

    def setup(self):
        _, self._subscriber = pubsub_clients(self.settings.emulator_host)
        self._decoder = RecordDecoder(self.settings.decoding.make_codec(), EventTimeSpec.parse(self.settings.event_time),
                                      self.settings.max_event_time_ahead_ms)
        self._redeliveries = Redeliveries(_SEEN_LIMIT, self.settings.redelivery_settle_s)

    def process(self, subscription: str,
                tracker=beam.DoFn.RestrictionParam(),
                watermark=beam.DoFn.WatermarkEstimatorParam()):
        yield from self._pull(subscription, tracker, watermark, finalizer=None)

    def _pull(self, subscription, tracker, watermark, finalizer):
        from google.api_core import exceptions

        settings = self.settings
        position = tracker.current_restriction().start
        idle = 0
        started = last_kept = time.monotonic()
        channel = settings.channel
        # What this bundle emits counts as seen (its redeliveries dropped) once the runner has
        # committed it: finalized it, or, without finalization, once each pull returns
        # (bounded reads ack it then; a pipeline's live run acks it once durable).
        # (Registered even with nothing emitted: prism fails bundles that ask for
        # finalization and register nothing.)
        bundle = None if finalizer is None else self._redeliveries.begin()
        if bundle is not None:
            finalizer.register(bundle.committed)
        while True:
            if settings.live and channel is not None and channel.stop_requested():
                tracker.try_claim(sys.maxsize)  # a drain: the live read ends here
                channel.report(subscription.rsplit("/", 1)[-1], final=True, pulls=position, drained=True)
                return
            if not tracker.try_claim(position):
                return
            position += 1
            try:
                response = self._subscriber.pull(
                    request={"subscription": subscription, "max_messages": settings.batch_size},
                    timeout=settings.pull_timeout_s, retry=None)
                received = response.received_messages
            except exceptions.DeadlineExceeded:
                received = []
            keep, beyond = [], []
            for item in received:
                publish_ms = _ms(item.message.publish_time)
                (beyond if settings.stop_publish_ms is not None and publish_ms >= settings.stop_publish_ms
                 else keep).append((item, publish_ms))
            if beyond:  # not ours; leased, not handed straight back, so they do not fill the next pulls
                self._subscriber.modify_ack_deadline(request={
                    "subscription": subscription, "ack_ids": [i.ack_id for i, _ in beyond],
                    "ack_deadline_seconds": _BEYOND_LEASE_S})
            durable = settings.durable if settings.live else None
            done = [] if durable is not None else None
            batch = bundle or self._redeliveries.begin()
            undecided = []
            yield from self._emit(subscription, keep, watermark, batch, undecided, done)
            handed_back = {item.ack_id for item in undecided}
            if handed_back:  # copies of messages whose first bundle is not committed yet: later
                self._subscriber.modify_ack_deadline(request={
                    "subscription": subscription, "ack_ids": sorted(handed_back), "ack_deadline_seconds": _HAND_BACK_S})
            ack_ids = [item.ack_id for item, _ in keep if item.ack_id not in handed_back]
            if durable is not None:  # acked once done, by the run's ledger
                book = ledger(durable)
                book.pulled(done)
                book.read("pubsub", (), 0, None, watermark.watermark_ms())
                book.maybe_commit()
            elif ack_ids:
                if finalizer is not None:
                    finalizer.register(_Ack(self, subscription, ack_ids))
                else:
                    self._ack(subscription, ack_ids)
            if bundle is None:
                batch.committed()
            idle = 0 if keep else idle + 1
            if keep:
                last_kept = time.monotonic()
            if settings.live:
                if not keep and not self._holding():
                    watermark.caught_up(int(time.time() * 1000))
                if time.monotonic() - started >= settings.checkpoint_every_s:
                    tracker.defer_remainder(Duration(seconds=0 if keep else 0.5))
                    return
            elif idle >= settings.finish_after_idle_pulls and time.monotonic() - last_kept >= settings.finish_quiet_s:
                # Pub/Sub has no offsets to end at: the end is when pulls, for a while, bring
                # nothing from before the stop. A time, not only a count: on a busy topic
                # pulls of newer messages come back in milliseconds, while Pub/Sub may still
                # deliver older ones (its order is best effort; a lapsed lease comes back late).
                tracker.try_claim(sys.maxsize)  # fails by design: the replay is done
                return

    def _emit(self, subscription, items, watermark, bundle, undecided: list, done=None):
        """Emit each message once (by id, as ``bundle`` classifies it: replay/redelivery.py);
        ``undecided`` gathers the copies to hand back. ``done`` (live, acked when durable)
        gathers (close, event time, ack id) of each other message, duplicates included:
        acking a redelivery acks the message, so it waits for the same close."""
        RECORDS_READ.inc(len(items))
        holding = self._holding()
        newest, bound = (None, 0) if holding else watermark.log_state()
        id_attribute = self.settings.id_attribute
        close_ms = self.settings.durable.close_ms if done is not None else None
        for item, publish_ms in items:
            message = item.message
            attributes = dict(message.attributes)
            record_id = attributes.get(id_attribute) if id_attribute else message.message_id
            verdict = None if record_id is None else bundle.classify(record_id)
            if verdict == UNDECIDED:
                undecided.append(item)
                continue
            duplicate = verdict == DUPLICATE
            provenance = Provenance("pubsub", subscription, None, message.message_id, publish_ms)
            try:
                value, event_ms = self._decoder.parse(message.data, publish_ms, None, None, attributes)
            except FAILURES as err:
                if done is not None:
                    done.append((publish_ms + 1, publish_ms, item.ack_id))
                if duplicate:
                    continue
                dead = self._decoder.dead_letter(err, message.data, None, provenance)
                count_dead_letter(dead.reason)
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, beam.window.TimestampedValue(
                    dead, Timestamp(micros=publish_ms * 1000)))
                continue
            if done is not None:
                done.append((close_ms(event_ms), event_ms, item.ack_id))
            if duplicate:
                Metrics.counter(METRICS_NAMESPACE, "duplicates_dropped").inc()
                continue
            # Pub/Sub has no offsets: the cutoff follows delivery order (see the README).
            yield at_event_time(SourceRecord(value, event_ms, None, provenance,
                                             None if newest is None or holding else newest - bound))
            newest = event_ms if newest is None else max(newest, event_ms)
        if newest is not None and not holding:
            watermark.observe_event_ms(newest)

    def _holding(self) -> bool:
        return self.settings.hold_until is not None and time.time() < self.settings.hold_until

    def _ack(self, subscription, ack_ids):
        acknowledge(self._subscriber, subscription, ack_ids)


class _PullLiveFn(_PullFn):
    @beam.DoFn.unbounded_per_element()
    def process(self, subscription: str,
                finalizer=beam.DoFn.BundleFinalizerParam,  # before the SDF params: Beam passes it by position
                tracker=beam.DoFn.RestrictionParam(),
                watermark=beam.DoFn.WatermarkEstimatorParam()):
        yield from self._pull(subscription, tracker, watermark, finalizer)


class _PullDurableFn(_PullFn):
    """Live read of a pipeline run, whose acks follow its durable results (replay/durable.py),
    not its bundles: it asks for no bundle finalization, as the Kafka reader's twin does (Flink
    finalizes only on checkpoints, which live runs do not take, and the SDK keeps every bundle
    awaiting finalization with its whole bundle processor). An id counts as seen once the pull
    that emitted it returns: a bundle that fails takes its DoFn, and the ids it saw, with it."""

    @beam.DoFn.unbounded_per_element()
    def process(self, subscription: str,
                tracker=beam.DoFn.RestrictionParam(),
                watermark=beam.DoFn.WatermarkEstimatorParam()):
        yield from self._pull(subscription, tracker, watermark, finalizer=None)


class _Ack:
    def __init__(self, fn: _PullFn, subscription: str, ack_ids: list[str]):
        self.fn, self.subscription, self.ack_ids = fn, subscription, ack_ids

    def __call__(self):
        if self.ack_ids:
            self.fn._ack(self.subscription, self.ack_ids)


def _ms(publish_time) -> int:
    """Epoch ms of a message's publish time (a datetime with nanoseconds)."""
    from datetime import datetime, timedelta, timezone

    return (publish_time - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)


class ReadFromPubSubReplay(beam.PTransform):
    """A Pub/Sub subscription as ``{"records": ..., "dead_letters": ...}``."""

    def __init__(self, settings: PubSubReadSettings):
        super().__init__()
        self.settings = settings

    def expand(self, pbegin):
        settings = self.settings
        fn = (_PullFn if not settings.live else _PullDurableFn if settings.durable else _PullLiveFn)(settings)
        return expand_read(pbegin, "Subscription", [settings.subscription], fn)
