"""Remember recently processed (source, id) pairs so at-least-once redeliveries are processed once.

Bounded three ways: entries expire after `window_seconds`, the oldest are evicted beyond `max_entries`, and every
entry has the same size whatever the sender put in `source` and `id`, because the key is a 16-byte keyed BLAKE2b
digest of the pair. Memory is therefore at most `max_entries * ENTRY_BYTES` (measured by
test_dedup.py), never a function of attribute lengths. Per replica only: a redelivery routed to
another pod is processed again.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum

EventKey = bytes

DIGEST_BYTES = 16
"""128 bits: with the 100000 entries of a full window the chance that two distinct events share a key (and the
second is wrongly taken for a duplicate) is about 1.5e-29; the per-process random key keeps a sender from
crafting such a pair on purpose."""
ENTRY_BYTES = 200
"""Upper bound of one remembered entry (measured ~180): the 49-byte bytes key, the 24-byte float expiry, the OrderedDict's
hash-table slot and linked-list node (CPython 3.11, 64-bit)."""
_KEYED_DIGEST = hashlib.blake2b(digest_size=DIGEST_BYTES, key=secrets.token_bytes(16))
"""Copied per event: cheaper than keying a new hash object each time (~0.7 us per key in all)."""


def event_key(source: str, event_id: str) -> EventKey:
    """Fixed-size key of the pair. The length prefix keeps distinct pairs distinct before hashing;
    `surrogatepass` lets any str (even one with lone surrogates) be hashed rather than raise."""
    digest = _KEYED_DIGEST.copy()
    digest.update(f"{len(source)}:{source}{event_id}".encode("utf-8", "surrogatepass"))
    return digest.digest()


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

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

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
        """The event's record is written: from now on a redelivery is a duplicate."""
        self._in_flight.discard(key)
        self._done[key] = self._clock() + self._window
        if len(self._done) > self._max_entries:
            self._done.popitem(last=False)

    def release(self, key: EventKey) -> None:
        """Processing or writing the record failed: forget the claim so a redelivery is processed."""
        self._in_flight.discard(key)

    def _expire(self, now: float) -> None:
        done = self._done
        while done:
            oldest_key, expires_at = next(iter(done.items()))
            if expires_at > now:
                return
            del done[oldest_key]
