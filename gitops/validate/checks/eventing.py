"""Eventing wiring: would an event from a Kafka topic really reach the service, and would the cluster accept it?"""

import re
from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.app_routes import Route, app_of_origin
from gitops.model.eventing import (
    BROKER_CLASS,
    BROKER_CONFIG_KEYS,
    BROKER_CONFIG_PREFIX,
    DELIVERY_ORDER,
    DELIVERY_ORDERS,
    KAFKA_CLASSES,
    KAFKA_TRIGGER_ANNOTATIONS,
    KNOWN_BROKER_CLASSES,
    broker_configmap,
    events_into,
    sink_broker,
    trigger_broker,
    trigger_matches,
)
from gitops.model.knative import delivery_problems, iso_duration, resolve_destination
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")


@env_check("trigger-spec")
def check_trigger_spec(ctx: EnvContext) -> Iterator[Finding]:
    """A Trigger names a Broker in the render and carries only Kafka annotations that Broker class reads.

    What the eventing webhook cannot see from one object: the Broker a Trigger names, and the Kafka annotations
    the Kafka controller (not a webhook) reads. Field names, broker/brokerRef and filter attribute names are the
    webhook's rules, run upstream in the admission stage."""
    for trigger in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Trigger"):
        spec = trigger.get("spec") or {}
        if (spec.get("broker") or spec.get("brokerRef")) and trigger_broker(ctx.objects, trigger) is None:
            yield ctx.finding(
                "trigger-spec",
                trigger,
                f"spec.broker {spec.get('broker') or dig(spec, 'brokerRef', 'name')!r} is not a Broker in its namespace",
            )
        annotations = manifests.annotations(trigger)
        for key, _value in annotations.items():
            if key.startswith("kafka.eventing.knative.dev/") and key not in KAFKA_TRIGGER_ANNOTATIONS:
                yield ctx.finding(
                    "trigger-spec", trigger, f"unknown Kafka annotation {key!r} (ignored by the controller)"
                )
        order = annotations.get(DELIVERY_ORDER)
        if order is not None and str(order).lower() not in DELIVERY_ORDERS:
            yield ctx.finding(
                "trigger-spec",
                trigger,
                f"{DELIVERY_ORDER} must be ordered or unordered, got {order!r} (reconcile fails)",
            )


@env_check("trigger-filter")
def check_trigger_filters_match(ctx: EnvContext) -> Iterator[Finding]:
    """Every Trigger can receive some event, and every KafkaSource topic reaches some Trigger."""
    triggers = list(manifests.of_kind(ctx.objects, "eventing.knative.dev", "Trigger"))
    for broker in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Broker"):
        events = events_into(ctx.objects, broker)
        on_broker = [t for t in triggers if trigger_broker(ctx.objects, t) is broker]
        for trigger in on_broker:
            if events and all(trigger_matches(trigger, e) is False for e in events):
                emitted = "; ".join(f"type={e.attributes['type']} source={e.attributes['source']}" for e in events)
                yield ctx.finding(
                    "trigger-filter",
                    trigger,
                    f"filter matches no event that reaches Broker {broker['metadata']['name']} (sources emit: {emitted})",
                    field="spec.filter",
                )
        for event in events:
            if not any(trigger_matches(t, event) is not False for t in on_broker):
                yield ctx.finding(
                    "trigger-filter",
                    event.source_obj,
                    f"topic {event.topic!r} reaches Broker {broker['metadata']['name']} but no Trigger's filter "
                    f"matches its events (source={event.attributes['source']}): they are dropped",
                )


