"""The object -> contract mapping: each rendered field lands in its contract field (proto/contract.proto)."""

import copy
from datetime import timedelta

import pytest

from gitops.core.render import RenderResult
from gitops.e2e import contracts
from gitops.e2e.contracts import ContractError, LocalAddresses
from gitops.model.knative import iso_duration

ADDRESSES = LocalAddresses(
    "127.0.0.1:9092", "http://127.0.0.1:8081", {("notifications", "notifications"): "http://127.0.0.1:8082"}
)


def objects_of(render: RenderResult) -> list[dict]:
    return copy.deepcopy(render.objects)


def find(objects: list[dict], kind: str, name: str | None = None) -> dict:
    return next(o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name))


def ms(iso: str) -> str:
    parsed = iso_duration(iso)
    assert isinstance(parsed, timedelta)
    return str(int(parsed.total_seconds() * 1000))


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_trigger_field_is_the_rendered_one(renders: dict[str, RenderResult], env: str):
    objects = objects_of(renders[env])
    built = contracts.build(objects, ADDRESSES)
    broker = find(objects, "Broker")
    resource = built.broker_dispatcher["resources"][0]
    assert resource["ingress"]["path"] == f"/{broker['metadata']['namespace']}/{broker['metadata']['name']}"
    assert resource["topics"] == [f"knative-broker-{broker['metadata']['namespace']}-{broker['metadata']['name']}"]
    assert resource["bootstrapServers"] == ADDRESSES.bootstrap_servers
    triggers = sorted((o for o in objects if o["kind"] == "Trigger"), key=lambda t: t["metadata"]["name"])
    assert [e["reference"]["name"] for e in resource["egresses"]] == [t["metadata"]["name"] for t in triggers]
    delivery = broker["spec"]["delivery"]
    for trigger, egress in zip(triggers, resource["egresses"], strict=True):
        spec = trigger["spec"]
        assert egress["filter"]["attributes"] == spec["filter"]["attributes"]
        assert egress["destination"] == "http://127.0.0.1:8082" + spec["subscriber"]["uri"]
        order = trigger["metadata"]["annotations"][contracts.DELIVERY_ORDER_ANNOTATION]
        assert egress["deliveryOrder"] == order.upper()
        assert egress["consumerGroup"] == f"knative-trigger-notifications-{trigger['metadata']['name']}"
        config = egress["egressConfig"]  # no Trigger sets its own delivery: the Broker's applies
        assert config["retry"] == delivery["retry"]
        # protobuf JSON omits an enum's zero value: no backoffPolicy is Exponential.
        assert config.get("backoffPolicy", "Exponential") == delivery["backoffPolicy"].capitalize()
        assert config["backoffDelay"] == ms(delivery["backoffDelay"])
        assert config["timeout"] == ms(delivery["timeout"])
        dls = delivery["deadLetterSink"]
        if dls["ref"]["kind"] == "KafkaSink":
            assert config["deadLetter"] == f"http://127.0.0.1:8081/notifications/{dls['ref']['name']}"
        else:
            assert config["deadLetter"] == "http://127.0.0.1:8082" + dls["uri"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_kafka_source_fields_are_the_rendered_ones(renders: dict[str, RenderResult], env: str):
    objects = objects_of(renders[env])
    source = find(objects, "KafkaSource")
    resource = contracts.build(objects, ADDRESSES).source_dispatcher["resources"][0]
    egress = resource["egresses"][0]
    assert resource["topics"] == source["spec"]["topics"]
    assert egress["consumerGroup"] == source["spec"]["consumerGroup"]
    assert egress["deliveryOrder"] == source["spec"]["ordering"].upper()
    sink = source["spec"]["sink"]["ref"]
    assert egress["destination"] == f"http://127.0.0.1:8081/{sink['namespace']}/{sink['name']}"
    assert resource["reference"]["kind"] == "KafkaSource"


def test_a_trigger_delivery_wins_over_the_brokers_field_by_field(renders: dict[str, RenderResult]):
    objects = objects_of(renders["dev"])
    trigger = find(objects, "Trigger", "notifications")
    trigger["spec"]["delivery"] = {"retry": 7, "backoffPolicy": "linear", "backoffDelay": "PT2S"}
    egress = next(
        e
        for e in contracts.build(objects, ADDRESSES).broker_dispatcher["resources"][0]["egresses"]
        if e["reference"]["name"] == "notifications"
    )
    config = egress["egressConfig"]
    assert (config["retry"], config["backoffPolicy"], config["backoffDelay"]) == (7, "Linear", "2000")
    assert config["deadLetter"].startswith("http://127.0.0.1:")  # the Broker's sink, as the Trigger sets none
    assert config["timeout"] == ms(find(objects, "Broker")["spec"]["delivery"]["timeout"])  # the Broker's


def test_retry_without_a_backoff_delay_gets_the_control_planes_default():
    assert contracts.upstream_egress_config({"retry": 3}, None, 1000) == {"retry": 3, "backoffDelay": "1000"}
    assert contracts.upstream_egress_config({}, None, 1000) is None
    assert contracts.upstream_egress_config(None, {"retry": 1, "timeout": "PT1M"}, 1000) == {
        "retry": 1,
        "backoffDelay": "1000",
        "timeout": "60000",
    }


def test_a_kafka_sink_becomes_a_receiver_resource_and_the_dead_letter_url(renders: dict[str, RenderResult]):
    objects = [o for o in objects_of(renders["dev"]) if o["kind"] != "KafkaSink"]
    source = find(objects, "KafkaSource")
    source["spec"].pop("delivery", None)
    objects.append(
        {
            "apiVersion": "eventing.knative.dev/v1alpha1",
            "kind": "KafkaSink",
            "metadata": {"name": "dead-letters", "namespace": "notifications"},
            "spec": {"topic": "notifications-dead-letters", "bootstrapServers": ["kafka:9092"]},
        }
    )
    find(objects, "Broker")["spec"]["delivery"]["deadLetterSink"] = {
        "ref": {"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "KafkaSink", "name": "dead-letters"}
    }
    built = contracts.build(objects, ADDRESSES)
    sink = next(r for r in built.receiver["resources"] if r["reference"]["kind"] == "KafkaSink")
    assert sink["topics"] == ["notifications-dead-letters"]
    assert sink["ingress"] == {"path": "/notifications/dead-letters", "contentMode": "BINARY"}
    assert built.sinks == {("notifications", "dead-letters"): "notifications-dead-letters"}
    egress = built.broker_dispatcher["resources"][0]["egresses"][0]
    assert egress["egressConfig"]["deadLetter"] == "http://127.0.0.1:8081/notifications/dead-letters"
    assert not any(r["reference"]["kind"] == "KafkaSink" for r in built.broker_dispatcher["resources"])


def test_an_address_with_no_local_stand_in_is_one_clear_error(renders: dict[str, RenderResult]):
    objects = objects_of(renders["dev"])
    find(objects, "Trigger", "loggings")["spec"]["subscriber"] = {"uri": "http://10.0.0.1/events"}
    with pytest.raises(ContractError, match=r"Trigger notifications/loggings spec\.subscriber.*no local stand-in"):
        contracts.build(objects, ADDRESSES)


def test_an_unknown_delivery_order_is_refused(renders: dict[str, RenderResult]):
    objects = objects_of(renders["dev"])
    find(objects, "Trigger", "loggings")["metadata"]["annotations"][contracts.DELIVERY_ORDER_ANNOTATION] = "sorted"
    with pytest.raises(ContractError, match="delivery order 'sorted'"):
        contracts.build(objects, ADDRESSES)


def test_a_bad_duration_is_refused_by_upstreams_parser():
    with pytest.raises(contracts.ContractToolFailed, match="BackoffDelay"):
        contracts.upstream_egress_config({"retry": 1, "backoffDelay": "5s"}, None, 1000)


def test_a_kafka_source_without_delivery_gets_the_controllers_default(renders: dict[str, RenderResult]):
    objects = objects_of(renders["dev"])
    source = find(objects, "KafkaSource")
    source["spec"].pop("delivery", None)
    source["spec"].pop("ordering", None)
    egress = contracts.build(objects, ADDRESSES).source_dispatcher["resources"][0]["egresses"][0]
    assert egress["egressConfig"] == {"retry": 10, "backoffDelay": "300", "timeout": "600000"}
    assert egress["deliveryOrder"] == "ORDERED"


def test_knative_contract_pins_the_knative_modules_of_the_admission_stage():
    # `make bump` moves hack/knative-admission's Knative modules; this one must follow (same release).
    import re

    from gitops.core.paths import ADMISSION_MODULE_DIR, REPO_ROOT

    def knative(go_mod: str) -> dict[str, str]:
        return dict(re.findall(r"^\s*(knative\.dev/[\w.-]+) (v\S+)", go_mod, re.MULTILINE))

    admission = knative((REPO_ROOT / ADMISSION_MODULE_DIR / "go.mod").read_text())
    contract = knative((REPO_ROOT / "hack" / "knative-contract" / "go.mod").read_text())
    assert contract["knative.dev/eventing-kafka-broker"] == admission["knative.dev/eventing-kafka-broker"]
    assert {m: v for m, v in contract.items() if m in admission} == {
        m: admission[m] for m in contract if m in admission
    }
