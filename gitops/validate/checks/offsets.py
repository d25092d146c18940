"""Offsets that are never skipped: nothing already in a source topic is skipped at start-up or after a group reset.

Where a KafkaSource starts reading (eventing-kafka-broker v0.50.1 / knative-v1.23.0):
- at start-up, while its consumer group has no committed offsets: spec.initialOffset, `latest` when unset
  (control-plane pkg/apis/sources/v1/kafka_defaults.go SetDefaults); with `latest` the controller commits the
  newest offsets before the dispatcher starts (pkg/reconciler/consumergroup/consumergroup.go reconcileInitialOffset),
  so every record produced before the source existed is skipped;
- after the group's offsets are gone (deleted, expired after Kafka's offsets.retention.minutes, or a partition
  added later): the dispatcher's Kafka consumer `auto.offset.reset` from config-kafka-source-data-plane
  (data-plane/config/source/100-config-kafka-source-data-plane.yaml ships `earliest`); `latest` or `none` skips
  or stops.
Both must be `earliest` (base/eventing/kafka-source.yaml promises it).

The next hop, the Broker topic, has the same question for each Trigger's consumer group: its initial offset is
`latest` unless config-kafka-broker-data-plane's consumer properties set auto.offset.reset to something else
(control-plane pkg/reconciler/trigger/v2/triggerv2.go with pkg/kafka/data_plane_config.go IsOffsetLatest; upstream
ships `latest`), and the controller commits those newest offsets before the Trigger is Ready. A source record
forwarded to the Broker before that is skipped for the Trigger. So where the Triggers start at latest, the
KafkaSource feeding their Broker must sync in a later Argo CD wave than they do: Argo CD starts a wave only once the
previous one is healthy, and our Trigger health check is its Ready condition (argocd/resource_customizations).
"""

from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import dig
from gitops.model.argocd import WAVE, wave
from gitops.model.data_plane import client_config
from gitops.model.eventing import sink_broker, trigger_broker
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

SOURCE_DEFAULT_INITIAL_OFFSET = "latest"  # kafka_defaults.go
KEPT = "earliest"


@env_check("source-offsets")
def check_sources_start_at_earliest(ctx: EnvContext) -> Iterator[Finding]:
    """A KafkaSource starts at the oldest retained record (initialOffset) and resets there (auto.offset.reset)."""
    sources = list(manifests.of_kind(ctx.objects, "sources.knative.dev", "KafkaSource"))
    if not sources:
        return
    consumer = client_config(ctx.with_stand_ins, "source", "consumer")
    reset = consumer.get("auto.offset.reset")
    reset_file = ctx.render.origin(consumer.configmap) if consumer.configmap is not None else "?"
    for source in sources:
        initial = dig(source, "spec", "initialOffset") or SOURCE_DEFAULT_INITIAL_OFFSET
        topics = ", ".join(dig(source, "spec", "topics") or []) or "its topics"
        if initial != KEPT:
            how = "" if dig(source, "spec", "initialOffset") else " (unset: the source's default)"
            yield ctx.finding(
                "source-offsets",
                source,
                f"initialOffset {initial}{how}: on first start the controller commits the newest offsets of "
                f"{topics}, so every record already there is skipped (the dispatcher's later resets use "
                f"auto.offset.reset={reset or 'unset'}, {consumer.key} in {reset_file}). Set "
                f"spec.initialOffset: {KEPT}",
                field="spec.initialOffset",
            )
        if consumer.configmap is not None and reset != KEPT:
            yield ctx.finding(
                "source-offsets",
                consumer.configmap,
                f"{consumer.key} auto.offset.reset={reset or 'unset (Kafka: latest)'}: when the group of "
                f"{manifests.ObjKey.of(source)} (initialOffset {initial}, {ctx.render.origin(source)}) loses its "
                f"offsets (deleted, expired, a partition added), its consumer "
                f"{'stops' if reset == 'none' else 'skips every record already in ' + topics}. Set "
                f"auto.offset.reset={KEPT}",
                field=f"data[{consumer.key}]",
            )


@env_check("source-offsets")
def check_source_waits_for_trigger_offsets(ctx: EnvContext) -> Iterator[Finding]:
    """Where Triggers start at latest (broker auto.offset.reset), the KafkaSource feeding them syncs in a later wave."""
    consumer = client_config(ctx.with_stand_ins, "broker", "consumer")
    reset = consumer.get("auto.offset.reset")
    if consumer.configmap is not None and reset not in (None, "latest"):
        return  # triggerv2: any value but latest makes every Trigger start at earliest
    reset_side = (
        f"{consumer.key} auto.offset.reset={reset or 'unset'} ({ctx.render.origin(consumer.configmap)})"
        if consumer.configmap is not None
        else "no config-kafka-broker-data-plane in the render (the controller's default: latest)"
    )
    triggers = list(manifests.of_kind(ctx.objects, "eventing.knative.dev", "Trigger"))
    for source in manifests.of_kind(ctx.objects, "sources.knative.dev", "KafkaSource"):
        broker = sink_broker(ctx.objects, source)
        if broker is None:
            continue
        key = manifests.ObjKey.of(broker)
        fed = [
            t for t in triggers if (b := trigger_broker(ctx.objects, t)) is not None and manifests.ObjKey.of(b) == key
        ]
        late = [t for t in fed if wave(t) >= wave(source)]
        if not late:
            continue
        trigger = max(late, key=wave)
        yield ctx.finding(
            "source-offsets",
            source,
            f"sync wave {wave(source)} is not after {manifests.ObjKey.of(trigger)} (wave {wave(trigger)}, "
            f"{ctx.render.field_origin(manifests.ObjKey.of(trigger), f'metadata.annotations[{WAVE}]')}): its Trigger "
            f"consumers start at the Broker topic's newest offsets ({reset_side}), so records the source forwards "
            f"before a Trigger is Ready are skipped for it. Give the KafkaSource a later {WAVE} than every Trigger on "
            f"{key}",
            field=f"metadata.annotations[{WAVE}]",
        )
