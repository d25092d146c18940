"""The ledger: every produced record is processed, dead-lettered, deliberately unmatched, or lost.

A record is identified as the KafkaSource presents it to the Broker: CloudEvent source
`/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>` and id `partition:<p>/offset:<o>` (or its own id when the
record already was a CloudEvent). "processed" = the subscriber wrote the event's record (its `event processed` log
line, apps/notifications event_handling.py); "dead-lettered" = found in the dead-letter topic (or, while the
render's dead-letter sink is the subscriber's own route, its `dead_lettered` line); "unmatched" = produced on
purpose so that no Trigger matches. Everything else is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

EventKey = tuple[str, str]  # (CloudEvent source, id)


def kafka_source_event_source(namespace: str, name: str, topic: str) -> str:
    """The CloudEvent source the KafkaSource `namespace/name` gives a record of `topic` (the ledger's first half)."""
    return f"/apis/v1/namespaces/{namespace}/kafkasources/{name}#{topic}"


@dataclass
class ScenarioLedger:
    name: str
    produced: set[EventKey] = field(default_factory=set)
    unmatched: set[EventKey] = field(default_factory=set)  # produced so that no Trigger matches
    processed: set[EventKey] = field(default_factory=set)
    dead_lettered: set[EventKey] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    # Dropped by a known upstream defect and re-produced as its runbook says (docs/operations.md, "Identity gaps"):
    # original -> its copy. An original is accounted for once its copy is processed (`recovered`), so settle()
    # stops waiting as soon as the copies are through.
    reproduced: dict[EventKey, EventKey] = field(default_factory=dict)
    # Run after the scenario's alerts are judged (a fault the alerts must see to the end, then undone).
    after: Callable[[], None] | None = None

    def observe(self, processed: Iterable[EventKey], dead_lettered: Iterable[EventKey]) -> None:
        self.processed = set(processed) & self.produced
        self.dead_lettered = (set(dead_lettered) & self.produced) - self.processed

    @property
    def recovered(self) -> set[EventKey]:
        return {original for original, copy in self.reproduced.items() if copy in self.processed}

    def reproduce(self, original: EventKey, copy: EventKey) -> None:
        """`copy` is `original` produced again (the identity-gap runbook); the copy is a produced record itself."""
        self.reproduced[original] = copy
        self.produced.add(copy)

    @property
    def lost(self) -> set[EventKey]:
        return self.produced - self.processed - self.dead_lettered - self.unmatched - self.recovered

    def settled(self) -> bool:
        return not self.lost

    def line(self) -> str:
        text = (
            f"{self.name}: produced {len(self.produced)}, processed {len(self.processed)}, "
            f"dead-lettered {len(self.dead_lettered)}, lost {len(self.lost)}"
        )
        if self.unmatched:
            text += f" ({len(self.unmatched)} matched no Trigger, as intended)"
        if self.recovered:
            text += f" ({len(self.recovered)} dropped by the upstream identity gap, re-produced and processed)"
        return text


def summary(ledgers: list[ScenarioLedger]) -> tuple[str, list[str]]:
    """The run's last line and the lost events by name (empty when none is lost)."""
    lost = [f"{ledger.name}: {source} {event_id}" for ledger in ledgers for source, event_id in sorted(ledger.lost)]
    return f"e2e: {len(ledgers)} scenarios, lost {len(lost)}", lost