def _app_route_problem(ctx: EnvContext, origin: str, method: str, path: str) -> str | None:
    """Whether the code of the image this environment runs serves `method path` (issue 28: not the working
    tree's, which may be ahead of the image: a Trigger for a new topic before the image that serves it)."""
    app = app_of_origin(origin)
    if app is None:
        return None
    code = ctx.app_code(app)
    served = code.routes
    if Route(method, path) in served:
        return None
    who = code.describe()
    fix = "" if code.image is None else "; build and promote an image that serves it first (docs/forking.md)"
    same_path = sorted(r.method for r in served if r.path == path)
    if same_path:
        return f"{method} {path} is not served by {who} (only {', '.join(same_path)}: 405, never retried){fix}"
    paths = sorted({r.path for r in served if r.method == method})
    return f"{method} {path} is not served by {who} (404; it serves {method} on {', '.join(paths)}){fix}"


def _destinations(obj: Obj) -> Iterator[tuple[str, object]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Trigger":
        yield "spec.subscriber", spec.get("subscriber")
    if obj.get("kind") == "KafkaSource":
        yield "spec.sink", spec.get("sink")
    if isinstance(spec.get("delivery"), dict) and "deadLetterSink" in spec["delivery"]:
        yield "spec.delivery.deadLetterSink", spec["delivery"]["deadLetterSink"]


@env_check("destination")
def check_destinations(ctx: EnvContext) -> Iterator[Finding]:
    """Subscribers, sinks and dead-letter sinks resolve inside the render, to paths the app serves."""
    kinds = {
        ("eventing.knative.dev", "Trigger"),
        ("eventing.knative.dev", "Broker"),
        ("sources.knative.dev", "KafkaSource"),
    }
    for obj in ctx.objects:
        if (manifests.group_of(obj), obj.get("kind")) not in kinds:
            continue
        for what, destination in _destinations(obj):
            resolved = resolve_destination(ctx.objects, obj, destination, what)
            for problem in resolved.problems:
                yield ctx.finding("destination", obj, problem, field=what)
            target = resolved.target
            if target is None:
                continue
            if what == "spec.sink" and target.get("kind") != "Broker":
                continue
            if target.get("kind") == "Service" and manifests.group_of(target) == "serving.knative.dev":
                problem = _app_route_problem(ctx, ctx.render.origin(target), "POST", resolved.path)
                if problem:
                    yield ctx.finding("destination", obj, f"{what}: {problem}", field=what)


@env_check("delivery")
def check_delivery(ctx: EnvContext) -> Iterator[Finding]:
    """Delivery specs are well formed, and a Trigger's own delivery does not drop the Broker's dead-letter sink."""
    for obj in ctx.objects:
        if manifests.group_of(obj) not in {"eventing.knative.dev", "sources.knative.dev"}:
            continue
        delivery = dig(obj, "spec", "delivery")
        if delivery is None:
            continue
        for problem in delivery_problems(delivery):
            yield ctx.finding("delivery", obj, problem)
        if obj.get("kind") == "Trigger" and isinstance(delivery, dict) and "deadLetterSink" not in delivery:
            broker = trigger_broker(ctx.objects, obj)
            if broker is not None and dig(broker, "spec", "delivery", "deadLetterSink"):
                yield ctx.finding(
                    "delivery",
                    obj,
                    "spec.delivery replaces the Broker's delivery as a whole, and this one has no deadLetterSink: "
                    "failed events would be dropped instead of dead-lettered",
                )


@env_check("kafka-broker")
def check_kafka_broker(ctx: EnvContext) -> Iterator[Finding]:
    """Broker class, its ConfigMap and the keys the Kafka controller reads from it."""
    for broker in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Broker"):
        broker_ns = manifests.meta(broker).get("namespace", "")
        cls = manifests.annotations(broker).get(BROKER_CLASS)
        if cls is None:
            yield ctx.finding(
                "kafka-broker",
                broker,
                f"no {BROKER_CLASS} annotation: the cluster default (MTChannelBasedBroker) applies",
            )
            continue
        if cls not in KNOWN_BROKER_CLASSES:
            yield ctx.finding(
                "kafka-broker",
                broker,
                f"unknown broker class {cls!r} (known: {sorted(KNOWN_BROKER_CLASSES)})",
            )
            continue
        if cls not in KAFKA_CLASSES:
            continue
        for key in broker.get("spec") or {}:
            if key not in {"config", "delivery"}:
                yield ctx.finding("kafka-broker", broker, f"spec.{key} is not a Broker field")
        config = dig(broker, "spec", "config") or {}
        if config.get("kind") != "ConfigMap" or config.get("apiVersion") != "v1":
            yield ctx.finding(
                "kafka-broker",
                broker,
                "spec.config must reference a v1 ConfigMap (the reconciler rejects others)",
            )
            continue
        # (A KafkaNamespaced Broker's ConfigMap in another namespace is the Kafka webhook's rule: admission stage.)
        cm_ns = config.get("namespace") or broker_ns
        cm = manifests.find(ctx.objects, "", "ConfigMap", cm_ns, config.get("name", ""))
        if cm is None:
            yield ctx.finding(
                "kafka-broker",
                broker,
                f"spec.config ConfigMap {cm_ns}/{config.get('name')} is not in the render",
            )
            continue
        yield from _broker_config_problems(ctx, cm)


def _positive_int(value: object) -> bool:
    return isinstance(value, str) and value.isdigit() and int(value) > 0


def _broker_config_problems(ctx: EnvContext, cm: Obj) -> Iterator[Finding]:
    data = cm.get("data") or {}
    for key in data:
        if key not in BROKER_CONFIG_KEYS and not key.startswith(BROKER_CONFIG_PREFIX):
            yield ctx.finding("kafka-broker", cm, f"{key!r} is not a key the Kafka Broker reads (typo?)")
    servers = data.get("bootstrap.servers", "")
    if not servers:
        yield ctx.finding("kafka-broker", cm, "bootstrap.servers is missing or empty")
    else:
        for server in servers.split(","):
            if not HOST_PORT.match(server.strip()):
                yield ctx.finding("kafka-broker", cm, f"bootstrap.servers entry {server!r} is not host:port")
    for key in ("default.topic.partitions", "default.topic.replication.factor"):
        if not _positive_int(data.get(key)):
            yield ctx.finding("kafka-broker", cm, f"{key} must be a positive integer, got {data.get(key)!r}")
    for key, value in data.items():
        if key.startswith(BROKER_CONFIG_PREFIX) and not key[len(BROKER_CONFIG_PREFIX) :]:
            yield ctx.finding("kafka-broker", cm, f"{key!r} names no topic config")
        if key.startswith(BROKER_CONFIG_PREFIX) and value in (None, ""):
            yield ctx.finding("kafka-broker", cm, f"{key} is empty")
    rf, min_isr = (
        data.get("default.topic.replication.factor"),
        data.get("default.topic.config.min.insync.replicas"),
    )
    if _positive_int(rf) and _positive_int(min_isr) and int(min_isr) > int(rf):
        yield ctx.finding(
            "kafka-broker",
            cm,
            f"min.insync.replicas {min_isr} exceeds the replication factor {rf}: every write would fail",
        )


@env_check("kafka-source")
def check_kafka_source(ctx: EnvContext) -> Iterator[Finding]:
    """A KafkaSource has a fixed consumer group and reads the same Kafka as the Broker it feeds."""
    for source in manifests.of_kind(ctx.objects, "sources.knative.dev", "KafkaSource"):
        spec = source.get("spec") or {}
        if not spec.get("consumerGroup"):
            yield ctx.finding(
                "kafka-source",
                source,
                "no spec.consumerGroup: the webhook picks a random one (immutable) and git drifts",
            )
        broker = sink_broker(ctx.objects, source)
        if broker is None or not dig(broker, "spec", "config"):
            continue
        data = (broker_configmap(ctx.objects, broker) or {}).get("data") or {}
        broker_servers = sorted(s.strip() for s in data.get("bootstrap.servers", "").split(",") if s.strip())
        source_servers = sorted(
            s.strip() for entry in spec.get("bootstrapServers") or [] for s in str(entry).split(",")
        )
        if broker_servers and source_servers != broker_servers:
            yield ctx.finding(
                "kafka-source",
                source,
                f"bootstrapServers {source_servers} differ from Broker ConfigMap bootstrap.servers {broker_servers}",
            )
        if data.get("auth.secret.ref.name") and not (
            dig(spec, "net", "sasl", "enable") or dig(spec, "net", "tls", "enable")
        ):
            yield ctx.finding(
                "kafka-source",
                source,
                "the Broker's Kafka needs auth (auth.secret.ref.name) but this source enables neither net.sasl nor net.tls",
            )


@env_check("kafka-source")
def check_consumer_groups_unique(ctx: EnvContext) -> Iterator[Finding]:
    """No two KafkaSources share a consumer group (they would split the partitions: each sees half the events).

    Two sources in one consumer group split the topics' partitions between them: each sees half the events."""
    seen: dict[str, Obj] = {}
    for source in manifests.of_kind(ctx.objects, "sources.knative.dev", "KafkaSource"):
        group = dig(source, "spec", "consumerGroup")
        if not group:
            continue
        if group in seen:
            yield ctx.finding(
                "kafka-source",
                source,
                f"consumerGroup {group!r} is also used by {manifests.ObjKey.of(seen[group])}: they would split the partitions",
            )
        seen[group] = source


def _seconds(delivery: object) -> float | None:
    timeout = iso_duration(dig(delivery, "timeout"))
    return timeout.total_seconds() if timeout is not None else None


@env_check("delivery")
def check_subscriber_timeout(ctx: EnvContext) -> Iterator[Finding]:
    """A delivery timeout is not shorter than the subscriber's timeoutSeconds (else retries duplicate running work).

    A dispatcher that gives up before the service answers retries work that is still running: duplicates."""
    for trigger in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Trigger"):
        broker = trigger_broker(ctx.objects, trigger)
        delivery = dig(trigger, "spec", "delivery") or dig(broker, "spec", "delivery")
        attempt = _seconds(delivery) or 600.0  # the Kafka dispatcher's default per-attempt timeout
        target = resolve_destination(ctx.objects, trigger, dig(trigger, "spec", "subscriber"), "spec.subscriber").target
        if target is None or target.get("kind") != "Service" or manifests.group_of(target) != "serving.knative.dev":
            continue
        served = (
            dig(target, "spec", "template", "spec", "timeoutSeconds") or 300
        )  # config-defaults revision-timeout-seconds
        if served >= attempt:
            yield ctx.finding(
                "delivery",
                trigger,
                f"delivery timeout {attempt:g}s is not longer than {manifests.ObjKey.of(target)} timeoutSeconds {served}: "
                "the dispatcher retries requests the service is still processing",
            )


@env_check("trigger-spec")
def check_delivery_order_uniform(ctx: EnvContext) -> Iterator[Finding]:
    """The Triggers of one Broker share one delivery order (ordered or unordered).

    The Triggers of one Broker share one delivery order: a Trigger added later without the overlay's
    annotation would silently get the default, unordered (eventing-kafka-broker's documented default)."""
    triggers = list(manifests.of_kind(ctx.objects, "eventing.knative.dev", "Trigger"))
    for broker in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Broker"):
        orders = {
            str(manifests.ObjKey.of(t)): str(manifests.annotations(t).get(DELIVERY_ORDER, "unordered")).lower()
            for t in triggers
            if trigger_broker(ctx.objects, t) is broker
        }
        if "ordered" not in orders.values():
            continue
        ordered = next(name for name, order in orders.items() if order == "ordered")
        for trigger in triggers:
            if orders.get(str(manifests.ObjKey.of(trigger))) == "unordered":
                yield ctx.finding(
                    "trigger-spec",
                    trigger,
                    f"delivery is unordered (no {DELIVERY_ORDER}) while {ordered} is ordered: patch every Trigger "
                    "at once (a `target: {kind: Trigger}` patch, as overlays/prod/trigger-order.yaml)",
                )
