"""The e2e's handling of the upstream KafkaSource identity gap: recover, re-produce only what the source dropped,
credit an original only once its copy was processed, and never hide a record it cannot account for."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from gitops.e2e import identity_gap
from gitops.e2e.ledger import ScenarioLedger

SOURCE = "/apis/v1/namespaces/notifications/kafkasources/kafka-source#loggings"
SOURCE_OBJ = {"kind": "KafkaSource", "metadata": {"namespace": "notifications", "name": "kafka-source"}}


def _key(partition: int, offset: int) -> tuple[str, str]:
    return (SOURCE, f"partition:{partition}/offset:{offset}")


@pytest.fixture
def gap(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A stack whose source's Consumers lack the identity until recovered; the Kafka parts faked."""
    state: dict[str, Any] = {"open": True, "recovered": 0, "in_broker": set(), "caught_up": True, "reproduced": []}

    def recover(_stack: Any, _source: Any) -> bool:
        state["recovered"] += 1
        state["open"] = False
        return True

    def reproduce(_stack: Any, originals: dict[Any, tuple[str, int, int]]) -> dict[Any, Any]:
        state["reproduced"].append(dict(originals))
        return {k: _key(9, o + 1000) for k, (_t, _p, o) in originals.items()}

    monkeypatch.setattr(identity_gap, "open_now", lambda _s, _src: state["open"])
    monkeypatch.setattr(identity_gap, "recover", recover)
    monkeypatch.setattr(identity_gap, "source_caught_up", lambda _s, _t: state["caught_up"])
    monkeypatch.setattr(identity_gap, "_broker_topic_keys", lambda _s: state["in_broker"])
    monkeypatch.setattr(identity_gap, "reproduce", reproduce)
    return state


def _watch(ledger: ScenarioLedger) -> identity_gap.GapWatch:
    stack = SimpleNamespace(objects=[], kube=object(), oidc=True)
    return identity_gap.GapWatch(stack, ledger, SOURCE_OBJ, ["loggings"])  # type: ignore[arg-type]


def _heal_then_wait(watch: identity_gap.GapWatch, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A poll that finds and heals the gap, then one past the rejoin pause; the clock, to move it on."""
    watch.poll()
    clock = [watch.healed_at + 6]  # type: ignore[operator]
    monkeypatch.setattr(identity_gap.time, "monotonic", lambda: clock[0])
    watch.poll()
    return clock


def test_recovers_and_reproduces_only_what_never_reached_the_broker(
    gap: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = ScenarioLedger("s", produced={_key(0, 1), _key(0, 2), _key(1, 7), ("/elsewhere", "x")})
    ledger.processed = {_key(0, 1)}
    gap["in_broker"] = {_key(0, 2)}  # still in a Trigger's retries: not the gap's
    watch = _watch(ledger)
    _heal_then_wait(watch, monkeypatch)
    assert gap["recovered"] == 1 and "lost their identity" in ledger.notes[0]
    assert gap["reproduced"] == [{_key(1, 7): ("loggings", 1, 7)}]
    assert _key(9, 1007) in ledger.produced and _key(1, 7) in ledger.lost
    watch.poll()
    assert len(gap["reproduced"]) == 1  # once per recovery
    ledger.processed |= {_key(9, 1007)}
    watch.poll()
    assert ledger.recovered == {_key(1, 7)}
    assert ledger.lost == {_key(0, 2), ("/elsewhere", "x")}  # what it cannot account for stays lost


def test_copies_never_processed_leave_the_originals_lost(gap: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = ScenarioLedger("s", produced={_key(0, 3)})
    watch = _watch(ledger)
    _heal_then_wait(watch, monkeypatch)
    assert ledger.recovered == set() and _key(0, 3) in ledger.lost


def test_no_gap_no_action(gap: dict[str, Any]) -> None:
    gap["open"] = False
    ledger = ScenarioLedger("s", produced={_key(0, 3)})
    watch = _watch(ledger)
    watch.poll()
    assert gap["recovered"] == 0 and not gap["reproduced"] and not ledger.notes


def test_waits_for_the_source_to_catch_up(gap: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    gap["caught_up"] = False
    ledger = ScenarioLedger("s", produced={_key(0, 3)})
    watch = _watch(ledger)
    clock = _heal_then_wait(watch, monkeypatch)
    assert not gap["reproduced"]  # the source may still hand it to the Broker
    clock[0] += identity_gap.CATCH_UP_S
    watch.poll()
    assert gap["reproduced"] == [{_key(0, 3): ("loggings", 0, 3)}]


def test_off_without_sender_identity() -> None:
    stack = SimpleNamespace(objects=[{"kind": "KafkaSource"}], kube=object(), oidc=False)
    assert identity_gap.GapWatch.of(stack, ScenarioLedger("s")) is None  # type: ignore[arg-type]


def test_an_api_server_restarting_is_looked_at_again(gap: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """apiserver-restart settles right after restarting kube-apiserver: a refused connection is no failure."""
    calls = []

    def refused(_s: Any, _src: Any) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused")
        return True

    monkeypatch.setattr(identity_gap, "open_now", refused)
    ledger = ScenarioLedger("s", produced={_key(0, 3)})
    watch = _watch(ledger)
    watch.poll()
    assert gap["recovered"] == 0
    clock = [watch.next_check]
    monkeypatch.setattr(identity_gap.time, "monotonic", lambda: clock[0])
    watch.poll()
    assert gap["recovered"] == 1
