"""The dedup window (notifications.dedup): duplicates (same identity and content), collisions (same identity, other
content), expiry, eviction and in-flight claims, and its bound in bytes: fixed-size keys and values, whatever the
sender put in source, id and data."""

from __future__ import annotations

import gc
import tracemalloc
from typing import ClassVar

from notifications.dedup import DIGEST_BYTES, ENTRY_BYTES, Claim, RecentEvents, content_digest, event_key
from notifications.settings import Settings

SAME = content_digest({"id": "1", "source": "/s", "type": "t", "specversion": "1.0"}, b"{}", True)


def test_keys_have_a_fixed_size_and_keep_pairs_apart() -> None:
    keys = {event_key("/s", "1"), event_key("/s1", ""), event_key("/s", "1" * 65_000), event_key("/\ud800", "x")}
    assert len(keys) == 4
    assert {len(key) for key in keys} == {DIGEST_BYTES}
    assert event_key("/s", "1") == event_key("/s", "1")


def test_a_full_window_of_65_kb_ids_stays_within_the_stated_bound() -> None:
    """The issue's case: 65 KB ce-ids used to be kept whole (3,000 of them took RSS from 49 to 236 MiB)."""
    max_entries = Settings().dedup_max_entries
    gc.collect()
    tracemalloc.start()
    try:
        window = RecentEvents(600, max_entries)
        for number in range(max_entries + 3_000):
            event_id = f"{number:065000d}" if number % 50 == 0 else f"partition:0/offset:{number}"
            key = event_key("/apis/v1/namespaces/n/kafkasources/k#notifications", event_id)
            content = content_digest({"id": event_id}, event_id.encode(), True)
            assert window.claim(key, content) is Claim.NEW
            window.complete(key, content)
        del key, event_id, content
        gc.collect()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(window) == max_entries
    assert held <= max_entries * ENTRY_BYTES, f"{held / max_entries:.0f} bytes per entry"


def test_release_forgets_the_claim_and_complete_makes_duplicates() -> None:
    window = RecentEvents(600, 10)
    key = event_key("/s", "1")
    assert window.claim(key, SAME) is Claim.NEW
    assert window.claim(key, SAME) is Claim.IN_FLIGHT
    window.release(key)
    assert window.claim(key, SAME) is Claim.NEW
    window.complete(key, SAME)
    assert window.claim(key, SAME) is Claim.DUPLICATE
    assert window.in_flight == 0


class TestRecentEvents:
    def test_duplicate_within_window_then_forgotten_after_it(self) -> None:
        now = [0.0]
        recent = RecentEvents(window_seconds=10, max_entries=100, clock=lambda: now[0])
        key = event_key("/s", "1")
        assert recent.claim(key, SAME) is Claim.NEW
        recent.complete(key, SAME)
        now[0] = 9.9
        assert recent.claim(key, SAME) is Claim.DUPLICATE
        now[0] = 10.1
        assert recent.claim(key, SAME) is Claim.NEW
        assert len(recent) == 0

    def test_memory_is_bounded_by_evicting_the_oldest(self) -> None:
        recent = RecentEvents(window_seconds=3600, max_entries=3)
        for i in range(5):
            key = event_key("/s", str(i))
            assert recent.claim(key, SAME) is Claim.NEW
            recent.complete(key, SAME)
        assert len(recent) == 3
        assert recent.claim(event_key("/s", "0"), SAME) is Claim.NEW
        assert recent.claim(event_key("/s", "4"), SAME) is Claim.DUPLICATE

    def test_in_flight_and_released_claims(self) -> None:
        recent = RecentEvents(window_seconds=60, max_entries=10)
        key = event_key("/s", "1")
        assert recent.claim(key, SAME) is Claim.NEW
        assert recent.claim(key, SAME) is Claim.IN_FLIGHT
        recent.release(key)
        assert recent.claim(key, SAME) is Claim.NEW

    def test_keys_cannot_collide_across_the_source_id_boundary(self) -> None:
        assert event_key("/a", "b/c") != event_key("/a/b", "/c")
        assert event_key("ab", "c") != event_key("a", "bc")


