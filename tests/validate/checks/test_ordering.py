"""delivery-order: an ordered Trigger's hops before it (the KafkaSource, the receiver's partitioning)."""

import pytest

from gitops.validate.checks import ordering
from tests.support import run_check
from tests.validate.checks.promise_support import data_plane, kafka_source, set_property

PRODUCER = "config-kafka-broker-producer.properties"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_shipped_renders_keep_order(renders, env: str) -> None:
    for check in (ordering.check_sources_feed_ordered_triggers_in_order, ordering.check_receiver_keeps_keys):
        assert run_check(check, renders[env]) == []


def test_an_unordered_source_under_ordered_triggers_is_flagged(broken) -> None:
    render = broken("prod")
    kafka_source(render)["spec"]["ordering"] = "unordered"
    (finding,) = run_check(ordering.check_sources_feed_ordered_triggers_in_order, render)
    assert finding.env == "prod" and finding.obj == "KafkaSource notifications/kafka-source"
    assert finding.origin == "overlays/prod/delivery.yaml"  # the file that set ordering
    assert "ordering unordered" in finding.message and "overlays/prod/trigger-order.yaml" in finding.message


def test_an_unset_source_ordering_is_upstreams_ordered(broken) -> None:
    render = broken("prod")
    del kafka_source(render)["spec"]["ordering"]
    assert run_check(ordering.check_sources_feed_ordered_triggers_in_order, render) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("partitioner.ignore.keys", "true"),
        ("partitioner.class", "org.apache.kafka.clients.producer.RoundRobinPartitioner"),
    ],
)
def test_a_keyless_receiver_partitioner_is_flagged_where_triggers_are_ordered(broken, name: str, value: str) -> None:
    render = broken("prod")
    set_property(data_plane(render, "broker"), PRODUCER, name, value)
    (finding,) = run_check(ordering.check_receiver_keeps_keys, render)
    assert finding.obj == "ConfigMap knative-eventing/config-kafka-broker-data-plane"
    assert f"{name}={value}" in finding.message and "overlays/prod/trigger-order.yaml" in finding.message
    # dev delivers unordered: no order to keep.
    dev = broken("dev")
    set_property(data_plane(dev, "broker"), PRODUCER, name, value)
    assert run_check(ordering.check_receiver_keeps_keys, dev) == []
