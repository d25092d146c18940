"""The scenarios of `gitops e2e` (issue 18), each ending in one ledger line.

Every scenario produces records to the KafkaSource's topics, injects its fault (the fault proxy in front of the
subscriber, or SIGKILL of a data-plane process), waits until each record is accounted for or its deadline passes,
and reports produced / processed / dead-lettered / lost. Deadlines follow the render's delivery: the retry budget
(sum of the backoff delays, each attempt's timeout) plus slack for the JVMs.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from gitops.e2e import identity_gap
from gitops.e2e.fault_proxy import Fault
from gitops.e2e.ledger import EventKey, ScenarioLedger, kafka_source_event_source
from gitops.e2e.stack import Stack
from gitops.events.payloads import CeMode, build_payload, default_source, encode
from gitops.model import metrics as metric_names
from gitops.model.record_size import KAFKA_DEFAULT_MAX_REQUEST_SIZE

SETTLE_SLACK_S = 60.0  # JVM pauses, consumer-group rebalances after a restart
UNROUTED_TYPE = "dev.example.e2e.unrouted"


@dataclass(frozen=True)
class Delivery:
    """The Trigger's effective delivery (its contract egressConfig) in seconds."""

    retry: int
    backoff_delay_s: float
    exponential: bool
    timeout_s: float

    @classmethod
    def of(cls, egress_config: dict[str, Any]) -> Delivery:
        return cls(
            retry=int(egress_config.get("retry", 0)),
            backoff_delay_s=int(egress_config.get("backoffDelay", 0)) / 1000,
            exponential=egress_config.get("backoffPolicy", "Exponential") == "Exponential",
            timeout_s=int(egress_config.get("timeout", 0)) / 1000,
        )

    def delay_before_retry(self, k: int) -> float:
        """WebClientCloudEventSender: retry k (1-based) waits delay * 2^k (exponential) or delay * k (linear)."""
        return self.backoff_delay_s * (2**k if self.exponential else k)

    def budget_s(self) -> float:
        return sum(self.delay_before_retry(k) for k in range(1, self.retry + 1))


def trigger_egresses(stack: Stack) -> list[dict[str, Any]]:
    """Every Trigger's egress in the Broker dispatcher's contract: one resource per Trigger, as the 1.23
    controller writes them (triggerv2 -> ConsumerGroup -> Consumer)."""
    return [e for r in stack.contracts.broker_dispatcher["resources"] for e in r.get("egresses", [])]


def trigger_delivery(stack: Stack) -> Delivery:
    egress = trigger_egresses(stack)[0]
    return Delivery.of(egress.get("egressConfig", {}))


def source_topics(stack: Stack) -> list[str]:
    return list(stack.contracts.source_dispatcher["resources"][0]["topics"])


def kafka_source_name(stack: Stack) -> tuple[str, str]:
    ref = stack.contracts.source_dispatcher["resources"][0]["reference"]
    return ref["namespace"], ref["name"]


def event_source(stack: Stack, topic: str) -> str:
    namespace, name = kafka_source_name(stack)
    return kafka_source_event_source(namespace, name, topic)


class Producing:
    """Plain records (what the KafkaSource wraps) and their ledger keys from the delivery reports."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.producer = Producer({**stack.kafka_client, "linger.ms": 5, "log_level": 3})

    def close(self) -> None:
        """Flush and drop the producer before the test Kafka stops, so its client does not log a connection
        refusal every second over the run's last lines (CI shows only the tail)."""
        self.producer.flush(10)
        del self.producer

    def plain(self, topic: str, payload: bytes, key: str | None = None) -> list[EventKey]:
        keys: list[EventKey] = []
        source = event_source(self.stack, topic)

        def report(err: Any, msg: Any) -> None:
            if err is None:
                keys.append((source, f"partition:{msg.partition()}/offset:{msg.offset()}"))

        self.producer.produce(
            topic,
            payload,
            key=key.encode() if key else None,
            headers=[("content-type", b"application/json")],
            on_delivery=report,
        )
        return keys

    def many(
        self,
        topic: str,
        count: int,
        payload: Callable[[int], bytes] | None = None,
        key: Callable[[int], str | None] | None = None,
        rate: float = 0.0,
    ) -> set[EventKey]:
        collected: list[list[EventKey]] = []
        for i in range(count):
            collected.append(
                self.plain(topic, payload(i) if payload else build_payload(topic), key(i) if key else None)
            )
            self.producer.poll(0)
            if rate:
                time.sleep(1 / rate)
        self.producer.flush(30)
        return {k for keys in collected for k in keys}

    def unrouted(self, topic: str) -> EventKey:
        """A record that already is a CloudEvent of a type no Trigger matches (the KafkaSource keeps its attributes)."""
        record = encode(
            topic, build_payload(topic), None, CeMode.BINARY, ce_type=UNROUTED_TYPE, ce_source=default_source(topic)
        )
        self.producer.produce(record.topic, record.value, headers=record.headers)
        self.producer.flush(30)
        assert record.ce is not None
        return (record.ce["source"], record.ce["id"])


