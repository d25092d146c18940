"""Order end to end: a Trigger that delivers in order is only as ordered as the hops before it.

The hops from a source topic to the subscriber (eventing-kafka-broker at knative-v1.23.0 / v0.50.1):
1. the KafkaSource dispatches each partition's records in order only with `ordering: ordered` (its default when
   unset: control-plane pkg/apis/sources/v1/kafka_defaults.go SetDefaults);
2. the Broker's receiver writes each event to the Broker topic keyed by its `partitionkey` extension, which the
   KafkaSource sets to the record key (dispatcher InvalidCloudEventInterceptor.setKey; receiver Main adds
   PartitionKeyExtensionInterceptor to the producer): one key, one Broker partition, unless the receiver's producer
   properties make the partitioner ignore keys (`partitioner.ignore.keys=true`, or `partitioner.class`
   RoundRobinPartitioner: Kafka producer configs);
3. the Trigger dispatches each Broker partition in order only with the `kafka.eventing.knative.dev/delivery.order:
   ordered` annotation (default unordered: control-plane pkg/reconciler/trigger/v2/triggerv2.go).
"""

from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.data_plane import client_config
from gitops.model.eventing import DELIVERY_ORDER, sink_broker, trigger_broker
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

SOURCE_DEFAULT_ORDERING = "ordered"  # kafka_defaults.go
KEYLESS_PARTITIONERS = ("RoundRobinPartitioner",)


def ordered_triggers(objects: list[Obj]) -> list[Obj]:
    return [
        t
        for t in manifests.of_kind(objects, "eventing.knative.dev", "Trigger")
        if (manifests.meta(t).get("annotations") or {}).get(DELIVERY_ORDER) == "ordered"
    ]


def _annotation_file(ctx: EnvContext, trigger: Obj) -> str:
    return ctx.render.field_origin(manifests.ObjKey.of(trigger), f"metadata.annotations[{DELIVERY_ORDER}]")


@env_check("delivery-order")
def check_sources_feed_ordered_triggers_in_order(ctx: EnvContext) -> Iterator[Finding]:
    """A KafkaSource feeding a Broker with an ordered Trigger dispatches in order itself."""
    ordered = ordered_triggers(ctx.objects)
    for source in manifests.of_kind(ctx.objects, "sources.knative.dev", "KafkaSource"):
        broker = sink_broker(ctx.objects, source)
        if broker is None:
            continue
        fed = [t for t in ordered if _same(trigger_broker(ctx.objects, t), broker)]
        ordering = dig(source, "spec", "ordering") or SOURCE_DEFAULT_ORDERING
        if not fed or ordering == "ordered":
            continue
        trigger = fed[0]
        yield ctx.finding(
            "delivery-order",
            source,
            f"ordering {ordering}, but {manifests.ObjKey.of(trigger)} delivers in order ({DELIVERY_ORDER}: ordered, "
            f"{_annotation_file(ctx, trigger)}"
            + (f", and {len(fed) - 1} more Trigger(s)" if len(fed) > 1 else "")
            + f"): the source posts a partition's records to {manifests.ObjKey.of(broker)} in any order, so the "
            "Trigger's order is not the producer's. Set spec.ordering: ordered, or make the Triggers unordered",
            field="spec.ordering",
        )


@env_check("delivery-order")
def check_receiver_keeps_keys(ctx: EnvContext) -> Iterator[Finding]:
    """With an ordered Trigger, the Broker receiver's producer partitions by the record key (no keyless partitioner)."""
    ordered = ordered_triggers(ctx.objects)
    if not ordered:
        return
    producer = client_config(ctx.with_stand_ins, "broker", "producer")
    if producer.configmap is None:
        return
    problems = []
    if (producer.get("partitioner.ignore.keys") or "").lower() == "true":
        problems.append("partitioner.ignore.keys=true")
    partitioner = producer.get("partitioner.class") or ""
    if partitioner.rsplit(".", 1)[-1] in KEYLESS_PARTITIONERS:
        problems.append(f"partitioner.class={partitioner}")
    if not problems:
        return
    trigger = ordered[0]
    yield ctx.finding(
        "delivery-order",
        producer.configmap,
        f"{producer.key} sets {' and '.join(problems)}: the Broker receiver spreads one key's events over the Broker "
        f"topic's partitions, but {manifests.ObjKey.of(trigger)} delivers in order ({_annotation_file(ctx, trigger)}) "
        "and keeps only each partition's order. Remove the setting: the receiver keys each event by its "
        "partitionkey (the source record's key)",
        field=f"data[{producer.key}]",
    )


def _same(a: Obj | None, b: Obj) -> bool:
    return a is not None and manifests.ObjKey.of(a) == manifests.ObjKey.of(b)
