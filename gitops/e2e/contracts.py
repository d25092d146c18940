"""The data plane's contracts (proto/contract.proto, as protobuf JSON) written from the render of an environment.

In a cluster the control plane reconciles Brokers, Triggers, KafkaSinks and KafkaSources into contract ConfigMaps
that the data plane watches. Here the same mapping is done from the rendered objects, following the 1.23 control
plane (eventing-kafka-broker v0.50.1, control-plane/pkg):
- reconciler/trigger/trigger.go `reconcileTriggerEgress`: destination, consumer group, filter attributes, the
  Trigger's delivery merged over the Broker's (core/config `MergeEgressConfig`), the
  `kafka.eventing.knative.dev/delivery.order` annotation;
- core/config/utils.go `EgressConfigFromDelivery`: retry, backoffPolicy (default exponential), backoffDelay in ms
  (default `BROKER_DEFAULT_BACKOFF_DELAY_MS` = 1000, or 200 for a KafkaSource's Consumer), timeout in ms, the
  dead-letter sink's URL;
- reconciler/source/source.go and consumer/consumer.go: a KafkaSource's topics, consumer group, ordering (default
  ordered), delivery (default retry 10, exponential PT0.3S, timeout PT600S) and sink.
Retry, backoff and timeout are computed by those upstream functions themselves (hack/knative-contract, built by
`make setup`); the rest is ours, where upstream's code needs a cluster (address resolution, consumer-group
annotations) or is unexported (the delivery-order annotation, source.go's defaults). Everything but addresses comes
from the render; addresses (bootstrap servers, in-cluster URLs) become the local processes' (`LocalAddresses`).
tests/e2e/test_contracts.py pins each rendered field to its contract field.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

from gitops.core.errors import UserError
from gitops.core.manifests import Obj
from gitops.core.tools import tool

BROKER_CLASS_ANNOTATION = "eventing.knative.dev/broker.class"
DELIVERY_ORDER_ANNOTATION = "kafka.eventing.knative.dev/delivery.order"
# control-plane/config/.../500-controller.yaml BROKER_DEFAULT_BACKOFF_DELAY_MS; consumer.go passes 200 for Consumers.
BROKER_DEFAULT_BACKOFF_DELAY_MS = 1000
CONSUMER_DEFAULT_BACKOFF_DELAY_MS = 200
# config-kafka-features `triggers.consumergroup.template` default (control-plane/config, 200-config-kafka-features).
TRIGGER_GROUP_TEMPLATE = "knative-trigger-{namespace}-{name}"
# The Broker's topic: `kafka.eventing.knative.dev/external.topic` else the default template
# (config-kafka-features `brokers.topic.template`).
EXTERNAL_TOPIC_ANNOTATION = "kafka.eventing.knative.dev/external.topic"
BROKER_TOPIC_TEMPLATE = "knative-broker-{namespace}-{name}"


class ContractError(UserError):
    """The render holds something the local data plane cannot be given (an address with no local stand-in)."""


@dataclass(frozen=True)
class LocalAddresses:
    """Where the local processes listen; every in-cluster address in the render is mapped to one of these."""

    bootstrap_servers: str
    receiver_url: str  # the receiver's ingress, serving every Broker and KafkaSink path
    services: dict[tuple[str, str], str] = field(default_factory=dict)  # (namespace, Knative Service) -> base URL
    # The KafkaSink receiver's, when it runs as its own process as in a cluster (kafka-sink-receiver); else the
    # receiver serves the KafkaSinks too.
    sink_receiver_url: str = ""


@dataclass(frozen=True)
class Contracts:
    """The three contract files: the receiver's (Broker and KafkaSink ingresses), the Broker dispatcher's
    (Triggers), the KafkaSource dispatcher's."""

    receiver: dict[str, Any]
    broker_dispatcher: dict[str, Any]
    source_dispatcher: dict[str, Any]
    brokers: dict[tuple[str, str], str]  # (namespace, name) -> topic
    sinks: dict[tuple[str, str], str]  # (namespace, name) -> topic


def _ns(obj: Obj) -> str:
    return obj["metadata"].get("namespace", "default")


def _name(obj: Obj) -> str:
    return obj["metadata"]["name"]


def _uid(obj: Obj) -> str:
    # Stable across runs, unique per object (the cluster would give a UUID).
    return f"{obj['kind'].lower()}-{_ns(obj)}-{_name(obj)}"


def reference(obj: Obj) -> dict[str, str]:
    group_version = obj["apiVersion"]
    return {
        "uuid": _uid(obj),
        "namespace": _ns(obj),
        "name": _name(obj),
        "kind": obj["kind"],
        "groupVersion": group_version,
    }


