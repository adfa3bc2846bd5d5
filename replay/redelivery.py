"""Which pulled Pub/Sub messages are redeliveries of ones already emitted (pure logic).

Pub/Sub delivers at least once, so a reader drops a message whose id it has emitted
before. But "emitted" must mean *committed*: a bundle the runner did not commit (it
failed after the reader's part succeeded, and is retried) never acked its messages, so
Pub/Sub delivers them again, and they must be emitted again, not dropped as seen (that
would ack them: lost). So:

* an id is **seen** once the bundle that emitted it is committed: the runner finalized
  it (:meth:`Bundle.committed` from the bundle-finalization callback), or, where there is
  no finalization (bounded reads), its message was acked;
* while its bundle is **open** (emitted, not yet committed), a copy pulled by another
  bundle is *undecided*: neither emitted nor acked, but handed back to Pub/Sub for a
  little while, until the first bundle's fate is known; a copy pulled by the same bundle
  is a duplicate (the bundle commits or fails as one);
* a bundle still not committed ``settle_s`` after it began is taken as failed: its ids
  are forgotten, so their redeliveries are emitted again (a runner that committed it but
  never finalizes may then see a duplicate; a lost message is worse).

Memory is bounded: ``limit`` seen ids (the oldest forgotten first), and the ids of the
bundles of the last ``settle_s`` seconds.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from typing import Callable

__all__ = ["DUPLICATE", "NEW", "UNDECIDED", "Bundle", "Redeliveries"]

NEW, DUPLICATE, UNDECIDED = "new", "duplicate", "undecided"


class Redeliveries:
    """The ids a reader has emitted, by the fate of their bundles (see the module)."""

    def __init__(self, limit: int = 200_000, settle_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limit, self.settle_s, self._clock = limit, settle_s, clock
        self._seen: collections.OrderedDict = collections.OrderedDict()
        self._open: dict[int, tuple[float, set]] = {}  #: bundle -> (began, its new ids)
        self._owner: dict[str, int] = {}  #: id -> the open bundle that emitted it
        self._numbers = itertools.count()
        self._lock = threading.Lock()  # finalization callbacks run on another thread

    def begin(self) -> Bundle:
        with self._lock:
            self._forget_unsettled()
            number = next(self._numbers)
            self._open[number] = (self._clock(), set())
        return Bundle(self, number)

    def _classify(self, number: int, record_id: str) -> str:
        with self._lock:
            if record_id in self._seen:
                return DUPLICATE
            owner = self._owner.get(record_id)
            if owner is not None:
                return DUPLICATE if owner == number else UNDECIDED
            self._owner[record_id] = number
            self._open.setdefault(number, (self._clock(), set()))[1].add(record_id)  # (re)opened if forgotten
            return NEW

    def _committed(self, number: int) -> None:
        with self._lock:
            _, ids = self._open.pop(number, (None, ()))
            for record_id in ids:
                del self._owner[record_id]
                self._seen[record_id] = None
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)

    def _forget_unsettled(self) -> None:
        now = self._clock()
        for number, (began, ids) in list(self._open.items()):
            if now - began >= self.settle_s:
                del self._open[number]
                for record_id in ids:
                    del self._owner[record_id]


class Bundle:
    """One bundle's view: classify each pulled id, then report the bundle committed."""

    def __init__(self, book: Redeliveries, number: int):
        self._book, self._number = book, number

    def classify(self, record_id: str) -> str:
        """NEW (emit it), DUPLICATE (drop it, ack it with the bundle) or UNDECIDED (hand it back)."""
        return self._book._classify(self._number, record_id)

    def committed(self) -> None:
        """The runner committed what this bundle emitted: its ids are seen from now on."""
        self._book._committed(self._number)
