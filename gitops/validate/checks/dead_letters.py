"""Dead letters are kept: every dead-letter sink writes to its own Kafka topic, on the same Kafka, admitted.

What upstream does not check. The Kafka dispatcher sends an event it gives up on to the dead-letter sink once, with
no retry budget of its own, and commits the offset whatever the answer (data-plane OffsetManager
failedToSendToDeadLetterSink): a dead-letter sink that refuses, or forgets, loses the event. So in a production
environment each Broker, Trigger and KafkaSource needs a dead-letter sink, and that sink must be a KafkaSink (a
Kafka topic, replicated like the Broker's), never a Service that logs. Everywhere, a KafkaSink used as a dead-letter
sink must not write into a topic the stack reads (a KafkaSource topic loops the dead letter back in; the Broker's
topic re-dispatches it to every Trigger), must be able to authenticate to the Broker's Kafka, and where an
EventPolicy guards it, must admit every sender (the dispatcher posts the dead letter with the sender's own
identity: ConsumerVerticleBuilder.createDeadLetterSinkRecordSender).
"""

from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import Obj, ObjKey, dig
from gitops.model.eventing import (
    broker_configmap,
    broker_topic,
    dead_letter_routes,
    dead_letter_target,
    is_kafka_broker,
    is_kafka_sink,
    oidc_subject,
    trigger_broker,
)
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

ID = "dead-letters"
DLS = "spec.delivery.deadLetterSink"
OIDC_FLAG = "authentication-oidc"
DEFAULT_AUTHZ = "default-authorization-mode"


def _sink_users(ctx: EnvContext) -> dict[ObjKey, list[Obj]]:
    """KafkaSink -> the senders (Triggers, KafkaSources) whose dead letters it receives."""
    users: dict[ObjKey, list[Obj]] = {}
    for route in dead_letter_routes(ctx.objects):
        target = dead_letter_target(ctx.objects, route)
        if is_kafka_sink(target):
            users.setdefault(ObjKey.of(target), []).append(route.sender)
    return users


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


@env_check(ID)
def check_dead_letters_are_durable(ctx: EnvContext) -> Iterator[Finding]:
    """Production: every Broker, Trigger and KafkaSource has a dead-letter sink, and it is a KafkaSink (a topic)."""
    if not ctx.is_production:
        return
    for broker in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Broker"):
        if is_kafka_broker(broker) and not dig(broker, "spec", "delivery", "deadLetterSink"):
            yield ctx.finding(
                ID,
                broker,
                "no spec.delivery.deadLetterSink: an event its Triggers give up on is committed and gone; name the "
                "KafkaSink dead-letters (base/eventing/dead-letters.yaml)",
                field="spec.delivery",
            )
    for route in dead_letter_routes(ctx.objects):
        sender = route.sender
        if route.destination is None:
            if sender.get("kind") == "KafkaSource" or route.declared_on is sender:
                yield ctx.finding(
                    ID,
                    sender,
                    f"no {DLS}: a record its dispatcher gives up on is committed and gone; name a KafkaSink",
                    field="spec.delivery",
                )
            continue
        target = dead_letter_target(ctx.objects, route)
        if target is None or is_kafka_sink(target):
            continue  # an unresolved sink is the destination check's finding
        via = "" if route.declared_on is sender else f" (inherited from {ObjKey.of(route.declared_on)})"
        yield ctx.finding(
            ID,
            route.declared_on,
            f"{DLS} of {ObjKey.of(sender)}{via} is {ObjKey.of(target)}, not a KafkaSink: a dead letter it refuses or "
            "only logs is lost (the dispatcher commits the offset either way); use the KafkaSink dead-letters",
            field=DLS,
        )


