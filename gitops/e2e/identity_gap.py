"""The KafkaSource identity gap (docs/operations.md, "Identity gaps" (a): an upstream 1.23 defect), handled in every
scenario the way the runbook has an operator handle it.

Any update of the KafkaSource's Consumers by kafka-controller (a KafkaSource or Trigger edit, a source-dispatcher
restart that changes the placement, a controller restart) can drop their `oidcServiceAccountName`; the source
dispatcher then drops each record it reads (OIDCTokenRequestException: not retried, not dead-lettered) and commits
past it. Which of those actions reopen it is not deterministic (the CI run lost 6 records in `jwks-rotated` and
`kafkasource-consumer-update` that a run on its own did not). So `scenarios.settle` watches for it whenever it
waits: when the Consumers lack the identity it deletes them (the controller re-creates them from the template,
identity included), then re-produces each record the source read meanwhile and never handed to the Broker (read
back from the source topic at its partition and offset), and credits an original only once its copy was processed.
The ledger line says so ("dropped by the upstream identity gap, re-produced and processed"), so the gap is never
hidden, and a record it cannot account for stays lost.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from gitops.e2e.kube import KubeError
from gitops.e2e.ledger import EventKey, ScenarioLedger, kafka_source_event_source

if TYPE_CHECKING:
    from gitops.e2e.stack import Stack

CONSUMERS = ("internal.kafka.eventing.knative.dev/v1alpha1", "Consumer")
CONTRACT_TIMEOUT_S = 120
CHECK_EVERY_S = 10
# After the recovery the re-created Consumers resume from the group's committed offsets; what the source has not
# handed to the Broker by then, with the group caught up, was dropped.
CATCH_UP_S = 60
OFFSET_ID = re.compile(r"^partition:(\d+)/offset:(\d+)$")


def _source(stack: Stack) -> dict[str, Any] | None:
    return next((o for o in stack.objects if o["kind"] == "KafkaSource"), None)


def source_consumers(stack: Stack, source: dict[str, Any]) -> list[dict[str, Any]]:
    """The KafkaSource's Consumers (docs/operations.md's detect step: the label carries the source's UID)."""
    assert stack.kube is not None
    meta = source["metadata"]
    live = stack.kube.get(source["apiVersion"], source["kind"], meta["namespace"], meta["name"])
    if live is None:
        return []
    return stack.kube.list(
        *CONSUMERS, meta["namespace"], f"kafka.eventing.knative.dev/metadata.uid={live['metadata']['uid']}"
    )


def open_now(stack: Stack, source: dict[str, Any]) -> bool:
    """Whether some Consumer of the source lacks the identity right now."""
    consumers = source_consumers(stack, source)
    return bool(consumers) and not all(c["spec"].get("oidcServiceAccountName") for c in consumers)


def wait_consumers(stack: Stack, source: dict[str, Any], with_identity: bool, seconds: float) -> bool:
    """Until every Consumer of the source has (or lacks) the identity, at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        consumers = source_consumers(stack, source)
        if consumers and all(bool(c["spec"].get("oidcServiceAccountName")) == with_identity for c in consumers):
            return True
        time.sleep(1)
    return False


def recover(stack: Stack, source: dict[str, Any]) -> bool:
    """The runbook's recovery: delete the Consumers; the ConsumerGroup controller re-creates them from the template,
    identity included, and the source dispatcher's contract gets it back."""
    assert stack.kube is not None
    for consumer in source_consumers(stack, source):
        stack.kube.delete({"apiVersion": CONSUMERS[0], "kind": CONSUMERS[1], "metadata": consumer["metadata"]})
    if not wait_consumers(stack, source, with_identity=True, seconds=CONTRACT_TIMEOUT_S):
        return False
    deadline = time.monotonic() + CONTRACT_TIMEOUT_S
    while time.monotonic() < deadline:
        resources = stack.contracts.source_dispatcher.get("resources", [])
        if resources and all(e.get("oidcServiceAccountName") for r in resources for e in r.get("egresses", [])):
            return True
        time.sleep(1)
    return False


def _source_group(stack: Stack) -> str:
    resources = stack.contracts.source_dispatcher.get("resources", [])
    egresses = resources[0].get("egresses", []) if resources else []
    return str(egresses[0].get("consumerGroup", "")) if egresses else ""


def source_caught_up(stack: Stack, topics: list[str]) -> bool:
    """Whether the source's consumer group has committed up to the end of every partition of its topics."""
    group = _source_group(stack)
    if not group:
        return False
    consumer = Consumer({**stack.kafka_client, "group.id": group, "log_level": 3})
    try:
        for topic in topics:
            partitions = [
                TopicPartition(topic, p) for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
            ]
            for tp in consumer.committed(partitions, timeout=10):
                _low, high = consumer.get_watermark_offsets(tp, timeout=10)
                if tp.offset < high:
                    return False
    finally:
        consumer.close()
    return True


