"""Every hop sized for the largest record: broken copies of the renders, each finding naming env, object and file
and the hop before it."""

import pytest
import yaml

from gitops.core import manifests
from gitops.core.paths import REPO_ROOT, upstream_source_dir
from gitops.model import record_size
from gitops.validate.checks import record_size as check
from gitops.validate.findings import EnvContext
from tests.support import obj, run_check
from tests.validate.checks.ksvc_support import NS

BROKER_PRODUCER = "config-kafka-broker-producer.properties"
SINK_PRODUCER = "config-kafka-sink-producer.properties"


def messages(render) -> list[str]:
    return [str(f) for f in run_check(check.check_record_size_hops, render)]


def stand_in(render, name: str) -> manifests.Obj:
    found = manifests.find(render.stand_ins, "", "ConfigMap", "knative-eventing", name)
    assert found is not None, f"{name} is not among the {render.env} render's stand-ins"
    return found


def set_request_size(cm: manifests.Obj, key: str, size: int) -> None:
    lines = cm["data"][key].splitlines()
    cm["data"][key] = "\n".join(
        f"max.request.size={size}" if line.startswith("max.request.size=") else line for line in lines
    )


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_real_renders_pass(renders, env):
    assert messages(renders[env]) == []


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_hop_is_sized_from_the_topic_table(renders, env):
    """The figures the comments state: 1 MiB records, 16 KiB of wrapping, 4 KiB of error extensions."""
    render = renders[env]
    largest = max(size for _, size, _ in check.source_topics(_ctx(render)))
    assert largest == 1048576
    broker = record_size.producer_limit(stand_in(render, "config-kafka-broker-data-plane")["data"][BROKER_PRODUCER])
    sink = record_size.producer_limit(stand_in(render, "config-kafka-sink-data-plane")["data"][SINK_PRODUCER])
    topic = int(obj(render, "", "ConfigMap", NS, "kafka-broker-config")["data"][record_size.TOPIC_MAX_MESSAGE_BYTES])
    assert broker == topic == record_size.required_receiver_bytes(largest) == 1064960
    assert sink == record_size.required_dead_letter_bytes(topic) == 1069056


def _ctx(render):
    return EnvContext(REPO_ROOT, render)


@pytest.mark.parametrize(("component", "key"), [("broker", BROKER_PRODUCER), ("sink", SINK_PRODUCER)])
def test_restated_properties_equal_upstreams_but_for_max_request_size(renders, component, key):
    """The patch restates upstream's whole properties file (a ConfigMap key is one string): nothing else may drift."""
    path = upstream_source_dir() / "data-plane" / "config" / component / f"100-config-kafka-{component}-data-plane.yaml"
    upstream = record_size.java_properties(yaml.safe_load(path.read_text())["data"][key])
    ours = record_size.java_properties(stand_in(renders["dev"], f"config-kafka-{component}-data-plane")["data"][key])
    assert {k: v for k, v in ours.items() if k != "max.request.size"} == {
        k: v for k, v in upstream.items() if k != "max.request.size"
    }
    assert int(ours["max.request.size"]) > int(upstream["max.request.size"])


def test_receiver_producer_below_the_largest_record_fails(broken):
    render = broken("dev")
    set_request_size(stand_in(render, "config-kafka-broker-data-plane"), BROKER_PRODUCER, 1048576)
    found = messages(render)
    assert any(
        m.startswith(
            "[dev] ConfigMap knative-eventing/config-kafka-broker-data-plane (base/platform/config/kafka-broker-data-plane.yaml): "
        )
        and "max.request.size=1048576 accepts less than the hop before it: source topic" in m
        and "apps/notifications/src/notifications/topics.py" in m
        and "at least 1064960" in m
        and m.endswith("<record-size>")
        for m in found
    ), found


def test_broker_topic_below_the_receiver_producer_fails(broken):
    render = broken("prod")
    obj(render, "", "ConfigMap", NS, "kafka-broker-config")["data"][record_size.TOPIC_MAX_MESSAGE_BYTES] = "1048588"
    found = messages(render)
    assert any(
        m.startswith(f"[prod] ConfigMap {NS}/kafka-broker-config (base/eventing/kafka-broker-config.yaml): ")
        and "= 1048588: the Broker's topic accepts less than the hop before it: the Broker receiver's producer "
        "sends up to 1064960 bytes (base/platform/config/kafka-broker-data-plane.yaml)"
        in m
        for m in found
    ), found


def test_broker_topic_without_a_limit_fails(broken):
    render = broken("dev")
    del obj(render, "", "ConfigMap", NS, "kafka-broker-config")["data"][record_size.TOPIC_MAX_MESSAGE_BYTES]
    found = messages(render)
    assert any("[dev] ConfigMap notifications/kafka-broker-config" in m and "is not set" in m for m in found), found


def test_dead_letter_producer_without_room_for_the_error_extensions_fails(broken):
    """Sized like the Broker topic, with no room for knativeerrordata: a full-size event that fails delivery would
    be refused at the dead-letter sink and committed past."""
    render = broken("dev")
    set_request_size(stand_in(render, "config-kafka-sink-data-plane"), SINK_PRODUCER, 1064960)
    found = messages(render)
    assert any(
        m.startswith(
            "[dev] ConfigMap knative-eventing/config-kafka-sink-data-plane (base/platform/config/kafka-sink-data-plane.yaml): "
        )
        and "the Broker's topic holds events up to 1064960 bytes, 1069056 with the error extensions" in m
        for m in found
    ), found


def test_subscriber_body_limit_below_a_topics_records_fails(broken):
    render = broken("dev")
    ksvc = obj(render, "serving.knative.dev", "Service", NS, "notifications")
    ksvc["spec"]["template"]["spec"]["containers"][0].setdefault("env", []).append(
        {"name": "MAX_BODY_BYTES", "value": "262144"}
    )
    found = messages(render)
    assert any(
        m.startswith(f"[dev] Service.serving.knative.dev {NS}/notifications (apps/notifications/deploy/service.yaml): ")
        and "MAX_BODY_BYTES=262144, less than the hop before it: source topic" in m
        and "carries records up to 1048576 bytes" in m
        for m in found
    ), found


def test_a_producer_properties_file_without_a_number_is_a_finding(broken):
    """Unset means Kafka's default (1048576, below the largest record); a value that is no number cannot be judged."""
    assert record_size.producer_limit("acks=all\n") == record_size.KAFKA_DEFAULT_MAX_REQUEST_SIZE
    assert record_size.producer_limit("max.request.size = 2048\n# max.request.size=1\n") == 2048
    render = broken("dev")
    cm = stand_in(render, "config-kafka-broker-data-plane")
    cm["data"][BROKER_PRODUCER] = cm["data"][BROKER_PRODUCER].replace("max.request.size=1064960", "max.request.size=1M")
    found = messages(render)
    assert any("config-kafka-broker-data-plane" in m and "max.request.size=None accepts less" in m for m in found), (
        found
    )
