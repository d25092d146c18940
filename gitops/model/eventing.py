"""Knative Eventing as the render describes it: Broker classes and their ConfigMaps, what a KafkaSource emits,
and whether a Trigger's filters let an event through.

Sources are cited where each rule is defined: eventing-kafka-broker's InvalidCloudEventInterceptor.java (the
attributes a KafkaSource sets), control-plane/pkg/kafka/topic.go and pkg/security/config.go (the Broker ConfigMap
keys), eventing's AttributesFilter and the CloudEvents Subscriptions API (filter dialects).
"""

from dataclasses import dataclass, field

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.knative import resolve_destination

BROKER_CLASS = "eventing.knative.dev/broker.class"
KAFKA_CLASSES = {"Kafka", "KafkaNamespaced"}
KNOWN_BROKER_CLASSES = KAFKA_CLASSES | {"MTChannelBasedBroker"}
DELIVERY_ORDER = "kafka.eventing.knative.dev/delivery.order"
DELIVERY_ORDERS = {"ordered", "unordered"}
KAFKA_TRIGGER_ANNOTATIONS = {DELIVERY_ORDER}
# Broker ConfigMap keys read by eventing-kafka-broker (control-plane/pkg/kafka/topic.go, pkg/security/config.go).
BROKER_CONFIG_KEYS = {
    "bootstrap.servers",
    "default.topic.partitions",
    "default.topic.replication.factor",
    "auth.secret.ref.name",
}
BROKER_CONFIG_PREFIX = "default.topic.config."
KAFKA_SOURCE_TYPE = "dev.knative.kafka.event"
# KafkaSource sets these per record (InvalidCloudEventInterceptor.java): any value is possible.
PER_RECORD_ATTRIBUTES = {"id", "subject", "time", "datacontenttype", "key", "partitionkey"}
PER_RECORD_PREFIXES = ("kafkaheader", "knativekafka")


@dataclass
class EmittedEvent:
    """What a source in the render sends into a Broker: fixed attributes, plus per-record ones."""

    source_obj: Obj
    topic: str
    attributes: dict[str, str] = field(default_factory=dict)

    def value(self, name: str) -> str | None:
        """The attribute's value, or None when it varies per record (so any filter on it may match)."""
        if name in self.attributes:
            return self.attributes[name]
        if name in PER_RECORD_ATTRIBUTES or name.startswith(PER_RECORD_PREFIXES):
            return None
        return ""  # absent attributes compare as "" (AttributesFilter)


def kafka_source_events(source: Obj) -> list[EmittedEvent]:
    ns = manifests.meta(source).get("namespace", "")
    name = manifests.meta(source).get("name", "")
    overrides = dig(source, "spec", "ceOverrides", "extensions") or {}
    return [
        EmittedEvent(
            source,
            topic,
            {
                "specversion": "1.0",
                "type": KAFKA_SOURCE_TYPE,
                # "/apis/v1/namespaces/" + ns + "/kafkasources/" + name + "#" + topic (InvalidCloudEventInterceptor)
                "source": f"/apis/v1/namespaces/{ns}/kafkasources/{name}#{topic}",
                **{str(k): str(v) for k, v in overrides.items()},
            },
        )
        for topic in dig(source, "spec", "topics") or []
    ]


def sink_broker(objects: list[Obj], source: Obj) -> Obj | None:
    target = resolve_destination(objects, source, dig(source, "spec", "sink"), "spec.sink").target
    return target if target is not None and target.get("kind") == "Broker" else None


def events_into(objects: list[Obj], broker: Obj) -> list[EmittedEvent]:
    key = manifests.ObjKey.of(broker)
    events: list[EmittedEvent] = []
    for source in manifests.of_kind(objects, "sources.knative.dev", "KafkaSource"):
        target = sink_broker(objects, source)
        if target is not None and manifests.ObjKey.of(target) == key:
            events += kafka_source_events(source)
    return events


# Three-valued filter evaluation: True, False, or None (depends on per-record values, so it may match).
def _all(values: list[bool | None]) -> bool | None:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _any(values: list[bool | None]) -> bool | None:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def _compare(event: EmittedEvent, attrs: dict, test) -> bool | None:
    results = []
    for name, wanted in attrs.items():
        actual = event.value(str(name))
        results.append(None if actual is None else test(actual, str(wanted)))
    return _all(results)


def evaluate_filters(expression: dict, event: EmittedEvent) -> bool | None:
    """One CloudEvents Subscriptions API filter expression (spec.filters item)."""
    (dialect, body), *_ = expression.items()
    if dialect == "exact":
        return _compare(event, body, lambda a, w: a == w)
    if dialect == "prefix":
        return _compare(event, body, lambda a, w: a.startswith(w))
    if dialect == "suffix":
        return _compare(event, body, lambda a, w: a.endswith(w))
    if dialect == "all":
        return _all([evaluate_filters(e, event) for e in body])
    if dialect == "any":
        return _any([evaluate_filters(e, event) for e in body])
    if dialect == "not":
        inner = evaluate_filters(body, event)
        return None if inner is None else not inner
    return None  # cesql: not evaluated here; assume it may match


def trigger_matches(trigger: Obj, event: EmittedEvent) -> bool | None:
    spec = trigger.get("spec") or {}
    if spec.get("filters"):  # `filters` wins over `filter` when both are set
        return _all([evaluate_filters(e, event) for e in spec["filters"]])
    attributes = dig(spec, "filter", "attributes") or {}
    # An empty value matches anything (AttributesFilter drops it).
    return _compare(event, {k: v for k, v in attributes.items() if v != ""}, lambda a, w: a == w)