def resolve(destination: dict[str, Any], parent: Obj, addresses: LocalAddresses, what: str) -> str:
    """A Destination (ref and/or uri) as the local URL standing in for its in-cluster address."""
    ref = destination.get("ref")
    uri = destination.get("uri", "")
    where = f"{parent['kind']} {_ns(parent)}/{_name(parent)} {what}"
    if ref is None:
        if uri.startswith(("http://127.", "https://127.")):
            return uri
        raise ContractError(
            f"{where}: the URI {uri!r} has no local stand-in", fix="use a ref to an object in the render"
        )
    namespace = ref.get("namespace") or _ns(parent)
    kind, name = ref["kind"], ref["name"]
    if kind == "Service" and ref.get("apiVersion", "").startswith("serving.knative.dev/"):
        base = addresses.services.get((namespace, name))
        if base is None:
            raise ContractError(f"{where}: no local process serves Knative Service {namespace}/{name}")
    elif kind == "KafkaSink":
        base = f"{addresses.sink_receiver_url or addresses.receiver_url}/{namespace}/{name}"
    elif kind == "Broker":
        base = f"{addresses.receiver_url}/{namespace}/{name}"
    else:
        raise ContractError(f"{where}: a {kind} destination has no local stand-in")
    if uri and not uri.startswith("/"):
        raise ContractError(f"{where}: a ref with an absolute URI {uri!r}")
    return base + uri


class ContractToolFailed(UserError):
    """bin/knative-contract refused its input or is missing (`make setup` builds it)."""