def dead_letters(stack: Stack) -> dict[EventKey, dict[str, str]]:
    """Dead-lettered events: the dead-letter topic's records (a KafkaSink sink), else the subscriber's
    `dead_lettered` lines (while the render's sink is the subscriber's own route)."""
    topic = stack.dead_letter_topic()
    if topic is None:
        return {
            (r["ce_source"], r["ce_id"]): {"knativeerrorcode": str(r.get("error_code"))}
            for r in stack.subscriber_records("dead_lettered")
        }
    return {key: attrs for key, attrs in read_topic_events(stack.kafka_client, topic)}


def _topic_messages(client: dict[str, str], topic: str, wait_s: float = 20) -> Iterator[Any]:
    """Every record of a topic, from offset 0 to the high watermark each partition had when reading began (what the
    scenarios read back: the Broker, source and dead-letter topics), with a throwaway group that commits nothing."""
    consumer = Consumer(
        {**client, "group.id": f"e2e-reader-{uuid.uuid4()}", "enable.auto.commit": False, "log_level": 3}
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        parts = [TopicPartition(topic, p, 0) for p in (meta.partitions if meta else {})]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        pending = {p for p, end in ends.items() if end > 0}
        if not pending:
            return
        consumer.assign([tp for tp in parts if tp.partition in pending])
        deadline = time.monotonic() + wait_s
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            yield msg
            if msg.offset() + 1 >= ends[msg.partition()]:
                pending.discard(msg.partition())
    finally:
        consumer.close()


def _located_attributes(msg: Any) -> dict[str, str]:
    attrs = ce_attributes(msg.headers() or [], msg.value())
    attrs["_partition"], attrs["_offset"] = str(msg.partition()), str(msg.offset())
    return attrs


def read_topic_events(client: dict[str, str], topic: str) -> list[tuple[EventKey, dict[str, str]]]:
    """Every record of a topic (binary-mode CloudEvents: ce_* headers) as ((source, id), attributes)."""
    out = []
    for msg in _topic_messages(client, topic):
        attrs = _located_attributes(msg)
        out.append(((attrs.get("source", ""), attrs.get("id", "")), attrs))
    return out


def record_sizes(client: dict[str, str], topic: str) -> dict[EventKey, tuple[str, int]]:
    """(knativeerrorcode, bytes of value, key and headers) of every record of a topic, by CloudEvent identity."""
    out: dict[EventKey, tuple[str, int]] = {}
    for msg in _topic_messages(client, topic):
        headers = msg.headers() or []
        attrs = ce_attributes(headers, msg.value())
        size = len(msg.value() or b"") + len(msg.key() or b"") + sum(len(k) + len(v or b"") for k, v in headers)
        out[(attrs.get("source", ""), attrs.get("id", ""))] = (attrs.get("knativeerrorcode", ""), size)
    return out


def ce_attributes(headers: list[tuple[str, bytes]], value: bytes | None) -> dict[str, str]:
    """CloudEvent attributes of a Kafka record: binary mode (ce_ headers) or structured (JSON value)."""
    attrs = {name[3:]: (raw or b"").decode("utf-8", "replace") for name, raw in headers if name.startswith("ce_")}
    if not attrs and value:
        try:
            doc = json.loads(value)
        except ValueError:
            return {}
        attrs = {k: str(v) for k, v in doc.items() if k not in ("data", "data_base64")}
    return attrs


def processed_keys(stack: Stack) -> set[EventKey]:
    return {(r["ce_source"], r["ce_id"]) for r in stack.subscriber_records("processed")}


def settle(stack: Stack, ledger: ScenarioLedger, deadline_s: float, want_dead: bool = True) -> None:
    """Observe until every produced record is accounted for (or the deadline passes)."""
    deadline = time.monotonic() + deadline_s
    gap = identity_gap.GapWatch.of(stack, ledger)  # the upstream KafkaSource identity gap, handled as its runbook says
    while True:
        ledger.observe(processed_keys(stack), dead_letters(stack).keys() if want_dead else ())
        if gap is not None and not ledger.settled():
            gap.poll()
        if ledger.settled() or time.monotonic() > deadline:
            return
        time.sleep(1.0)


def deadline_for(stack: Stack) -> float:
    d = trigger_delivery(stack)
    return d.budget_s() + (d.retry + 1) * 2 + SETTLE_SLACK_S


# --- the scenarios ---------------------------------------------------------------------------------------------


def routing(stack: Stack, p: Producing) -> ScenarioLedger:
    ledger = ScenarioLedger("routing")
    for topic in source_topics(stack):
        ledger.produced |= p.many(topic, 10)
        unrouted = p.unrouted(topic)
        ledger.produced.add(unrouted)
        ledger.unmatched.add(unrouted)
    settle(stack, ledger, deadline_for(stack) + 60)  # the first scenario also waits for the consumers' assignment
    wrongly = ledger.unmatched & processed_keys(stack)
    if wrongly:
        ledger.notes.append(f"{len(wrongly)} record(s) no Trigger should match were processed")
        ledger.unmatched -= wrongly
    return ledger


def invalid_payload(stack: Stack, p: Producing) -> ScenarioLedger:
    ledger = ScenarioLedger("invalid-payload")
    topic = source_topics(stack)[0]
    ledger.produced |= p.many(topic, 3, payload=lambda i: json.dumps({"e2e": "not a valid payload", "i": i}).encode())
    settle(stack, ledger, deadline_for(stack))
    tries = [len([a for a in stack.proxy.attempts_of(key) if "dead-letters" not in a.path]) for key in ledger.produced]
    if tries and max(tries) > 1:
        ledger.notes.append(f"a 4xx was retried: up to {max(tries)} attempts")
    return ledger


def subscriber_503(stack: Stack, p: Producing) -> ScenarioLedger:
    """503s on two Triggers: on the first topic's the first min(retry, 2) attempts of each event (they recover: the
    retries' spacing is checked against the render's backoff); on the last topic's every attempt, so those events
    outlast the retry budget and are dead-lettered with code 503. The data plane records a delivery's outcome after
    its retries (RecordDispatcherImpl), so only the second kind is a failed delivery in its metrics: that is what
    KnativeKafkaTriggerDeliveryFailing must fire on (docs/operations.md)."""
    ledger = ScenarioLedger("subscriber-503-then-recovers")
    delivery = trigger_delivery(stack)
    failures = min(delivery.retry, 2)
    topics = source_topics(stack)
    paths = {t: _trigger_path(stack, t) for t in topics}
    recovering, outlasting = topics[0], (topics[-1] if len(topics) > 1 else None)
    always = (paths[outlasting],) if outlasting else ()
    stack.proxy.set(Fault("fail_first", status=503, first=failures, paths=tuple(paths.values()), always=always))
    try:
        recovers = p.many(recovering, 5)
        # Under ordered delivery (prod) a partition's next event waits for the one before it to be dead-lettered,
        # so each event that outlasts the retries takes a retry budget of its own (4 minutes in prod: two took
        # 593 s in `make e2e ENV=prod`); one shows the same there.
        serial = outlasting is not None and _delivers_in_order(stack, outlasting)
        fails = p.many(outlasting, 1 if serial else 2) if outlasting else set()
        ledger.produced |= recovers | fails
        settle(stack, ledger, deadline_for(stack))
    finally:
        stack.proxy.set(Fault())
    spacing_ok = True
    for key in recovers:
        times = [a.at for a in stack.proxy.attempts_of(key) if "dead-letters" not in a.path]
        for k in range(1, min(len(times), failures + 1)):
            expected = delivery.delay_before_retry(k)
            if times[k] - times[k - 1] < expected * 0.9:
                spacing_ok = False
    expected_txt = ", ".join(f"{delivery.delay_before_retry(k):.1f}s" for k in range(1, failures + 1))
    ledger.notes.append(
        f"{failures} x 503 per event on {recovering!r}; retries spaced {'as' if spacing_ok else 'SHORTER than'} the "
        f"render's backoff ({expected_txt})"
    )
    if not spacing_ok:
        ledger.notes.append("FAIL: retries came earlier than the backoff")
    if outlasting:
        letters = dead_letters(stack)
        codes = sorted({letters[k].get("knativeerrorcode", "") for k in fails if k in letters})
        ledger.notes.append(
            f"503 on every attempt on {outlasting!r}: {len(fails & ledger.dead_lettered)} of {len(fails)} dead-lettered "
            f"after {delivery.retry + 1} attempts (knativeerrorcode {', '.join(codes) or 'none'})"
        )
        if len(fails & ledger.dead_lettered) != len(fails) or codes != ["503"]:
            ledger.notes.append("FAIL: the events that outlasted the retries were not dead-lettered with code 503")
        if recovers & ledger.dead_lettered:
            ledger.notes.append("FAIL: an event that recovered within the retries was dead-lettered")
    return ledger


def _delivers_in_order(stack: Stack, topic: str) -> bool:
    """Whether the Trigger delivering `topic`'s events has an ORDERED egress in the dispatcher's contract."""
    return any(
        e.get("deliveryOrder", "UNORDERED") == "ORDERED" and e["destination"].endswith("/" + topic)
        for e in trigger_egresses(stack)
    )


def _trigger_path(stack: Stack, topic: str) -> str:
    """The subscriber path of the Trigger that delivers `topic`'s events (its destination ends with the topic)."""
    egresses = trigger_egresses(stack)
    egress = next((e for e in egresses if e["destination"].endswith("/" + topic)), egresses[0])
    return urlparse(egress["destination"]).path


def subscriber_down(stack: Stack, p: Producing, replay: Callable[[Stack, set[EventKey]], int]) -> ScenarioLedger:
    ledger = ScenarioLedger("subscriber-down-past-retry-budget")
    delivery = trigger_delivery(stack)
    stack.proxy.set(Fault("down"))
    try:
        topic = source_topics(stack)[0]
        ledger.produced |= p.many(topic, 3)
        deadline = time.monotonic() + delivery.budget_s() + 30
        while time.monotonic() < deadline:
            attempts = [
                len([a for a in stack.proxy.attempts_of(k) if "dead-letters" not in a.path]) for k in ledger.produced
            ]
            if attempts and min(attempts) >= delivery.retry + 1:
                break
            time.sleep(0.5)
        time.sleep(5)  # the dead-letter delivery after the last retry
    finally:
        stack.proxy.set(Fault())
    settle(stack, ledger, 30)
    dead = set(ledger.dead_lettered)
    ledger.notes.append(f"down for the whole retry budget ({delivery.budget_s():.1f}s)")
    if dead:
        replayed = replay(stack, dead)
        settle(stack, ledger, 60, want_dead=False)
        ledger.observe(processed_keys(stack), dead_letters(stack).keys())
        ledger.notes.append(f"replayed {replayed}: {len(ledger.processed & dead)} of them processed afterwards")
        if len(ledger.processed & dead) != len(dead):
            ledger.notes.append("FAIL: replay did not process every dead letter")
    return ledger


def subscriber_refuses(stack: Stack, p: Producing, status: int) -> ScenarioLedger:
    ledger = ScenarioLedger(f"subscriber-{status}")
    # An auth misconfiguration refuses every route, the dead-letter route of the subscriber too.
    stack.proxy.set(Fault("status", status=status))
    try:
        topic = source_topics(stack)[-1]
        ledger.produced |= p.many(topic, 3)
        settle(stack, ledger, deadline_for(stack) / 2)
    finally:
        stack.proxy.set(Fault())
    return ledger


LAG_ALERT = "KnativeKafkaConsumerGroupLag"
# Each delivery of the slowed Trigger is held this long (half the attempt timeout at most, so nothing times out):
# measured with 4 s, the dispatcher kept ~150 deliveries in flight (~37 a second) and caught up between top-ups.
SLOW_S = 20.0
LAG_MARGIN_S = 60.0  # held past the alert's `for:` (the scrapes' timeline runs a little behind wall time)
SCRAPE_PAUSE_S = 2.0


def group_lag(metrics_url: str) -> dict[str, float]:
    """Each consumer group's lag as the dispatcher exports it (kafka_consumer_fetch_manager_records_lag summed
    over partitions; the client id "consumer-<group>-<n>" names the group, gitops/model/metrics.py)."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=2) as response:
            return lag_by_group(response.read().decode("utf-8", errors="replace"))
    except OSError:
        return {}


def lag_by_group(text: str) -> dict[str, float]:
    lags: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != "kafka_consumer_fetch_manager_records_lag":
                continue
            match = re.fullmatch(r"consumer-(.+)-[0-9]+", sample.labels.get("client_id", ""))
            if match and sample.value == sample.value:  # NaN: no fetch yet
                lags[match.group(1)] = lags.get(match.group(1), 0.0) + sample.value
    return lags


def subscriber_slow(stack: Stack, p: Producing) -> ScenarioLedger:
    """One Trigger's subscriber answers every delivery only after SLOW_S seconds (nothing fails, nothing times out) while records keep
    coming: its consumer group falls behind, past the lag alert's threshold for longer than its `for:` (both read
    from the render's rule), then catches up once the subscriber is fast again. The other Trigger reads the same
    Broker topic at full speed: the alert names the slow group only."""
    ledger = ScenarioLedger("subscriber-slow")
    threshold, for_s = metric_names.threshold_and_for(stack.objects, LAG_ALERT)
    egresses = trigger_egresses(stack)
    topics = source_topics(stack)
    slow = next((e for e in egresses if any(e["destination"].endswith("/" + t) for t in topics)), egresses[0])
    topic = next((t for t in topics if slow["destination"].endswith("/" + t)), topics[0])
    group = slow["consumerGroup"]
    others = {e["consumerGroup"] for e in egresses} - {group}
    url = stack.metrics_targets()["broker-dispatcher"]
    hold_s = min(SLOW_S, trigger_delivery(stack).timeout_s / 2) or SLOW_S
    stack.proxy.set(Fault("slow", delay_s=hold_s, paths=(urlparse(slow["destination"]).path,)))
    started = time.monotonic()
    above_since: float | None = None
    held_s = max_lag = other_max = 0.0
    try:
        while time.monotonic() - started < for_s + LAG_MARGIN_S + 240:
            lags = group_lag(url)
            lag = lags.get(group, 0.0)
            max_lag = max(max_lag, lag)
            other_max = max([other_max, *(lags.get(g, 0.0) for g in others)])
            now = time.monotonic()
            above_since = (above_since or now) if lag > threshold else None
            held_s = now - above_since if above_since is not None else held_s
            if above_since is not None and held_s >= for_s + LAG_MARGIN_S:
                break
            if lag < 3 * threshold:
                ledger.produced |= p.many(topic, int(threshold))
            time.sleep(SCRAPE_PAUSE_S)
    finally:
        stack.proxy.set(Fault())
    settle(stack, ledger, deadline_for(stack) + 60)
    ledger.notes.append(
        f"{group}'s subscriber held {hold_s:g}s per delivery: lag up to {max_lag:.0f} records, above {threshold:g} "
        f"for {held_s:.0f}s (the alert's for: {for_s:.0f}s); the other Trigger groups' lag at most {other_max:.0f}"
    )
    if held_s < for_s:
        ledger.notes.append(f"FAIL: {group}'s lag did not stay above {threshold:g} for {for_s:.0f}s")
    return ledger


def broker_partitions_committed(stack: Stack) -> bool:
    """Whether every Trigger's consumer group has a committed offset on every partition of the Broker's topic."""
    topic = next(iter(stack.contracts.brokers.values()))
    egresses = trigger_egresses(stack)
    for egress in egresses:
        consumer = Consumer({**stack.kafka_client, "group.id": egress["consumerGroup"], "log_level": 3})
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        finally:
            consumer.close()
        if any(tp.offset < 0 for tp in committed):
            return False
    return True


def steady_state(stack: Stack, p: Producing, ledger: ScenarioLedger) -> None:
    """Before a crash: every Trigger's consumer group has an offset on every Broker partition (kafka-controller
    commits them when it reconciles the Trigger, trigger.go `reconcileConsumerGroup` -> `offset.InitOffsets`);
    a dispatcher killed where none exists would restart at `auto.offset.reset=latest` and skip what arrived
    meanwhile (docs/e2e.md)."""
    deadline = time.monotonic() + 60
    round_ = 0
    while not broker_partitions_committed(stack) and time.monotonic() < deadline:
        for topic in source_topics(stack):
            ledger.produced |= p.many(topic, 6, key=lambda i, r=round_: f"warm-{r}-{i}")
        round_ += 1
        time.sleep(6)  # the offset manager commits every few seconds
    if not broker_partitions_committed(stack):
        ledger.notes.append("FAIL: the Trigger consumer groups never committed on every Broker partition")


def killed_mid_stream(
    stack: Stack, p: Producing, process: str, down_s: float, name: str | None = None
) -> ScenarioLedger:
    ledger = ScenarioLedger(name or f"{process}-sigkill")
    topic = source_topics(stack)[0]
    steady_state(stack, p, ledger)
    duplicates_before = len(stack.subscriber_records("duplicate"))
    before = processed_keys(stack)
    half = p.many(topic, 100, rate=100)
    ledger.produced |= half
    deadline = time.monotonic() + 60
    while len((processed_keys(stack) - before) & half) < 30 and time.monotonic() < deadline:
        time.sleep(0.2)
    at_kill = len((processed_keys(stack) - before) & half)
    stack.supervisor.kill(process)
    ledger.produced |= p.many(topic, 100, rate=100)
    time.sleep(down_s)
    stack.supervisor.restart(process)
    settle(stack, ledger, deadline_for(stack) + 60)
    duplicates = len(stack.subscriber_records("duplicate")) - duplicates_before
    ledger.notes.append(
        f"SIGKILL with {at_kill} of the first {len(half)} processed, 100 more produced while down, restarted after "
        f"{down_s:g}s; {duplicates} redeliveries answered as duplicates"
    )
    return ledger


def ordered(stack: Stack, p: Producing) -> ScenarioLedger | None:
    egresses = trigger_egresses(stack)
    source = stack.contracts.source_dispatcher["resources"][0]["egresses"][0]
    if source.get("deliveryOrder", "UNORDERED") != "ORDERED" or not any(
        e.get("deliveryOrder", "UNORDERED") == "ORDERED" for e in egresses
    ):
        return None
    ledger = ScenarioLedger("ordered-per-partition")
    topic = next(t for t in source_topics(stack) if _delivers_in_order(stack, t))
    ledger.produced |= p.many(topic, 60, key=lambda i: f"key-{i % 3}")
    settle(stack, ledger, deadline_for(stack))
    # Order holds per record key: the source partition's order is kept by the KafkaSource dispatcher, and the
    # receiver partitions the Broker's topic by the key (the `partitionkey` extension), so records of one source
    # partition but different keys may land on different Broker partitions and pass each other there.
    seen: dict[tuple[str, str], list[int]] = {}
    for record in stack.subscriber_records("processed"):
        key = (record["ce_source"], record["ce_id"])
        if key in ledger.produced:
            partition, offset = record["ce_id"].removeprefix("partition:").split("/offset:")
            seen.setdefault((partition, str(record.get("kafka_key"))), []).append(int(offset))
    out_of_order = sorted(f"{p}/{k}" for (p, k), offsets in seen.items() if offsets != sorted(offsets))
    ledger.notes.append(
        f"order kept per source partition and key ({len(seen)} sequences)"
        if not out_of_order
        else f"FAIL: out of order for partition/key {out_of_order}"
    )
    return ledger


# --- hostile producers and large records (issue 30) ------------------------------------------------------------


def _size_producer(stack: Stack) -> Producer:
    """One record per request (no batching, so a topic's max.message.bytes judges each record alone) and a client
    limit above every topic's, so Kafka, not the client, is what refuses a record."""
    return Producer({**stack.kafka_client, "linger.ms": 0, "message.max.bytes": 8 * 1024 * 1024, "log_level": 3})


def _produce_one(
    producer: Producer, topic: str, value: bytes, headers: list[tuple[str, bytes]], partition: int = -1
) -> tuple[str | None, int, int]:
    """(error name or None, partition, offset) of one record, waited for."""
    result: list[tuple[str | None, int, int]] = []

    def report(err: Any, msg: Any) -> None:
        result.append((err.name() if err is not None else None, msg.partition(), msg.offset()))

    producer.produce(topic, value, headers=headers, partition=partition, on_delivery=report)
    producer.flush(30)
    return result[0] if result else ("NO_REPORT", -1, -1)


def _padded(topic: str, pad: int, marker: str, valid: bool = True) -> bytes:
    """A payload of the topic's model with `pad` bytes of padding in a field the model allows to be long (a
    notification's metadata value, a log record's attribute); with `valid=False` the same bytes but the first,
    `[` for `{`, so it is no JSON (400, dead-lettered at once) and exactly as large."""
    payload = json.loads(build_payload(topic))
    holder = "metadata" if topic == "notifications" else "attributes"
    payload[holder] = {"marker": marker, "pad": "x" * pad}
    value = json.dumps(payload).encode()
    return value if valid else b"[" + value[1:]


def record_size(stack: Stack, p: Producing) -> ScenarioLedger:
    """Records at, just under and over the source topic's max.message.bytes (found by Kafka itself: the largest
    padding it accepts), one of them invalid so it is dead-lettered at the largest size with the error extensions.
    Over the limit is refused at the producer and so never reaches the KafkaSource."""
    ledger = ScenarioLedger("record-size")
    topic = source_topics(stack)[-1]
    source = event_source(stack, topic)
    producer = _size_producer(stack)
    headers = [("content-type", b"application/json")]
    marker = uuid.uuid4().hex
    low, high = 0, 2 * 1024 * 1024  # accepted at `low` (checked below), refused at `high`
    probe = "p" * len(marker)  # as long as the marker, so a probe is exactly as large as the records below
    probes: set[EventKey] = set()
    err, part, off = _produce_one(producer, topic, _padded(topic, low, probe, valid=False), headers)
    if err is not None:
        ledger.notes.append(f"FAIL: a small record was refused: {err}")
        return ledger
    probes.add((source, f"partition:{part}/offset:{off}"))
    while high - low > 1:
        mid = (low + high) // 2
        err, part, off = _produce_one(producer, topic, _padded(topic, mid, probe, valid=False), headers)
        if err is None:
            low = mid
            probes.add((source, f"partition:{part}/offset:{off}"))
        elif err == "MSG_SIZE_TOO_LARGE":
            high = mid
        else:
            ledger.notes.append(f"FAIL: producing failed: {err}")
            return ledger
    ledger.produced |= probes
    at = _padded(topic, low, marker)
    sizes = {"at": low, "just under": low - 1024}
    for name, pad in sizes.items():
        err, part, off = _produce_one(producer, topic, _padded(topic, pad, marker), headers)
        if err is not None:
            ledger.notes.append(f"FAIL: the record {name} the limit was refused: {err}")
            continue
        ledger.produced.add((source, f"partition:{part}/offset:{off}"))
    err, part, off = _produce_one(producer, topic, _padded(topic, low, marker, valid=False), headers)
    if err is None:
        dead_key = (source, f"partition:{part}/offset:{off}")
        ledger.produced.add(dead_key)
    else:
        dead_key = None
        ledger.notes.append(f"FAIL: the invalid record at the limit was refused: {err}")
    over, _, _ = _produce_one(producer, topic, _padded(topic, low + 1, marker), headers)
    if over != "MSG_SIZE_TOO_LARGE":
        ledger.notes.append(f"FAIL: a record one byte over the limit was not refused at the producer ({over})")
    settle(stack, ledger, deadline_for(stack))
    dead_sizes = ""
    topic_dl = stack.dead_letter_topic()
    if dead_key is not None and topic_dl is not None:
        sizes_of = record_sizes(stack.kafka_client, topic_dl)
        if dead_key in sizes_of:
            code, size = sizes_of[dead_key]
            upstream = KAFKA_DEFAULT_MAX_REQUEST_SIZE
            dead_sizes = (
                f"; the invalid one at the limit dead-lettered (knativeerrorcode {code}) as a {size}-byte record "
                f"(value, key and headers: {size - len(at)} bytes more than the source record's value"
                + (
                    f"; over upstream's max.request.size {upstream}, so lost with upstream's dead-letter producer)"
                    if size > upstream
                    else ")"
                )
            )
    ledger.notes.append(
        f"{topic}: the largest record its max.message.bytes accepts has a {len(at)}-byte value, processed, and 1 KiB "
        f"under it too; one byte more is refused at the producer (MSG_SIZE_TOO_LARGE: never reaches the "
        f"KafkaSource){dead_sizes}; the {len(probes)} records of the size search are invalid, so dead-lettered"
    )
    return ledger


def _ce_headers(source: str, event_id: str, ce_type: str = "dev.knative.kafka.event") -> list[tuple[str, bytes]]:
    """A binary-mode CloudEvent record (CloudEvents Kafka binding): the KafkaSource passes it through unchanged."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", ce_type.encode()),
        ("content-type", b"application/json"),
    ]


def _processed_markers(stack: Stack, key: EventKey) -> list[str]:
    """The padding markers of the processed records of `key`, in the order they were processed."""
    out = []
    for record in stack.subscriber_records("processed"):
        if (record["ce_source"], record["ce_id"]) != key:
            continue
        summary = record.get("record") or record.get("notification") or {}
        attributes = summary.get("attributes") or {}
        out.append(str(attributes.get("marker", "")))
    return out


def _collisions(stack: Stack, key: EventKey) -> int:
    return sum(1 for r in stack.subscriber_records("id_collision") if (r["ce_source"], r["ce_id"]) == key)


def spoofed_source(stack: Stack, p: Producing) -> ScenarioLedger:
    """A writer of one topic forges another topic's wrapper source and its next id (issue 30): the forged event is
    processed first, and the genuine record at that offset must still be processed, not answered `duplicate`."""
    ledger = ScenarioLedger("spoofed-source")
    topics = source_topics(stack)
    writer, victim = topics[0], topics[-1]
    producer = _size_producer(stack)
    consumer = Consumer({**stack.kafka_client, "group.id": f"e2e-{uuid.uuid4()}", "log_level": 3})
    try:
        _low, next_offset = consumer.get_watermark_offsets(TopicPartition(victim, 0), timeout=10)
    finally:
        consumer.close()
    key = (event_source(stack, victim), f"partition:0/offset:{next_offset}")
    forged, genuine = f"forged-{uuid.uuid4().hex}", f"genuine-{uuid.uuid4().hex}"
    err, _, _ = _produce_one(producer, writer, _padded(victim, 10, forged), _ce_headers(*key))
    if err is not None:
        ledger.notes.append(f"FAIL: the forged record was refused: {err}")
        return ledger
    deadline = time.monotonic() + deadline_for(stack)
    while forged not in _processed_markers(stack, key) and time.monotonic() < deadline:
        time.sleep(0.5)
    err, part, off = _produce_one(
        producer, victim, _padded(victim, 10, genuine), [("content-type", b"application/json")], 0
    )
    if err is not None or (part, off) != (0, next_offset):
        ledger.notes.append(f"FAIL: the genuine record did not land at partition 0 offset {next_offset} ({err}, {off})")
    ledger.produced.add(key)
    settle(stack, ledger, deadline_for(stack))
    deadline = time.monotonic() + deadline_for(stack)
    while genuine not in _processed_markers(stack, key) and time.monotonic() < deadline:
        time.sleep(0.5)
    markers = _processed_markers(stack, key)
    order = ["forged" if m == forged else "genuine" if m == genuine else "?" for m in markers]
    ledger.notes.append(
        f"record on {writer!r} claiming {victim!r}'s source and id {key[1]}: processed {', '.join(order) or 'nothing'}; "
        f"{_collisions(stack, key)} id_collision line(s)"
    )
    if genuine not in markers:
        ledger.notes.append("FAIL: the genuine event was suppressed by the forged one")
        ledger.processed.discard(key)  # the key's processed line was the forged one: the genuine is lost
    return ledger


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def replayed_id(stack: Stack, p: Producing) -> ScenarioLedger:
    """Within one topic, a CloudEvent sent twice unchanged (a true redelivery: `duplicate`), then its id reused with
    other content (a collision: processed, never `duplicate`)."""
    ledger = ScenarioLedger("replayed-id")
    topic = source_topics(stack)[-1]
    producer = _size_producer(stack)
    # The topic's own wrapper source (what its Trigger filters on), with an id of the producer's choosing.
    key = (event_source(stack, topic), f"e2e-replayed-{uuid.uuid4().hex}")
    first, second = f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"
    first_value = _padded(topic, 10, first)

    def duplicates() -> int:
        return sum(1 for r in stack.subscriber_records("duplicate") if (r["ce_source"], r["ce_id"]) == key)

    steps: list[tuple[bytes, Callable[[], bool]]] = [
        (first_value, lambda: first in _processed_markers(stack, key)),
        (first_value, lambda: duplicates() >= 1),
        (_padded(topic, 10, second), lambda: second in _processed_markers(stack, key)),
    ]
    for value, done in steps:
        err, _, _ = _produce_one(producer, topic, value, _ce_headers(*key))
        if err is not None:
            ledger.notes.append(f"FAIL: a record was refused: {err}")
        _wait_for(done, deadline_for(stack))
    ledger.produced.add(key)
    settle(stack, ledger, deadline_for(stack))
    markers = _processed_markers(stack, key)
    ledger.notes.append(
        f"id {key[1]} as A, A again, then B: processed {len(markers)} "
        f"({', '.join('A' if m == first else 'B' if m == second else '?' for m in markers)}), {duplicates()} "
        f"duplicate(s), {_collisions(stack, key)} collision(s)"
    )
    if markers != [first, second] or duplicates() != 1 or _collisions(stack, key) != 1:
        ledger.notes.append("FAIL: expected A processed, A again a duplicate, B processed as a collision")
    return ledger


# --- the dead-letter sink refusing (issue 29) ------------------------------------------------------------------

REFUSING_MAX_MESSAGE_BYTES = "64"  # smaller than any dead letter: Kafka refuses every write to the topic
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = "1048588"  # Kafka's message.max.bytes default, what a topic without an override has


SINK_RECEIVER = "sink-receiver"
# kafka-clients' own log line when a producer's network thread dies (KafkaThread's uncaught-exception handler).
PRODUCER_THREAD_DIED = b"Uncaught exception in thread 'kafka-producer-network-thread"


def dead_letter_sink_refuses(stack: Stack, p: Producing) -> ScenarioLedger | None:
    """The dead-letter topic refuses every record (its max.message.bytes shrunk below any dead letter), so the
    KafkaSink receiver answers 503 for each dead letter and the dispatcher, after its retries, commits past the
    record (RecordDispatcherImpl onDeadLetterSinkFailure -> OffsetManager.failedToSendToDeadLetterSink): the events
    are lost, and KnativeKafkaDeadLetterSinkFailing must fire. Then the runbook's recovery: the topic fixed, each lost
    event re-sent to the Broker ingress from the Broker topic, where it still is (`gitops replay`'s resend), so the
    ledger ends with nothing lost."""
    from gitops.e2e import replay
    from gitops.events import kafka_local

    topic_dl = stack.dead_letter_topic()
    if topic_dl is None:
        return None
    ledger = ScenarioLedger("dead-letter-sink-refuses")
    sink_log = stack.supervisor.procs[SINK_RECEIVER].log
    log_from = sink_log.stat().st_size if sink_log.exists() else 0
    sized = topic_configs_of(stack).get(topic_dl, {}).get("max.message.bytes", KAFKA_DEFAULT_MAX_MESSAGE_BYTES)
    security = stack.kafka.client_security
    kafka_local.alter_topic_configs(
        stack.bootstrap, {topic_dl: {"max.message.bytes": REFUSING_MAX_MESSAGE_BYTES}}, security
    )
    try:
        topic = source_topics(stack)[0]
        invalid = lambda i: json.dumps({"e2e": "not a valid payload", "i": i}).encode()  # noqa: E731
        # Under ordered delivery (prod) each event's dead letter is retried in turn, a retry budget each (minutes):
        # one event shows the same.
        ledger.produced |= p.many(topic, 1 if _delivers_in_order(stack, topic) else 3, payload=invalid)
        # 422 at once, then the dead letter's own retries against the 503s (ConsumerVerticleBuilder
        # createDeadLetterSinkRecordSender: a WebClientCloudEventSender on the egress's retry policy; prod's
        # budget is minutes, dev's seconds)
        settle(stack, ledger, max(30.0, trigger_delivery(stack).budget_s() + 20))
        lost = set(ledger.lost)
    finally:
        kafka_local.alter_topic_configs(stack.bootstrap, {topic_dl: {"max.message.bytes": sized}}, security)
    restarted = _restart_sink_if_its_producer_died(stack, sink_log, log_from)
    if restarted:
        ledger.notes.append(restarted)
    broker_topic = next(iter(stack.contracts.brokers.values()))
    letters = [
        replay.DeadLetter(int(attrs["_partition"]), int(attrs["_offset"]), 0, attrs, data)
        for key, attrs, data in read_topic_records(stack.kafka_client, broker_topic)
        if key in lost
    ]
    first = {letter.key: letter for letter in reversed(letters)}  # the record the dispatcher committed past
    token = stack.replay_token()  # prod's Broker admits the replay identity only (None where it takes no token)
    sent = sum(
        1
        for letter in first.values()
        if 200 <= replay.resend(_without_private(letter), stack.broker_ingress(), token=token) < 300
    )
    settle(stack, ledger, deadline_for(stack))
    ledger.notes.append(
        f"the dead-letter topic refused every write (max.message.bytes {REFUSING_MAX_MESSAGE_BYTES}): {len(lost)} of "
        f"{len(ledger.produced)} events lost as upstream commits past them; recovery (docs/operations.md): topic "
        f"fixed, {sent} re-sent from the Broker topic {broker_topic} to the ingress, "
        f"{len(ledger.dead_lettered & lost)} now dead-lettered"
    )
    if len(lost) != len(ledger.produced):
        ledger.notes.append("FAIL: the refused dead letters were not lost (the sink did not refuse them)")
    return ledger


def _restart_sink_if_its_producer_died(stack: Stack, log: Any, log_from: int) -> str:
    """The runbook's check after the topic is fixed (docs/operations.md, KnativeKafkaDeadLetterSinkFailing): the
    KafkaSink receiver's Kafka producer retries a refused batch by splitting it, forever (retries=2147483647) until
    delivery.timeout.ms; the Kafka client's split chain can overflow the stack and kill the producer's network
    thread, after which every dead letter waits max.block.ms and fails, though the receiver still answers /readyz.
    `make e2e ENV=dev` found it: record-size, the next scenario, lost 2 dead letters. Where the log says so, the
    receiver is restarted (`kubectl rollout restart`) and waited for; '' when it was not needed."""
    with log.open("rb") as out:
        out.seek(log_from)
        if PRODUCER_THREAD_DIED not in out.read():
            return ""
    stack.supervisor.stop(SINK_RECEIVER)
    stack.supervisor.restart(SINK_RECEIVER)
    stack.wait_receivers_ready()  # type: ignore[attr-defined]  (LiveStack: the stand-in kubelet's probe)
    return (
        "the sink receiver's Kafka producer thread died while the topic refused writes (StackOverflowError in the "
        "client's batch splitting): receiver restarted, as docs/operations.md says"
    )


def _without_private(letter: Any) -> Any:
    from gitops.e2e import replay

    attrs = {k: v for k, v in letter.attributes.items() if not k.startswith("_")}
    return replay.DeadLetter(letter.partition, letter.offset, letter.timestamp_ms, attrs, letter.data)


def topic_configs_of(stack: Stack) -> dict[str, dict[str, str]]:
    from gitops.e2e.stack import topic_configs

    return topic_configs(stack.objects, stack.stand_ins)


def read_topic_records(client: dict[str, str], topic: str) -> list[tuple[EventKey, dict[str, str], bytes]]:
    """Every record of a topic as (CloudEvent key, attributes, value)."""
    out = []
    for msg in _topic_messages(client, topic, wait_s=30):
        attrs = _located_attributes(msg)
        out.append(((attrs.get("source", ""), attrs.get("id", "")), attrs, msg.value() or b""))
    return out