@env_check(ID)
def check_dead_letter_topics(ctx: EnvContext) -> Iterator[Finding]:
    """A dead-letter KafkaSink writes its own topic (no source or Broker topic) on the Broker's Kafka, with its auth."""
    source_topics = {
        str(t): source
        for source in manifests.of_kind(ctx.objects, "sources.knative.dev", "KafkaSource")
        for t in dig(source, "spec", "topics") or []
    }
    brokers = [b for b in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Broker") if is_kafka_broker(b)]
    broker_topics = {broker_topic(ctx.objects, b): b for b in brokers}
    for key, senders in _sink_users(ctx).items():
        sink = manifests.find(ctx.objects, key.group, key.kind, key.namespace, key.name)
        if sink is None:
            continue
        topic = str(dig(sink, "spec", "topic") or "")
        if topic in source_topics:
            yield ctx.finding(
                ID,
                sink,
                f"spec.topic {topic!r} is a topic {ObjKey.of(source_topics[topic])} reads: every dead letter would be "
                "read back in and dispatched again (a loop); give dead letters their own topic",
                field="spec.topic",
            )
        if topic in broker_topics:
            yield ctx.finding(
                ID,
                sink,
                f"spec.topic {topic!r} is the topic of {ObjKey.of(broker_topics[topic])}: every dead letter would be "
                "dispatched to every Trigger again; give dead letters their own topic",
                field="spec.topic",
            )
        for broker in {ObjKey.of(b): b for b in _brokers_of(ctx, senders)}.values():
            yield from _same_kafka_problems(ctx, sink, broker)


def _brokers_of(ctx: EnvContext, senders: list[Obj]) -> list[Obj]:
    """The Kafka Brokers whose Kafka the senders' dead letters come from (a Trigger's Broker; a source's sink)."""
    found = []
    for sender in senders:
        broker = trigger_broker(ctx.objects, sender) if sender.get("kind") == "Trigger" else None
        if sender.get("kind") == "KafkaSource":
            ref = dig(sender, "spec", "sink", "ref") or {}
            ns = ref.get("namespace") or manifests.meta(sender).get("namespace", "")
            broker = manifests.find(ctx.objects, "eventing.knative.dev", "Broker", ns, ref.get("name", ""))
        if broker is not None and is_kafka_broker(broker):
            found.append(broker)
    return found


def _servers(entries: object) -> list[str]:
    items = entries.split(",") if isinstance(entries, str) else [p for e in entries or [] for p in str(e).split(",")]
    return sorted(s.strip() for s in items if s.strip())


def _same_kafka_problems(ctx: EnvContext, sink: Obj, broker: Obj) -> Iterator[Finding]:
    data = (broker_configmap(ctx.objects, broker) or {}).get("data") or {}
    broker_servers, sink_servers = (
        _servers(data.get("bootstrap.servers", "")),
        _servers(dig(sink, "spec", "bootstrapServers")),
    )
    joined = [e for e in dig(sink, "spec", "bootstrapServers") or [] if "," in str(e)]
    if joined:
        # kafka-controller hands the list to sarama as it is (eventing-kafka-broker v0.50.1
        # control-plane/pkg/reconciler/sink/kafka_sink.go GetKafkaClusterAdmin(ctx, ks.Spec.BootstrapServers, ...)),
        # which dials "a:9093,b:9093" as one address: "too many colons in address", the sink never Ready.
        yield ctx.finding(
            ID,
            sink,
            f"bootstrapServers entry {joined[0]!r} lists several servers in one string; a KafkaSink needs one "
            "server per list entry (the controller does not split it: the sink would never become Ready)",
            field="spec.bootstrapServers",
        )
    if broker_servers and sink_servers != broker_servers:
        yield ctx.finding(
            ID,
            sink,
            f"bootstrapServers {sink_servers} differ from {ObjKey.of(broker)}'s Kafka {broker_servers}: the dead "
            "letters would go to another cluster (set all three in overlays/<env>/kafka.yaml)",
            field="spec.bootstrapServers",
        )
    if data.get("auth.secret.ref.name") and not dig(sink, "spec", "auth", "secret", "ref", "name"):
        yield ctx.finding(
            ID,
            sink,
            f"{ObjKey.of(broker)}'s Kafka needs auth (auth.secret.ref.name {data['auth.secret.ref.name']!r}) but this "
            "dead-letter sink sets no spec.auth.secret.ref.name: it cannot create or write its topic",
            field="spec.bootstrapServers",
        )
    broker_rf, sink_rf = (
        _int(data.get("default.topic.replication.factor")),
        _int(dig(sink, "spec", "replicationFactor")),
    )
    if ctx.is_production and broker_rf and sink_rf is not None and sink_rf < broker_rf:
        yield ctx.finding(
            ID,
            sink,
            f"spec.replicationFactor {sink_rf} is below {ObjKey.of(broker)}'s {broker_rf}: a dead letter is the last "
            "copy of an event; replicate it at least like the events themselves",
            field="spec.replicationFactor",
        )


@env_check(ID)
def check_dead_letter_senders_admitted(ctx: EnvContext) -> Iterator[Finding]:
    """With sender identity on, an EventPolicy on each dead-letter KafkaSink names every sender of its dead letters."""
    features = manifests.find(ctx.objects, "", "ConfigMap", "knative-eventing", "config-features")
    data = (features or {}).get("data") or {}
    if data.get(OIDC_FLAG) != "enabled":
        return
    policies = list(manifests.of_kind(ctx.objects, "eventing.knative.dev", "EventPolicy"))
    for key, senders in _sink_users(ctx).items():
        sink = manifests.find(ctx.objects, key.group, key.kind, key.namespace, key.name)
        applying = [p for p in policies if _applies_to(p, key)]
        if not applying:
            if data.get(DEFAULT_AUTHZ) == "deny-all":
                yield ctx.finding(
                    ID,
                    sink,
                    f"no EventPolicy applies to it and {DEFAULT_AUTHZ} is deny-all: the sink receiver answers 403 to "
                    f"every dead letter ({', '.join(str(ObjKey.of(s)) for s in senders)}) and they are lost",
                )
            continue
        admitted = {
            _ref_key(entry["ref"], manifests.meta(p).get("namespace", ""))
            for p in applying
            for entry in dig(p, "spec", "from") or []
            if isinstance(entry, dict) and entry.get("ref")
        }
        subs = {
            str(entry["sub"])
            for p in applying
            for entry in dig(p, "spec", "from") or []
            if isinstance(entry, dict) and entry.get("sub")
        }
        for sender in senders:
            if ObjKey.of(sender) not in admitted and oidc_subject(sender) not in subs:
                yield ctx.finding(
                    ID,
                    sink,
                    f"{ObjKey.of(sender)} sends its dead letters here (as its own OIDC identity) but no EventPolicy "
                    f"on this sink names it in spec.from: the receiver answers 403 and they are lost",
                )


def _ref_key(ref: dict, default_ns: str) -> ObjKey:
    api_version = str(ref.get("apiVersion", ""))
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    return ObjKey(group, str(ref.get("kind", "")), str(ref.get("namespace") or default_ns), str(ref.get("name", "")))


def _applies_to(policy: Obj, key: ObjKey) -> bool:
    """An EventPolicy applies to every addressable of its namespace when `to` is empty, else to those it names."""
    ns = manifests.meta(policy).get("namespace", "")
    to = dig(policy, "spec", "to") or []
    if ns != key.namespace:
        return False
    return not to or any(_ref_key(t.get("ref") or {}, ns) == key for t in to if isinstance(t, dict))
