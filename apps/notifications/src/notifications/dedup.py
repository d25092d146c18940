"""Remember recently processed events, per route, so at-least-once redeliveries are processed once, and so a
sender cannot make a different event look like one of them.

A redelivery is the *same event*: the same (source, id) *and* the same content (every attribute but the few that
describe one delivery rather than the event, and the data), compared by digest. The same (source, id) with other
content is a collision: a second, different event that claims an identity already seen (a producer reusing ids, or
one writing a source topic that claims another topic's source and a predictable `partition:<p>/offset:<o>` id,
docs/security-model.md). A collision is never answered `duplicate`: the caller processes it, logs it and counts it,
so a forged copy cannot suppress the genuine event, whichever of the two arrives first.

Bounded three ways: entries expire after `window_seconds`, the oldest are evicted beyond `max_entries`, and every
entry has the same size whatever the sender put in its attributes or data, because the key is a 16-byte keyed
BLAKE2b digest of (source, id) and the value packs the expiry with a 16-byte keyed digest of the content. Memory
is therefore at most `max_entries * ENTRY_BYTES` per route (measured by test_dedup.py), never a function of
attribute lengths. Per replica only: a redelivery routed to another pod is processed again.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import orjson

EventKey = bytes
ContentDigest = bytes

DIGEST_BYTES = 16
"""128 bits: with the 100000 entries of a full window the chance that two distinct events share a key (and the
second is wrongly taken for a duplicate) is about 1.5e-29; the per-process random key keeps a sender from
crafting such a pair on purpose."""
ENTRY_BYTES = 240
"""Upper bound of one remembered entry (measured ~215): the 49-byte bytes key, the 57-byte bytes value (8-byte
expiry and 16-byte content digest packed), the OrderedDict's hash-table slot and linked-list node (CPython 3.11,
64-bit)."""
_PROCESS_KEY = secrets.token_bytes(16)
_KEYED_DIGEST = hashlib.blake2b(digest_size=DIGEST_BYTES, key=_PROCESS_KEY, person=b"identity")
"""Copied per event: cheaper than keying a new hash object each time (~0.7 us per key in all)."""
_KEYED_CONTENT_DIGEST = hashlib.blake2b(digest_size=DIGEST_BYTES, key=_PROCESS_KEY, person=b"content")
_EXPIRY = struct.Struct("<d")

DELIVERY_ATTRIBUTES = frozenset(
    {
        "traceparent",
        "tracestate",
        "knativekafkapartition",
        "knativekafkaoffset",
        "knativeerrorcode",
        "knativeerrordest",
        "knativeerrordata",
    }
)
"""Attributes that describe one delivery, not the event, and so are left out of the content digest: the
distributed-tracing extension (each hop may rewrite it, cloudevents/spec extensions/distributed-tracing.md); the
partition and offset the dispatcher that delivers it read it from (eventing-kafka-broker
CloudEventOverridesMutator.applyKafkaMetadata: the Broker topic's, so an event written to the Broker twice, by a
KafkaSource retry or by `gitops replay`, carries other values); and the error extensions of a dead letter
(RecordDispatcherImpl). The event's identity from the KafkaSource (`id` = the source partition and offset) and its
data stay in."""


_DELIVERY_NAMES = tuple(DELIVERY_ATTRIBUTES)


def event_key(source: str, event_id: str) -> EventKey:
    """Fixed-size key of the pair. The length prefix keeps distinct pairs distinct before hashing;
    `surrogatepass` lets any str (even one with lone surrogates) be hashed rather than raise."""
    digest = _KEYED_DIGEST.copy()
    digest.update(f"{len(source)}:{source}{event_id}".encode("utf-8", "surrogatepass"))
    return digest.digest()


def content_digest(attributes: Mapping[str, Any], data: bytes | Any, data_is_raw: bool) -> ContentDigest:
    """Fixed-size digest of everything that makes the event what it is: its attributes (sorted, without
    DELIVERY_ATTRIBUTES) and its data. Raw data (binary mode, `data_base64`) is hashed as bytes; parsed JSON data
    (structured mode) as its canonical (sorted-key) serialisation. The Kafka dispatchers always deliver one
    event in the same mode, so a genuine redelivery always hashes the same."""
    digest = _KEYED_CONTENT_DIGEST.copy()
    kept = dict(attributes)
    for name in _DELIVERY_NAMES:  # popping the few is about twice as fast as filtering every attribute
        kept.pop(name, None)
    digest.update(orjson.dumps(kept, option=orjson.OPT_SORT_KEYS))
    if data is None:
        digest.update(b"\x00")
    elif data_is_raw:
        digest.update(b"\x01")
        digest.update(data if isinstance(data, bytes) else bytes(data))
    else:
        digest.update(b"\x02")
        try:
            digest.update(orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
        except orjson.JSONEncodeError:
            # Parsed data orjson cannot write back (nested deeper than its 254 levels; reading allows 1024): it
            # cannot be compared, so it gets a digest nothing else has and is never taken for a duplicate.
            digest.update(secrets.token_bytes(16))
    return digest.digest()


class Claim(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    """Same (source, id) and same content, already processed: acknowledge without processing."""
    COLLISION = "collision"
    """Same (source, id) as an event processed within the window, other content: process it (claimed)."""
    IN_FLIGHT = "in_flight"


class RecentEvents:
    """One route's window (a route's events never answer for another route's)."""

    def __init__(self, window_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._done: OrderedDict[EventKey, bytes] = OrderedDict()
        self._in_flight: set[EventKey] = set()

    def __len__(self) -> int:
        return len(self._done)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def claim(self, key: EventKey, content: ContentDigest) -> Claim:
        """Claim `key` for processing unless the same event was processed within the window or an event with
        this key is being processed now. A different event under a processed key is claimed too (COLLISION)."""
        now = self._clock()
        self._expire(now)
        if key in self._in_flight:
            return Claim.IN_FLIGHT
        done = self._done.get(key)
        if done is not None and done[_EXPIRY.size :] == content:
            return Claim.DUPLICATE
        self._in_flight.add(key)
        return Claim.NEW if done is None else Claim.COLLISION

    def complete(self, key: EventKey, content: ContentDigest) -> None:
        """The event's record is written: from now on a redelivery of this content is a duplicate (and, after a
        collision, the latest content processed under the key is the one remembered)."""
        self._in_flight.discard(key)
        done = self._done
        done.pop(key, None)
        done[key] = _EXPIRY.pack(self._clock() + self._window) + content
        if len(done) > self._max_entries:
            done.popitem(last=False)

    def release(self, key: EventKey) -> None:
        """Processing or writing the record failed: forget the claim so a redelivery is processed."""
        self._in_flight.discard(key)

    def _expire(self, now: float) -> None:
        done = self._done
        unpack = _EXPIRY.unpack_from
        while done:
            oldest_key, value = next(iter(done.items()))
            if unpack(value)[0] > now:
                return
            del done[oldest_key]
