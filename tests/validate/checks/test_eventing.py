"""Eventing checks: each one passes on the real tree and fails, naming the object, on the mistake it targets."""

import pytest

from gitops.core.render import RenderResult
from gitops.validate.checks import eventing
from tests.support import obj, run_check

NS = "notifications"
EV = "eventing.knative.dev"


def trigger(render: RenderResult, name: str = "notifications") -> dict:
    return obj(render, EV, "Trigger", NS, name)


def test_article_filter_without_hash_never_matches(broken):
    render = broken("prod")
    trigger(render)["spec"]["filter"]["attributes"]["source"] = (
        "/apis/v1/namespaces/notifications/kafkasources/kafka-sourcenotifications"
    )
    findings = run_check(eventing.check_trigger_filters_match, render)
    messages = [str(f) for f in findings]
    assert any(
        "Trigger notifications/notifications (base/eventing/triggers.yaml): filter matches no event" in m
        for m in messages
    )
    # ...and with the Trigger deaf, the notifications topic reaches no Trigger at all.
    assert any("KafkaSource notifications/kafka-source" in m and "topic 'notifications'" in m for m in messages)


def test_topic_without_trigger_is_reported(broken):
    render = broken("dev")
    render.objects.remove(trigger(render, "loggings"))
    findings = run_check(eventing.check_trigger_filters_match, render)
    assert [f.obj for f in findings] == ["KafkaSource notifications/kafka-source"]
    assert "topic 'loggings'" in findings[0].message and "no Trigger" in findings[0].message


def test_wrong_type_filter_is_reported(broken):
    render = broken("dev")
    trigger(render)["spec"]["filter"]["attributes"]["type"] = "dev.knative.kafka.record"
    assert any(
        f.obj == "Trigger notifications/notifications" for f in run_check(eventing.check_trigger_filters_match, render)
    )


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        ([{"prefix": {"source": "/apis/v1/namespaces/notifications/kafkasources/kafka-source#"}}], True),
        ([{"suffix": {"source": "#notifications"}}], True),
        ([{"exact": {"type": "com.example.other"}}], False),
        ([{"any": [{"exact": {"type": "x"}}, {"exact": {"type": "dev.knative.kafka.event"}}]}], True),
        ([{"not": {"exact": {"type": "dev.knative.kafka.event"}}}], False),
        (
            [{"all": [{"prefix": {"source": "/apis"}}, {"exact": {"subject": "partition:0#1"}}]}],
            True,
        ),  # per-record subject
        ([{"cesql": "type = 'anything'"}], True),  # not evaluated: assumed to match
    ],
)
def test_subscriptions_api_filters(broken, filters, matches):
    render = broken("dev")
    spec = trigger(render)["spec"]
    spec["filters"] = filters  # `filters` wins over `filter`
    findings = [f for f in run_check(eventing.check_trigger_filters_match, render) if f.obj.startswith("Trigger")]
    assert (findings == []) is matches


def test_empty_attribute_value_matches_anything(broken):
    render = broken("dev")
    trigger(render)["spec"]["filter"]["attributes"] = {
        "type": "",
        "source": "/apis/v1/namespaces/notifications/kafkasources/kafka-source#notifications",
    }
    assert run_check(eventing.check_trigger_filters_match, render) == []


# Field typos, broker/brokerRef and filter attribute names: the eventing webhook's rules (tests/validate/test_admission.py).
@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s.update(broker="default"), "spec.broker 'default' is not a Broker"),
        (lambda s: s.update(brokerRef={"name": "missing"}, broker=None), "spec.broker 'missing' is not a Broker"),
    ],
)
def test_trigger_spec_typos(broken, mutate, expected):
    render = broken("prod")
    mutate(trigger(render)["spec"])
    findings = run_check(eventing.check_trigger_spec, render)
    assert any(expected in f.message and f.obj == "Trigger notifications/notifications" for f in findings), findings


def test_delivery_order_annotation_values(broken):
    render = broken("prod")
    annotations = trigger(render)["metadata"]["annotations"]
    annotations["kafka.eventing.knative.dev/delivery.order"] = "sorted"
    annotations["kafka.eventing.knative.dev/delivery.ordering"] = "ordered"
    messages = [f.message for f in run_check(eventing.check_trigger_spec, render)]
    assert any("must be ordered or unordered, got 'sorted'" in m for m in messages)
    assert any("unknown Kafka annotation 'kafka.eventing.knative.dev/delivery.ordering'" in m for m in messages)


