"""Dead letters are kept: broken copies of the renders, each finding naming env, object and file."""

import pytest

from gitops.model import eventing as model
from gitops.validate.checks import dead_letters
from tests.support import obj, run_check
from tests.validate.checks.ksvc_support import NS

EV = "eventing.knative.dev"
KSVC_DLS = {
    "ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "notifications", "namespace": NS}
}


def sink(render):
    return obj(render, EV, "KafkaSink", NS, "dead-letters")


def messages(check, render) -> list[str]:
    return [str(f) for f in run_check(check, render)]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_real_renders_pass(renders, env):
    for check in (
        dead_letters.check_dead_letters_are_durable,
        dead_letters.check_dead_letter_topics,
        dead_letters.check_dead_letter_senders_admitted,
    ):
        assert messages(check, renders[env]) == []


def test_every_sender_dead_letters_into_the_kafka_sink(renders):
    """The rendered wiring the e2e and the runbook rely on: both Triggers via the Broker, the source directly."""
    for env in ("dev", "prod"):
        render = renders[env]
        routes = model.dead_letter_routes(render.objects)
        assert sorted((r.sender["kind"], r.sender["metadata"]["name"], r.declared_on["kind"]) for r in routes) == [
            ("KafkaSource", "kafka-source", "KafkaSource"),
            ("Trigger", "loggings", "Broker"),
            ("Trigger", "notifications", "Broker"),
        ]
        assert {model.dead_letter_target(render.objects, r)["metadata"]["name"] for r in routes} == {"dead-letters"}


def test_broker_topic_follows_upstream_template(renders):
    render = renders["dev"]
    broker = obj(render, EV, "Broker", NS, "events")
    assert model.broker_topic(render.objects, broker) == "knative-broker-notifications-events"


def test_production_dead_letter_sink_that_only_logs_fails(broken):
    render = broken("prod")
    obj(render, EV, "Broker", NS, "events")["spec"]["delivery"]["deadLetterSink"] = KSVC_DLS
    found = messages(dead_letters.check_dead_letters_are_durable, render)
    for trigger in ("notifications", "loggings"):
        assert any(
            m.startswith("[prod] Broker notifications/events (base/eventing/broker.yaml): ")
            and f"deadLetterSink of Trigger {NS}/{trigger} (inherited from Broker {NS}/events)" in m
            and "not a KafkaSink" in m
            and m.endswith("<dead-letters>")
            for m in found
        ), found


def test_a_non_durable_sink_is_allowed_outside_production(broken):
    render = broken("dev")
    obj(render, EV, "Broker", NS, "events")["spec"]["delivery"]["deadLetterSink"] = KSVC_DLS
    assert messages(dead_letters.check_dead_letters_are_durable, render) == []


def test_production_source_without_dead_letter_sink_fails(broken):
    render = broken("prod")
    del obj(render, "sources.knative.dev", "KafkaSource", NS, "kafka-source")["spec"]["delivery"]["deadLetterSink"]
    found = messages(dead_letters.check_dead_letters_are_durable, render)
    assert any(
        m.startswith("[prod] KafkaSource notifications/kafka-source (base/eventing/kafka-source.yaml): ")
        and "no spec.delivery.deadLetterSink" in m
        for m in found
    ), found


def test_production_broker_without_dead_letter_sink_fails(broken):
    render = broken("prod")
    del obj(render, EV, "Broker", NS, "events")["spec"]["delivery"]["deadLetterSink"]
    found = messages(dead_letters.check_dead_letters_are_durable, render)
    assert any(
        m.startswith("[prod] Broker notifications/events (") and "no spec.delivery.deadLetterSink" in m for m in found
    )


def test_dead_letter_topic_that_a_source_reads_fails(broken):
    render = broken("prod")
    sink(render)["spec"]["topic"] = "notifications"
    found = messages(dead_letters.check_dead_letter_topics, render)
    assert found == [
        "[prod] KafkaSink notifications/dead-letters (overlays/prod/kafka.yaml): spec.topic 'notifications' is a "
        "topic KafkaSource notifications/kafka-source reads: every dead letter would be read back in and dispatched "
        "again (a loop); give dead letters their own topic  <dead-letters>"
    ]


