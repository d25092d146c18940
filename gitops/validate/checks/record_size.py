"""Every hop of the event path accepts the largest record the hop before it may pass on (gitops/model/record_size.py).

What upstream does not check. A hop that accepts less than the one before it loses records: the Broker receiver's
producer refuses a record too large for `max.request.size` (RecordTooLargeException), the receiver answers 503,
the KafkaSource dispatcher retries, then sends the record to the dead-letter sink, whose receiver has the same
limit; that fails too, and the dispatcher commits past the record (data-plane OffsetManager
failedToSendToDeadLetterSink). The subscriber answers 413 to a body over its limit and the event is dead-lettered
at once although it is valid. So each hop is held to the one before, and a finding names both.
"""

from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model import record_size
from gitops.model.app_routes import app_of_origin, topics_file
from gitops.model.eventing import (
    broker_configmap,
    dead_letter_routes,
    dead_letter_target,
    is_kafka_broker,
    is_kafka_sink,
)
from gitops.model.serving import knative_services
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

ID = "record-size"
RUNBOOK = "docs/operations.md, 'Record size'"


def source_topics(ctx: EnvContext) -> list[tuple[str, int, str]]:
    """(topic, its largest record, the table that says so) for every topic a KafkaSource reads and an app's topic
    table sizes."""
    read = {
        str(topic)
        for source in manifests.of_kind(ctx.objects, "sources.knative.dev", "KafkaSource")
        for topic in dig(source, "spec", "topics") or []
    }
    found: list[tuple[str, int, str]] = []
    for ksvc in knative_services(ctx.objects):
        app = app_of_origin(ctx.render.origin(ksvc))
        limits = record_size.topic_record_limits(app) if app else None
        for topic, size in (limits or {}).items():
            if topic in read and app:
                found.append((topic, size, topics_file(app)))
    return found


def _producer(ctx: EnvContext, where: tuple[str, str, str]) -> tuple[Obj, int | None, str] | None:
    namespace, name, key = where
    cm = manifests.find(ctx.with_stand_ins, "", "ConfigMap", namespace, name)
    if cm is None:
        return None
    return cm, record_size.producer_limit(str((cm.get("data") or {}).get(key, ""))), f"data[{key}]"


def _int(value: object) -> int | None:
    text = str(value).strip()
    return int(text) if text.isdigit() else None


@env_check(ID)
def check_record_size_hops(ctx: EnvContext) -> Iterator[Finding]:
    """Each hop (receiver producers, Broker topic, subscriber body) accepts what the hop before it may pass on."""
    topics = source_topics(ctx)
    if not topics:
        return
    topic, largest, table = max(topics, key=lambda entry: entry[1])
    source_hop = f"source topic {topic!r} carries records up to {largest} bytes ({table})"

    receiver = _producer(ctx, record_size.BROKER_DATA_PLANE)
    receiver_bytes: int | None = None
    if receiver is not None:
        cm, receiver_bytes, field = receiver
        need = record_size.required_receiver_bytes(largest)
        if receiver_bytes is None or receiver_bytes < need:
            yield ctx.finding(
                ID,
                cm,
                f"{field} {record_size.MAX_REQUEST_SIZE}={receiver_bytes} accepts less than the hop before it: "
                f"{source_hop}, {need} with the CloudEvent wrapping ({record_size.WRAPPING_BYTES} bytes); a larger "
                f"record is refused by Kafka (RecordTooLargeException), retried, then committed past; set it to at "
                f"least {need} ({RUNBOOK})",
                field=field,
            )

    broker_bytes: int | None = None
    if receiver is not None and receiver_bytes is not None:
        cm, _, field = receiver
        origin = ctx.render.field_origin(manifests.ObjKey.of(cm), field)
        before = receiver_bytes, f"the Broker receiver's producer sends up to {receiver_bytes} bytes ({origin})"
    else:
        need = record_size.required_receiver_bytes(largest)
        before = need, f"{source_hop}, {need} with the CloudEvent wrapping"
    for broker in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Broker"):
        cm = broker_configmap(ctx.objects, broker) if is_kafka_broker(broker) else None
        if cm is None:
            continue
        field = f"data[{record_size.TOPIC_MAX_MESSAGE_BYTES}]"
        value = _int((cm.get("data") or {}).get(record_size.TOPIC_MAX_MESSAGE_BYTES, ""))
        if value is None or value < before[0]:
            shown = "is not set (the Kafka cluster's message.max.bytes applies, 1048588 by default)"
            yield ctx.finding(
                ID,
                cm,
                f"{field} {shown if value is None else f'= {value}'}: the Broker's topic accepts less than the hop "
                f"before it: {before[1]}; set it to at least {before[0]} (applied when Knative creates the topic; "
                f"on a live topic `kafka-configs.sh --alter`, {RUNBOOK})",
                field=field,
            )
        if value is not None:
            broker_bytes = max(value, broker_bytes or 0)

    sink = _producer(ctx, record_size.SINK_DATA_PLANE)
    uses_kafka_sink = any(is_kafka_sink(dead_letter_target(ctx.objects, r)) for r in dead_letter_routes(ctx.objects))
    if sink is not None and uses_kafka_sink:
        cm, sink_bytes, field = sink
        carried = broker_bytes if broker_bytes is not None else record_size.required_receiver_bytes(largest)
        need = record_size.required_dead_letter_bytes(carried)
        if sink_bytes is None or sink_bytes < need:
            yield ctx.finding(
                ID,
                cm,
                f"{field} {record_size.MAX_REQUEST_SIZE}={sink_bytes} accepts less than the hop before it: the "
                f"Broker's topic holds events up to {carried} bytes, {need} with the error extensions a dead letter "
                f"carries ({record_size.ERROR_BYTES} bytes); such a dead letter is refused and the dispatcher "
                f"commits past it; set it to at least {need} ({RUNBOOK})",
                field=field,
            )

    yield from _subscriber_bodies(ctx, topics)


def _subscriber_bodies(ctx: EnvContext, topics: list[tuple[str, int, str]]) -> Iterator[Finding]:
    sizes = {topic: (size, table) for topic, size, table in topics}
    for ksvc in knative_services(ctx.objects):
        app = app_of_origin(ctx.render.origin(ksvc))
        limits = record_size.topic_record_limits(app) if app else None
        if not limits:
            continue
        containers = dig(ksvc, "spec", "template", "spec", "containers") or []
        for i, container in enumerate(containers):
            for j, entry in enumerate(container.get("env") or []):
                if entry.get("name") != "MAX_BODY_BYTES" or "value" not in entry:
                    continue
                body = _int(entry["value"])
                for topic in sorted(limits):
                    if topic not in sizes:
                        continue
                    size, table = sizes[topic]
                    if body is None or body < size:
                        yield ctx.finding(
                            ID,
                            ksvc,
                            f"container {container.get('name')} sets MAX_BODY_BYTES={entry['value']}, less than the "
                            f"hop before it: source topic {topic!r} carries records up to {size} bytes ({table}); a "
                            "valid event that large is answered 413 and dead-lettered at once; remove it (each route "
                            f"then accepts its topic's max_record_bytes) or raise it ({RUNBOOK})",
                            field=f"spec.template.spec.containers[{i}].env[{j}]",
                        )
                        break
