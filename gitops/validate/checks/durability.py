"""Durability against availability: replication factor, min.insync.replicas and the producer's acks together.

A judgment, chosen per environment by environments.yaml `kafka_broker_losses` (f): how many Kafka brokers may fail
at once while no acknowledged event is lost and writes go on. Kafka's rules (Kafka documentation, topic config
min.insync.replicas and producer config acks): with acks=all a write is acknowledged once min.insync.replicas (m)
replicas have it, and refused (NotEnoughReplicas) while fewer than m are in sync; with acks=1 or 0 the leader alone
acknowledges. So, for f > 0:
- the producer writing the topic uses acks=all (-1): else losing the leader loses what it acknowledged;
- m >= f + 1: else f losses can take every copy of an acknowledged event;
- replication factor >= m + f: else f losses leave fewer than m in sync and every write is refused.
The Broker topic's factor and m come from its ConfigMap (default.topic.replication.factor,
default.topic.config.min.insync.replicas; unset m is the Kafka cluster's default, 1 as Kafka ships it); the
receivers' acks from config-kafka-broker-data-plane / config-kafka-sink-data-plane (upstream ships acks=all,
eventing-kafka-broker knative-v1.23.0 data-plane/config/*/100-config-kafka-*-data-plane.yaml). The dead-letter
topic's KafkaSink has no topic-config field, so only its factor (>= f + 1) and its producer's acks are judged.
"""

from collections.abc import Iterator

from gitops.core import environments, manifests
from gitops.core.manifests import Obj, dig
from gitops.model.data_plane import ClientConfig, client_config
from gitops.model.eventing import broker_configmap, is_kafka_broker, is_kafka_sink
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

# The rule docs/checks.md prints under "Judgments" (gitops/validate/registry.py format_catalogue).
JUDGMENT = (
    "`kafka-durability`, chosen by `kafka_broker_losses` (f) in environments.yaml: with f > 0 every producer writing "
    "the Broker or dead-letter topic uses acks=all, min.insync.replicas >= f + 1 and replication factor >= "
    "min.insync.replicas + f. Why: with acks=all Kafka acknowledges a write once min.insync.replicas replicas have it "
    "and refuses writes while fewer are in sync, so fewer copies lose acknowledged events with f brokers and fewer "
    "replicas block every write after f losses. f = 0 (one broker, dev) promises nothing."
)
RF_KEY = "default.topic.replication.factor"
MIN_ISR_KEY = "default.topic.config.min.insync.replicas"
KAFKA_DEFAULT_MIN_ISR = 1  # Kafka broker config min.insync.replicas default
ACKS_ALL = {"all", "-1"}


def broker_losses(ctx: EnvContext) -> int:
    return environments.load(ctx.root).get(ctx.env).kafka_broker_losses


def _int(value: object) -> int | None:
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() else None


def _acks_problem(producer: ClientConfig, ctx: EnvContext, losses: int) -> str | None:
    if producer.configmap is None:
        return None
    acks = producer.get("acks") or "unset (Kafka 3.x+: all)"
    if acks in ACKS_ALL or acks.startswith("unset"):
        return None
    return (
        f"producer acks={acks} ({producer.key}, {ctx.render.origin(producer.configmap)}): the partition leader alone "
        f"acknowledges, so losing it loses acknowledged events although environments.yaml promises {losses} broker "
        "loss(es) lose nothing; set acks=all"
    )


@env_check("kafka-durability")
def check_broker_topic_durability(ctx: EnvContext) -> Iterator[Finding]:
    """Broker topic vs kafka_broker_losses (environments.yaml): acks=all, min.insync > losses, RF >= min.insync + losses.

    The rule and why: JUDGMENT below (docs/checks.md, "Judgments")."""
    losses = broker_losses(ctx)
    if losses == 0:
        return
    producer = client_config(ctx.with_stand_ins, "broker", "producer")
    acks = _acks_problem(producer, ctx, losses)
    if acks and producer.configmap is not None:
        yield ctx.finding("kafka-durability", producer.configmap, acks, field=f"data[{producer.key}]")
    for broker in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Broker"):
        if not is_kafka_broker(broker):
            continue
        config = broker_configmap(ctx.objects, broker)
        if config is None:
            continue
        key = manifests.ObjKey.of(config)
        data = config.get("data") or {}
        rf, isr = _int(data.get(RF_KEY)), _int(data.get(MIN_ISR_KEY))
        rf_file = ctx.render.field_origin(key, f"data[{RF_KEY}]")
        isr_file = ctx.render.field_origin(key, f"data[{MIN_ISR_KEY}]") if isr is not None else None
        m = isr if isr is not None else KAFKA_DEFAULT_MIN_ISR
        m_side = f"min.insync.replicas {m}" + (
            f" ({isr_file})"
            if isr_file
            else f" (unset: the Kafka cluster's default, {KAFKA_DEFAULT_MIN_ISR} as shipped)"
        )
        promise = f"environments.yaml promises kafka_broker_losses {losses} for {ctx.env}"
        if m < losses + 1:
            yield ctx.finding(
                "kafka-durability",
                config,
                f"{m_side} <= {losses} broker loss(es): an event acknowledged on {m} replica(s) is lost with them, "
                f"although {promise}; set {MIN_ISR_KEY} to {losses + 1}",
                field=f"data[{MIN_ISR_KEY}]",
            )
        if rf is None or rf < m + losses:
            yield ctx.finding(
                "kafka-durability",
                config,
                f"replication factor {rf if rf is not None else 'unset'} ({rf_file}) < {m_side} + {losses} broker "
                f"loss(es) = {m + losses}: after {losses} loss(es) fewer than {m} replicas are in sync and the "
                f"receiver's every write to {manifests.ObjKey.of(broker)}'s topic is refused, although {promise}; "
                f"set {RF_KEY} to {m + losses}",
                field=f"data[{RF_KEY}]",
            )


@env_check("kafka-durability")
def check_dead_letter_topic_durability(ctx: EnvContext) -> Iterator[Finding]:
    """Dead-letter topic vs kafka_broker_losses (environments.yaml): KafkaSink RF > losses, its producer acks=all."""
    losses = broker_losses(ctx)
    if losses == 0:
        return
    sinks: list[Obj] = [
        s for s in manifests.of_kind(ctx.objects, "eventing.knative.dev", "KafkaSink") if is_kafka_sink(s)
    ]
    if not sinks:
        return
    producer = client_config(ctx.with_stand_ins, "sink", "producer")
    acks = _acks_problem(producer, ctx, losses)
    if acks and producer.configmap is not None:
        yield ctx.finding("kafka-durability", producer.configmap, acks, field=f"data[{producer.key}]")
    for sink in sinks:
        rf = _int(dig(sink, "spec", "replicationFactor"))
        if rf is not None and rf >= losses + 1:
            continue
        yield ctx.finding(
            "kafka-durability",
            sink,
            f"replicationFactor {rf if rf is not None else 'unset (the topic exists already, or the cluster default)'}"
            f" <= {losses} broker loss(es): a dead letter, the last copy of an event, is lost with "
            f"{'its broker' if rf == 1 else 'them'}, although environments.yaml promises kafka_broker_losses "
            f"{losses} for {ctx.env}; set spec.replicationFactor to at least {losses + 1} (immutable: a new topic)",
            field="spec.replicationFactor",
        )
