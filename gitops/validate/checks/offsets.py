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
"""

from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import dig
from gitops.model.data_plane import client_config
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