def upstream_egress_config(
    delivery: dict[str, Any] | None, parent: dict[str, Any] | None, default_backoff_ms: int
) -> dict[str, Any] | None:
    """The control plane's own mapping (hack/knative-contract: core/config `EgressConfigFromDelivery` of the
    object's delivery and of its parent's, merged by `MergeEgressConfig`), without the dead-letter sink: retry,
    backoffPolicy (omitted when exponential, protobuf JSON's zero value), backoffDelay and timeout in ms."""
    request = {"egresses": [{"delivery": delivery, "parent": parent, "defaultBackoffDelayMs": default_backoff_ms}]}
    proc = subprocess.run(
        [tool("knative-contract")], input=json.dumps(request), capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise ContractToolFailed(f"bin/knative-contract: {proc.stderr.strip() or proc.returncode}")
    return json.loads(proc.stdout)["egressConfigs"][0]


def egress_config(
    obj: Obj, parent: Obj | None, addresses: LocalAddresses, default_backoff_ms: int, delivery: dict[str, Any] | None
) -> dict[str, Any] | None:
    """An egress's config: upstream's mapping, plus the dead-letter sink's local URL (the object's own sink wins
    over its parent's, as MergeEgressConfig keeps the first non-empty one)."""
    parent_delivery = parent["spec"].get("delivery") if parent is not None else None
    config = upstream_egress_config(delivery, parent_delivery, default_backoff_ms)
    for holder, spec in ((obj, delivery), (parent, parent_delivery)):
        if holder is not None and spec and "deadLetterSink" in spec:
            config = dict(config or {})
            config["deadLetter"] = resolve(spec["deadLetterSink"], holder, addresses, "spec.delivery.deadLetterSink")
            break
    return config


def delivery_order(value: str | None, where: str) -> str:
    if value is None or value == "unordered":
        return "UNORDERED"
    if value == "ordered":
        return "ORDERED"
    raise ContractError(f"{where}: delivery order {value!r} is neither ordered nor unordered")


def _kafka_brokers(objects: list[Obj]) -> list[Obj]:
    return [
        o
        for o in objects
        if o["kind"] == "Broker"
        and o["apiVersion"].startswith("eventing.knative.dev/")
        and o["metadata"].get("annotations", {}).get(BROKER_CLASS_ANNOTATION) == "Kafka"
    ]


def broker_topic(broker: Obj) -> str:
    external = broker["metadata"].get("annotations", {}).get(EXTERNAL_TOPIC_ANNOTATION)
    return external or BROKER_TOPIC_TEMPLATE.format(namespace=_ns(broker), name=_name(broker))


def trigger_egress(trigger: Obj, broker: Obj, addresses: LocalAddresses) -> dict[str, Any]:
    spec = trigger["spec"]
    egress: dict[str, Any] = {
        "consumerGroup": TRIGGER_GROUP_TEMPLATE.format(namespace=_ns(trigger), name=_name(trigger)),
        "destination": resolve(spec["subscriber"], trigger, addresses, "spec.subscriber"),
        "uid": _uid(trigger),
        # With kind and groupVersion, as the control plane writes it (reconciler/consumer/consumer.go
        # reconcileUserFacingResourceRef, v0.50.1): the data plane names its metric labels after the kind
        # (Metrics.Tags.resourceTags: kn_trigger_name), so without it they read kn__name.
        "reference": reference(trigger),
        "replyToOriginalTopic": {},
    }
    attributes = (spec.get("filter") or {}).get("attributes")
    if attributes:
        egress["filter"] = {"attributes": dict(attributes)}
    if spec.get("filters"):
        raise ContractError(f"Trigger {_ns(trigger)}/{_name(trigger)}: spec.filters (the new dialects) is not mapped")
    config = egress_config(trigger, broker, addresses, BROKER_DEFAULT_BACKOFF_DELAY_MS, spec.get("delivery"))
    if config:
        egress["egressConfig"] = config
    order = trigger["metadata"].get("annotations", {}).get(DELIVERY_ORDER_ANNOTATION)
    egress["deliveryOrder"] = delivery_order(order, f"Trigger {_ns(trigger)}/{_name(trigger)}")
    return egress


# reconciler/source/source.go `reconcileConsumerGroup`: a KafkaSource without spec.delivery gets this delivery, and
# one without spec.ordering is ordered (DefaultDeliveryOrder).
SOURCE_DEFAULT_DELIVERY = {"retry": 10, "backoffPolicy": "exponential", "backoffDelay": "PT0.3S", "timeout": "PT600S"}
SOURCE_DEFAULT_ORDERING = "ordered"


def source_egress(source: Obj, addresses: LocalAddresses) -> dict[str, Any]:
    spec = source["spec"]
    where = f"KafkaSource {_ns(source)}/{_name(source)}"
    egress: dict[str, Any] = {
        "consumerGroup": spec["consumerGroup"],
        "destination": resolve(spec["sink"], source, addresses, "spec.sink"),
        "uid": _uid(source),
        "discardReply": {},
        "deliveryOrder": delivery_order(spec.get("ordering", SOURCE_DEFAULT_ORDERING), where),
        "reference": reference(source),  # kind included, as for a Trigger (consumer.go)
    }
    delivery = spec.get("delivery") or SOURCE_DEFAULT_DELIVERY
    config = egress_config(source, None, addresses, CONSUMER_DEFAULT_BACKOFF_DELAY_MS, delivery)
    egress["egressConfig"] = config or {}
    return egress


def build(objects: list[Obj], addresses: LocalAddresses, generation: int = 1) -> Contracts:
    """The receiver's, the Broker dispatcher's and the KafkaSource dispatcher's contracts for one render."""
    brokers = _kafka_brokers(objects)
    if not brokers:
        raise ContractError("the render has no Kafka-class Broker", fix="render an environment of this repository")
    absent = {"absentAuth": {}}
    broker_resources, topics = [], {}
    for broker in brokers:
        topic = broker_topic(broker)
        topics[(_ns(broker), _name(broker))] = topic
        triggers = [
            t
            for t in objects
            if t["kind"] == "Trigger" and _ns(t) == _ns(broker) and t["spec"].get("broker") == _name(broker)
        ]
        resource: dict[str, Any] = {
            "uid": _uid(broker),
            "topics": [topic],
            "bootstrapServers": addresses.bootstrap_servers,
            "ingress": {"path": f"/{_ns(broker)}/{_name(broker)}"},
            "egresses": [trigger_egress(t, broker, addresses) for t in sorted(triggers, key=_name)],
            "reference": reference(broker),
            **absent,
        }
        config = egress_config(broker, None, addresses, BROKER_DEFAULT_BACKOFF_DELAY_MS, broker["spec"].get("delivery"))
        if config:
            resource["egressConfig"] = config
        broker_resources.append(resource)
    sink_resources, sink_topics = [], {}
    for sink in (o for o in objects if o["kind"] == "KafkaSink"):
        spec = sink["spec"]
        sink_topics[(_ns(sink), _name(sink))] = spec["topic"]
        sink_resources.append(
            {
                "uid": _uid(sink),
                "topics": [spec["topic"]],
                "bootstrapServers": addresses.bootstrap_servers,
                "ingress": {
                    "path": f"/{_ns(sink)}/{_name(sink)}",
                    "contentMode": "STRUCTURED" if spec.get("contentMode") == "structured" else "BINARY",
                },
                "reference": reference(sink),
                **absent,
            }
        )
    source_resources = [
        {
            "uid": _uid(source),
            "topics": list(source["spec"]["topics"]),
            "bootstrapServers": addresses.bootstrap_servers,
            "egresses": [source_egress(source, addresses)],
            "reference": reference(source),
            **absent,
        }
        for source in objects
        if source["kind"] == "KafkaSource"
    ]
    gen = str(generation)
    return Contracts(
        receiver={"generation": gen, "resources": broker_resources + sink_resources},
        broker_dispatcher={"generation": gen, "resources": broker_resources},
        source_dispatcher={"generation": gen, "resources": source_resources},
        brokers=topics,
        sinks=sink_topics,
    )
