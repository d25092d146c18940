"""Remember recently processed (source, id) pairs so at-least-once redeliveries are processed once.

Bounded twice: entries expire after `window_seconds`, and the oldest are evicted beyond `max_entries`, so
memory stays flat whatever the event rate. Per replica only: a redelivery routed to another pod is
processed again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum

EventKey = str


def event_key(source: str, event_id: str) -> EventKey:
    """One flat string rather than a tuple: strings are not tracked by the cyclic GC, so a full window of
    keys adds nothing to collection pauses. The length prefix keeps distinct pairs distinct."""
    return f"{len(source)}:{source}{event_id}"


class Claim(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    IN_FLIGHT = "in_flight"


class RecentEvents:
    def __init__(self, window_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._done: OrderedDict[EventKey, float] = OrderedDict()
        self._in_flight: set[EventKey] = set()

    def __len__(self) -> int:
        return len(self._done)

    def claim(self, key: EventKey) -> Claim:
        """Claim `key` for processing unless it was processed within the window or is being processed now."""
        now = self._clock()
        self._expire(now)
        if key in self._done:
            return Claim.DUPLICATE
        if key in self._in_flight:
            return Claim.IN_FLIGHT
        self._in_flight.add(key)
        return Claim.NEW

    def complete(self, key: EventKey) -> None:
        self._in_flight.discard(key)
        self._done[key] = self._clock() + self._window
        if len(self._done) > self._max_entries:
            self._done.popitem(last=False)

    def release(self, key: EventKey) -> None:
        """Processing failed: forget the claim so a redelivery is processed."""
        self._in_flight.discard(key)

    def _expire(self, now: float) -> None:
        done = self._done
        while done:
            oldest_key, expires_at = next(iter(done.items()))
            if expires_at > now:
                return
            del done[oldest_key]