def is_kafka_broker(broker: Obj) -> bool:
    """A Broker of one of eventing-kafka-broker's classes (the annotation picks the controller that serves it)."""
    return manifests.annotations(broker).get(BROKER_CLASS) in KAFKA_CLASSES


def broker_config_key(broker: Obj) -> manifests.ObjKey | None:
    """The ConfigMap a Broker's spec.config names (its namespace defaults to the Broker's), if it names one."""
    config = dig(broker, "spec", "config") or {}
    if config.get("kind", "ConfigMap") != "ConfigMap" or not config.get("name"):
        return None
    namespace = config.get("namespace") or manifests.meta(broker).get("namespace", "")
    return manifests.ObjKey("", "ConfigMap", namespace, config["name"])


def broker_configmap(objects: list[Obj], broker: Obj) -> Obj | None:
    """The ConfigMap a Broker reads its Kafka settings from, if it is in the render."""
    key = broker_config_key(broker)
    return None if key is None else manifests.find(objects, key.group, key.kind, key.namespace, key.name)


def trigger_broker(objects: list[Obj], trigger: Obj) -> Obj | None:
    ns = manifests.meta(trigger).get("namespace", "")
    name = dig(trigger, "spec", "broker") or dig(trigger, "spec", "brokerRef", "name")
    return manifests.find(objects, "eventing.knative.dev", "Broker", ns, name or "")


# --- dead letters -------------------------------------------------------------------------------------------------

KAFKA_SINK = ("eventing.knative.dev", "KafkaSink")
# control-plane/pkg/reconciler/broker/broker.go: a Broker may name an existing topic instead of its own.
EXTERNAL_TOPIC = "kafka.eventing.knative.dev/external.topic"
# control-plane/pkg/apis/config/features.go: defaultBrokersTopicTemplate, overridable in config-kafka-features
# (knative-eventing) as brokers.topic.template.
BROKER_TOPIC_TEMPLATE = "knative-broker-{{ .Namespace }}-{{ .Name }}"


def is_kafka_sink(obj: Obj | None) -> bool:
    return obj is not None and (manifests.group_of(obj), obj.get("kind")) == KAFKA_SINK


def broker_topic(objects: list[Obj], broker: Obj) -> str:
    """The Kafka topic a Kafka Broker stores its events in (its external topic, else the brokers topic template)."""
    external = manifests.annotations(broker).get(EXTERNAL_TOPIC)
    if external:
        return str(external)
    features = manifests.find(objects, "", "ConfigMap", "knative-eventing", "config-kafka-features") or {}
    data = features.get("data") or {}
    template = str(data.get("brokers.topic.template") or data.get("brokers-topic-template") or BROKER_TOPIC_TEMPLATE)
    meta = manifests.meta(broker)
    for attribute, value in (("Namespace", meta.get("namespace", "")), ("Name", meta.get("name", ""))):
        for spelling in (f"{{{{ .{attribute} }}}}", f"{{{{.{attribute}}}}}"):
            template = template.replace(spelling, str(value))
    return template


@dataclass(frozen=True)
class DeadLetterRoute:
    """One sender's dead-letter sink as the dispatcher uses it: which object's delivery spec it comes from."""

    sender: Obj  # the Trigger or KafkaSource whose dispatcher sends the dead letter
    declared_on: Obj  # the object whose spec.delivery names the sink (a Trigger without delivery: its Broker)
    destination: dict | None  # spec.delivery.deadLetterSink, or None when there is none


def dead_letter_routes(objects: list[Obj]) -> list[DeadLetterRoute]:
    """Every Trigger's and KafkaSource's effective dead-letter sink.

    A Trigger with its own spec.delivery uses only that (it replaces the Broker's whole); one without inherits the
    Broker's delivery, dead-letter sink included (eventing-kafka-broker trigger/v2 triggerv2.go deliverySpec)."""
    routes: list[DeadLetterRoute] = []
    for trigger in manifests.of_kind(objects, "eventing.knative.dev", "Trigger"):
        own = dig(trigger, "spec", "delivery")
        broker = trigger_broker(objects, trigger)
        holder = trigger if own is not None or broker is None else broker
        routes.append(DeadLetterRoute(trigger, holder, dig(holder, "spec", "delivery", "deadLetterSink")))
    for source in manifests.of_kind(objects, "sources.knative.dev", "KafkaSource"):
        routes.append(DeadLetterRoute(source, source, dig(source, "spec", "delivery", "deadLetterSink")))
    return routes


def dead_letter_target(objects: list[Obj], route: DeadLetterRoute) -> Obj | None:
    """The object a dead-letter route resolves to in the render, or None."""
    if route.destination is None:
        return None
    what = "spec.delivery.deadLetterSink"
    return resolve_destination(objects, route.declared_on, route.destination, what).target


OIDC_NAME_LIMIT = 63  # kmeta.ChildName hashes longer names; those cannot be derived here


def oidc_subject(obj: Obj) -> str | None:
    """The `sub` of the tokens an Eventing sender (Trigger, KafkaSource, ...) carries when authentication-oidc is on:
    its OIDC ServiceAccount, which the controller names <name>-oidc-<group>-<kind> lower-cased (knative.dev/eventing
    v0.50.0 pkg/auth/serviceaccount.go GetOIDCServiceAccountNameForResource, kmeta.ChildName); None when the name is
    long enough to be hashed."""
    meta = obj.get("metadata") or {}
    group = str(obj.get("apiVersion", "")).split("/", 1)[0] if "/" in str(obj.get("apiVersion", "")) else ""
    account = f"{meta.get('name', '')}-oidc-{group}-{obj.get('kind', '')}".lower()
    if len(account) > OIDC_NAME_LIMIT:
        return None
    return f"system:serviceaccount:{meta.get('namespace', '')}:{account}"