def test_dead_letter_topic_that_is_the_broker_topic_fails(broken):
    render = broken("dev")
    sink(render)["spec"]["topic"] = "knative-broker-notifications-events"
    found = messages(dead_letters.check_dead_letter_topics, render)
    assert len(found) == 1
    assert found[0].startswith("[dev] KafkaSink notifications/dead-letters (overlays/dev/kafka.yaml): ")
    assert "is the topic of Broker notifications/events" in found[0]


def test_dead_letter_sink_without_the_brokers_kafka_auth_fails(broken):
    render = broken("prod")
    del sink(render)["spec"]["auth"]
    found = messages(dead_letters.check_dead_letter_topics, render)
    assert any(
        m.startswith("[prod] KafkaSink notifications/dead-letters (")
        and "auth.secret.ref.name 'kafka-credentials'" in m
        and "cannot create or write its topic" in m
        for m in found
    ), found


def test_dead_letter_sink_with_servers_joined_in_one_entry_fails(broken):
    """What the live kafka-controller refused in `make e2e ENV=prod` ("too many colons in address")."""
    render = broken("prod")
    sink(render)["spec"]["bootstrapServers"] = [",".join(sink(render)["spec"]["bootstrapServers"])]
    found = messages(dead_letters.check_dead_letter_topics, render)
    assert any(
        m.startswith("[prod] KafkaSink notifications/dead-letters (overlays/prod/kafka.yaml)")
        and "lists several servers in one string" in m
        for m in found
    ), found


def test_production_dead_letter_topic_replicated_less_than_the_broker_fails(broken):
    render = broken("prod")
    sink(render)["spec"]["replicationFactor"] = 1
    found = messages(dead_letters.check_dead_letter_topics, render)
    assert found == [
        "[prod] KafkaSink notifications/dead-letters (overlays/prod/kafka.yaml): spec.replicationFactor 1 is below "
        "Broker notifications/events's 3: a dead letter is the last copy of an event; replicate it at least like "
        "the events themselves  <dead-letters>"
    ]


def test_sender_missing_from_the_sinks_event_policy_fails(broken):
    render = broken("prod")
    policy = obj(render, EV, "EventPolicy", NS, "dead-letters-senders")
    policy["spec"]["from"] = [f for f in policy["spec"]["from"] if "loggings-oidc" not in f.get("sub", "")]
    found = messages(dead_letters.check_dead_letter_senders_admitted, render)
    assert found == [
        "[prod] KafkaSink notifications/dead-letters (base/eventing/dead-letters.yaml): Trigger notifications/loggings "
        "sends its dead letters here (as its own OIDC identity) but no EventPolicy on this sink names it in "
        "spec.from: the receiver answers 403 and they are lost  <dead-letters>"
    ]


def test_deny_all_without_a_policy_on_the_sink_fails(broken):
    render = broken("prod")
    render.objects.remove(obj(render, EV, "EventPolicy", NS, "dead-letters-senders"))
    found = messages(dead_letters.check_dead_letter_senders_admitted, render)
    assert len(found) == 1 and "no EventPolicy applies to it and default-authorization-mode is deny-all" in found[0]
    assert found[0].startswith("[prod] KafkaSink notifications/dead-letters (base/eventing/dead-letters.yaml)")


def test_dead_letter_sink_on_another_kafka_fails(broken):
    render = broken("dev")
    sink(render)["spec"]["bootstrapServers"] = ["overridden-by-overlay:9092"]
    found = messages(dead_letters.check_dead_letter_topics, render)
    assert len(found) == 1
    assert found[0].startswith("[dev] KafkaSink notifications/dead-letters (overlays/dev/kafka.yaml): bootstrapServers")
    assert "differ from Broker notifications/events's Kafka ['kafka-kafka-bootstrap.kafka.svc:9092']" in found[0]