class TestContent:
    ATTRIBUTES: ClassVar[dict[str, str]] = {
        "specversion": "1.0",
        "id": "partition:0/offset:0",
        "source": "/s#loggings",
        "type": "t",
    }

    def test_same_identity_and_content_is_a_duplicate_other_content_a_collision(self) -> None:
        recent = RecentEvents(window_seconds=60, max_entries=10)
        key = event_key("/s#loggings", "partition:0/offset:0")
        forged = content_digest(self.ATTRIBUTES, b'{"message": "forged"}', True)
        genuine = content_digest(self.ATTRIBUTES, b'{"message": "genuine"}', True)
        assert recent.claim(key, forged) is Claim.NEW
        recent.complete(key, forged)
        assert recent.claim(key, forged) is Claim.DUPLICATE
        assert recent.claim(key, genuine) is Claim.COLLISION
        assert recent.claim(key, genuine) is Claim.IN_FLIGHT  # claimed: a concurrent copy waits
        recent.complete(key, genuine)
        assert recent.claim(key, genuine) is Claim.DUPLICATE
        assert recent.in_flight == 0

    def test_a_released_collision_is_a_collision_again(self) -> None:
        recent = RecentEvents(window_seconds=60, max_entries=10)
        key = event_key("/s", "1")
        first, second = (content_digest(self.ATTRIBUTES, body, True) for body in (b"1", b"2"))
        assert recent.claim(key, first) is Claim.NEW
        recent.complete(key, first)
        assert recent.claim(key, second) is Claim.COLLISION
        recent.release(key)
        assert recent.claim(key, second) is Claim.COLLISION

    def test_every_attribute_and_the_data_count_but_delivery_attributes_do_not(self) -> None:
        base = content_digest(self.ATTRIBUTES, b"{}", True)
        assert content_digest(dict(reversed(self.ATTRIBUTES.items())), b"{}", True) == base
        assert content_digest(self.ATTRIBUTES | {"type": "u"}, b"{}", True) != base
        assert content_digest(self.ATTRIBUTES | {"subject": "x"}, b"{}", True) != base
        assert content_digest(self.ATTRIBUTES, b"{ }", True) != base
        assert content_digest(self.ATTRIBUTES, None, True) != content_digest(self.ATTRIBUTES, b"", True)
        delivery = {
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "knativeerrorcode": "500",
            "knativekafkapartition": "2",
            "knativekafkaoffset": "7",
        }
        assert content_digest(self.ATTRIBUTES | delivery, b"{}", True) == base
        # Parsed (structured-mode) data hashes by value, whatever the key order it arrived in.
        assert content_digest(self.ATTRIBUTES, {"a": 1, "b": 2}, False) == content_digest(
            self.ATTRIBUTES, {"b": 2, "a": 1}, False
        )
        assert content_digest(self.ATTRIBUTES, {"a": 1}, False) != content_digest(self.ATTRIBUTES, {"a": 2}, False)

    def test_content_digest_has_a_fixed_size(self) -> None:
        big = content_digest(self.ATTRIBUTES | {"x": "y" * 65_000}, b"z" * 1_000_000, True)
        assert len(big) == DIGEST_BYTES

    def test_data_too_deep_to_serialise_is_never_a_duplicate(self) -> None:
        """Structured data nested past orjson's 254 writing levels (it reads 1024) used to raise out of the
        endpoint as a 500: it now gets a digest of its own, so it is processed (or refused by validation)."""
        deep: dict = {}
        node = deep
        for _ in range(300):
            node["a"] = {}
            node = node["a"]
        first, second = content_digest(self.ATTRIBUTES, deep, False), content_digest(self.ATTRIBUTES, deep, False)
        assert len(first) == DIGEST_BYTES
        assert first != second