def test_subscriber_path_not_served_by_app(broken):
    render = broken("dev")
    trigger(render)["spec"]["subscriber"]["uri"] = "/events/notification"
    findings = run_check(eventing.check_destinations, render)
    assert len(findings) == 1
    assert "POST /events/notification is not served by apps/notifications (404" in findings[0].message
    assert findings[0].origin == "base/eventing/triggers.yaml"


def test_dead_letter_path_not_served_by_app(broken):
    render = broken("dev")
    obj(render, EV, "Broker", NS, "events")["spec"]["delivery"]["deadLetterSink"] = {
        "ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "notifications", "namespace": NS},
        "uri": "/dlq",
    }
    assert any(
        "spec.delivery.deadLetterSink: POST /dlq" in f.message for f in run_check(eventing.check_destinations, render)
    )


@pytest.mark.parametrize(
    ("subscriber", "expected"),
    [
        (
            {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "notification"}},
            "not in the render",
        ),
        ({"ref": {"apiVersion": "v1", "kind": "Service", "name": "notifications"}}, "not in the render"),
        (
            {
                "ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "notifications"},
                "uri": "http://x/events",
            },
            "must be a relative path when a ref is given",
        ),
        ({"uri": "/events/notifications"}, "must be absolute"),
        ({}, "neither ref nor uri"),
    ],
)
def test_subscriber_must_resolve(broken, subscriber, expected):
    render = broken("prod")
    trigger(render)["spec"]["subscriber"] = subscriber
    assert any(expected in f.message for f in run_check(eventing.check_destinations, render))


def test_kafka_source_sink_must_exist(broken):
    render = broken("prod")
    obj(render, "sources.knative.dev", "KafkaSource", NS, "kafka-source")["spec"]["sink"]["ref"]["name"] = "default"
    assert any(
        "spec.sink.ref points at Broker notifications/default" in f.message
        for f in run_check(eventing.check_destinations, render)
    )


@pytest.mark.parametrize(
    ("delivery", "expected"),
    [
        # The Kafka Broker's defaulting webhook drops unknown fields silently; values are the eventing webhook's
        # rules (tests/validate/test_admission.py).
        ({"retries": 3}, "delivery.retries is not a DeliverySpec field"),
        ({"deadLetterSink": "http://x"}, "deadLetterSink must be a Destination"),
    ],
)
def test_delivery_values(broken, delivery, expected):
    render = broken("prod")
    obj(render, EV, "Broker", NS, "events")["spec"]["delivery"].update(delivery)
    assert any(expected in f.message for f in run_check(eventing.check_delivery, render))


def test_trigger_delivery_replaces_broker_delivery_whole(broken):
    render = broken("prod")
    trigger(render)["spec"]["delivery"] = {"timeout": "PT10S"}
    findings = run_check(eventing.check_delivery, render)
    assert [f.obj for f in findings] == ["Trigger notifications/notifications"]
    assert "no deadLetterSink" in findings[0].message


def broker_config(render: RenderResult) -> dict:
    return obj(render, "", "ConfigMap", NS, "kafka-broker-config")["data"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d.update({"default.topic.partition": "3"}),
            "'default.topic.partition' is not a key the Kafka Broker reads",
        ),
        (lambda d: d.update({"default.topic.partitions": "0"}), "default.topic.partitions must be a positive integer"),
        (
            lambda d: d.pop("default.topic.replication.factor"),
            "default.topic.replication.factor must be a positive integer",
        ),
        (lambda d: d.update({"bootstrap.servers": "kafka"}), "'kafka' is not host:port"),
        (lambda d: d.pop("bootstrap.servers"), "bootstrap.servers is missing"),
        (lambda d: d.update({"default.topic.config.min.insync.replicas": "4"}), "exceeds the replication factor 3"),
    ],
)
def test_broker_configmap_keys(broken, mutate, expected):
    render = broken("prod")
    mutate(broker_config(render))
    findings = run_check(eventing.check_kafka_broker, render)
    assert any(expected in f.message and f.obj == "ConfigMap notifications/kafka-broker-config" for f in findings), (
        findings
    )