def _broker_topic_keys(stack: Stack) -> set[EventKey] | None:
    from gitops.e2e import scenarios as sc

    topic = next(iter(stack.contracts.brokers.values()), None)
    if topic is None:
        return None  # the receiver's contract is being rewritten: look again at the next check
    return {key for key, _ in sc.read_topic_events(stack.kafka_client, topic)}


def reproduce(stack: Stack, originals: dict[EventKey, tuple[str, int, int]]) -> dict[EventKey, EventKey]:
    """Each original read back from its source topic at (partition, offset) and produced again with its key,
    value and headers, as the runbook has an operator do with Kafka tooling; original -> the copy's ledger key
    (same CloudEvent source: same topic)."""
    reader = Consumer({**stack.kafka_client, "group.id": "e2e-identity-gap-reader", "enable.auto.commit": False,
                       "log_level": 3})  # fmt: skip
    writer = Producer({**stack.kafka_client, "log_level": 3})
    copies: dict[EventKey, EventKey] = {}
    try:
        for original, (topic, partition, offset) in sorted(originals.items()):
            reader.assign([TopicPartition(topic, partition, offset)])
            msg = reader.poll(10)
            if msg is None or msg.error() or msg.offset() != offset:
                continue

            def report(err: Any, out: Any, original: EventKey = original) -> None:
                if err is None:
                    copies[original] = (original[0], f"partition:{out.partition()}/offset:{out.offset()}")

            writer.produce(topic, msg.value(), key=msg.key(), headers=msg.headers(), on_delivery=report)
        writer.flush(30)
    finally:
        reader.close()
    return copies


@dataclass
class GapWatch:
    """One settle's watch for the gap: check every CHECK_EVERY_S, recover, re-produce what it dropped (the ledger
    credits an original once its copy is processed)."""

    stack: Stack
    ledger: ScenarioLedger
    source: dict[str, Any]
    topics: list[str]
    next_check: float = 0.0
    healed_at: float | None = None

    @classmethod
    def of(cls, stack: Stack, ledger: ScenarioLedger) -> GapWatch | None:
        """None where the gap cannot open: no control plane, sender identity off, or no KafkaSource."""

        source = _source(stack)
        if getattr(stack, "kube", None) is None or not getattr(stack, "oidc", False) or source is None:
            return None
        return cls(stack, ledger, source, list(source["spec"]["topics"]))  # the render's: contracts come and go

    def poll(self) -> None:
        """Called on every pass of settle while records are unaccounted for. The API server or Kafka may be down
        for a moment (apiserver-restart calls settle right after restarting kube-apiserver): then it looks again
        at the next check instead of failing the scenario."""
        try:
            self._poll()
        except (httpx.HTTPError, KubeError, KafkaException):
            self.next_check = time.monotonic() + 1

    def _poll(self) -> None:
        now = time.monotonic()
        if now >= self.next_check:
            self.next_check = now + CHECK_EVERY_S
            if open_now(self.stack, self.source):
                ok = recover(self.stack, self.source)
                self.ledger.notes.append(
                    "the KafkaSource's Consumers lost their identity (upstream gap, docs/operations.md): "
                    + ("deleted and re-created with it" if ok else "FAIL: the recovery did not restore the identity")
                )
                self.healed_at = time.monotonic()
        if self.healed_at is not None and time.monotonic() - self.healed_at > 5:
            self._reproduce_dropped()

    def _reproduce_dropped(self) -> None:
        deadline = self.healed_at + CATCH_UP_S if self.healed_at is not None else time.monotonic()
        if not source_caught_up(self.stack, self.topics) and time.monotonic() < deadline:
            return
        in_broker = _broker_topic_keys(self.stack)
        if in_broker is None:
            return

        meta = self.source["metadata"]
        by_source = {kafka_source_event_source(meta["namespace"], meta["name"], t): t for t in self.topics}
        originals: dict[EventKey, tuple[str, int, int]] = {}
        for key in self.ledger.lost - in_broker - self.ledger.reproduced.keys() - set(self.ledger.reproduced.values()):
            topic, match = by_source.get(key[0]), OFFSET_ID.match(key[1])
            if topic and match:
                originals[key] = (topic, int(match[1]), int(match[2]))
        self.healed_at = None  # once per recovery
        if not originals:
            return
        copies = reproduce(self.stack, originals)
        for original, copy in copies.items():
            self.ledger.reproduce(original, copy)
        self.ledger.notes.append(
            f"{len(originals)} record(s) the source read during the gap never reached the Broker: "
            f"{len(copies)} re-produced from the source topic"
        )
