"""The dedup window (notifications.dedup): duplicates, expiry, eviction and in-flight claims, and its bound in
bytes: fixed-size keys, whatever the sender put in source and id."""

from __future__ import annotations

import gc
import tracemalloc

from notifications.dedup import DIGEST_BYTES, ENTRY_BYTES, Claim, RecentEvents, event_key
from notifications.settings import Settings


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
            assert window.claim(key) is Claim.NEW
            window.complete(key)
        del key, event_id
        gc.collect()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(window) == max_entries
    assert held <= max_entries * ENTRY_BYTES, f"{held / max_entries:.0f} bytes per entry"


def test_release_forgets_the_claim_and_complete_makes_duplicates() -> None:
    window = RecentEvents(600, 10)
    key = event_key("/s", "1")
    assert window.claim(key) is Claim.NEW
    assert window.claim(key) is Claim.IN_FLIGHT
    window.release(key)
    assert window.claim(key) is Claim.NEW
    window.complete(key)
    assert window.claim(key) is Claim.DUPLICATE
    assert window.in_flight == 0


class TestRecentEvents:
    def test_duplicate_within_window_then_forgotten_after_it(self) -> None:
        now = [0.0]
        recent = RecentEvents(window_seconds=10, max_entries=100, clock=lambda: now[0])
        key = event_key("/s", "1")
        assert recent.claim(key) is Claim.NEW
        recent.complete(key)
        now[0] = 9.9
        assert recent.claim(key) is Claim.DUPLICATE
        now[0] = 10.1
        assert recent.claim(key) is Claim.NEW
        assert len(recent) == 0

    def test_memory_is_bounded_by_evicting_the_oldest(self) -> None:
        recent = RecentEvents(window_seconds=3600, max_entries=3)
        for i in range(5):
            key = event_key("/s", str(i))
            assert recent.claim(key) is Claim.NEW
            recent.complete(key)
        assert len(recent) == 3
        assert recent.claim(event_key("/s", "0")) is Claim.NEW
        assert recent.claim(event_key("/s", "4")) is Claim.DUPLICATE

    def test_in_flight_and_released_claims(self) -> None:
        recent = RecentEvents(window_seconds=60, max_entries=10)
        key = event_key("/s", "1")
        assert recent.claim(key) is Claim.NEW
        assert recent.claim(key) is Claim.IN_FLIGHT
        recent.release(key)
        assert recent.claim(key) is Claim.NEW

    def test_keys_cannot_collide_across_the_source_id_boundary(self) -> None:
        assert event_key("/a", "b/c") != event_key("/a/b", "/c")
        assert event_key("ab", "c") != event_key("a", "bc")