def test_broker_class_and_config_reference(broken):
    render = broken("dev")
    broker = obj(render, EV, "Broker", NS, "events")
    del broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"]
    assert any("MTChannelBasedBroker" in f.message for f in run_check(eventing.check_kafka_broker, render))
    broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] = "Kafka"
    broker["spec"]["config"]["name"] = "kafka-config"
    assert any("kafka-config is not in the render" in f.message for f in run_check(eventing.check_kafka_broker, render))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s.pop("consumerGroup"), "no spec.consumerGroup"),
        (lambda s: s.update(bootstrapServers=["other:9092"]), "differ from Broker ConfigMap bootstrap.servers"),
        (lambda s: s.pop("net"), "enables neither net.sasl nor net.tls"),
    ],
)
def test_kafka_source_spec(broken, mutate, expected):
    render = broken("prod")
    mutate(obj(render, "sources.knative.dev", "KafkaSource", NS, "kafka-source")["spec"])
    findings = run_check(eventing.check_kafka_source, render)
    assert any(expected in f.message and f.obj == "KafkaSource notifications/kafka-source" for f in findings), findings


def test_shared_consumer_group_is_reported(broken):
    render = broken("dev")
    import copy

    twin = copy.deepcopy(obj(render, "sources.knative.dev", "KafkaSource", NS, "kafka-source"))
    twin["metadata"]["name"] = "kafka-source-2"
    render.objects.append(twin)
    findings = run_check(eventing.check_consumer_groups_unique, render)
    assert [f.obj for f in findings] == ["KafkaSource notifications/kafka-source-2"]
    assert "also used by KafkaSource notifications/kafka-source" in findings[0].message


def test_service_timeout_must_be_shorter_than_delivery_timeout(broken):
    render = broken("prod")
    obj(render, "serving.knative.dev", "Service", NS, "notifications")["spec"]["template"]["spec"]["timeoutSeconds"] = (
        65  # the Broker's delivery timeout (base/eventing/broker.yaml PT65S)
    )
    findings = run_check(eventing.check_subscriber_timeout, render)
    assert sorted(f.obj for f in findings) == ["Trigger notifications/loggings", "Trigger notifications/notifications"]
    assert "delivery timeout 65s is not longer than" in findings[0].message


def test_a_trigger_missing_the_delivery_order_of_the_others_fails(broken):
    render = broken("prod")
    added = obj(render, "eventing.knative.dev", "Trigger", "notifications", "loggings")
    audits = {**added, "metadata": {**added["metadata"], "name": "audits", "annotations": {}}}
    render.objects.append(audits)
    found = [str(f) for f in run_check(eventing.check_delivery_order_uniform, render)]
    assert len(found) == 1
    assert found[0].startswith("[prod] Trigger notifications/audits")
    assert "delivery is unordered" in found[0] and "Trigger notifications/" in found[0]
    assert run_check(eventing.check_delivery_order_uniform, broken("prod")) == []


def test_trigger_path_is_judged_against_the_code_of_the_image_the_environment_runs(tree_copy):
    """Issue 28's add-a-topic trap: the tree serves /events/loggings, but dev's image was built from code that did
    not (its record, written by the image workflow's pin, says so): every event would get a 404 in dev. prod's image
    has no record (built before records), so prod is judged against the tree, as before."""
    import json

    from gitops.core.render import render_env
    from gitops.delivery import pin_image
    from gitops.model.app_code import code_of_tree
    from tests.delivery.image_support import NEW_DIGEST, pin_dev

    built = code_of_tree("notifications")
    built["routes"] = [r for r in built["routes"] if r[1] != "/events/loggings"]
    ref = pin_dev(tree_copy)
    assert pin_image.main(["--env", "dev", "--image", ref, "--code", json.dumps(built)], root=tree_copy) == 0
    record = f"images/notifications/{NEW_DIGEST.replace(':', '-')}.json"
    assert (tree_copy / record).is_file()
    findings = run_check(eventing.check_destinations, render_env("dev", tree_copy), tree_copy)
    assert [(f.env, f.obj, f.origin) for f in findings] == [
        ("dev", "Trigger notifications/loggings", "base/eventing/triggers.yaml")
    ], findings
    assert findings[0].message.startswith(
        f"spec.subscriber: POST /events/loggings is not served by image {ref} ({record}) (404; it serves POST on "
    )
    assert findings[0].message.endswith("build and promote an image that serves it first (docs/forking.md)")
    assert run_check(eventing.check_destinations, render_env("prod", tree_copy), tree_copy) == []
