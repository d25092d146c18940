"""kafka-durability: RF, min.insync.replicas and acks against environments.yaml kafka_broker_losses."""

from gitops.validate.checks import durability
from tests.support import obj, run_check
from tests.validate.checks.promise_support import NS, data_plane, set_property

CONFIG = "ConfigMap notifications/kafka-broker-config"


def config(render):
    return obj(render, "", "ConfigMap", NS, "kafka-broker-config")


def test_the_shipped_renders_keep_their_promise(renders) -> None:
    for env in ("dev", "prod"):
        for check in (durability.check_broker_topic_durability, durability.check_dead_letter_topic_durability):
            assert run_check(check, renders[env]) == []


def test_min_insync_of_one_risks_acknowledged_events_in_prod(broken) -> None:
    render = broken("prod")
    config(render)["data"]["default.topic.config.min.insync.replicas"] = "1"
    (finding,) = run_check(durability.check_broker_topic_durability, render)
    assert (finding.env, finding.obj, finding.origin) == ("prod", CONFIG, "overlays/prod/kafka.yaml")
    assert "min.insync.replicas 1 (overlays/prod/kafka.yaml) <= 1 broker loss(es)" in finding.message
    assert "kafka_broker_losses 1" in finding.message


def test_replication_equal_to_min_insync_blocks_writes_in_prod(broken) -> None:
    render = broken("prod")
    config(render)["data"]["default.topic.replication.factor"] = "2"
    (finding,) = run_check(durability.check_broker_topic_durability, render)
    assert "replication factor 2 (overlays/prod/kafka.yaml) < min.insync.replicas 2" in finding.message
    assert "= 3" in finding.message


def test_an_unset_min_insync_is_the_clusters_default(broken) -> None:
    render = broken("prod")
    del config(render)["data"]["default.topic.config.min.insync.replicas"]
    (finding,) = run_check(durability.check_broker_topic_durability, render)
    assert "min.insync.replicas 1 (unset: the Kafka cluster's default" in finding.message


def test_acks_one_on_the_receiver_is_flagged(broken) -> None:
    render = broken("prod")
    set_property(data_plane(render, "broker"), "config-kafka-broker-producer.properties", "acks", "1")
    (finding,) = run_check(durability.check_broker_topic_durability, render)
    assert finding.obj == "ConfigMap knative-eventing/config-kafka-broker-data-plane"
    assert "producer acks=1" in finding.message


def test_a_single_copy_dead_letter_topic_is_flagged_in_prod(broken) -> None:
    render = broken("prod")
    obj(render, "eventing.knative.dev", "KafkaSink", NS, "dead-letters")["spec"]["replicationFactor"] = 1
    (finding,) = run_check(durability.check_dead_letter_topic_durability, render)
    assert finding.obj == "KafkaSink notifications/dead-letters"
    assert (
        finding.origin == "overlays/prod/kafka.yaml" and "replicationFactor 1 <= 1 broker loss(es)" in finding.message
    )


def test_dev_promises_no_broker_loss(broken) -> None:
    render = broken("dev")  # replication factor 1 on one broker: kafka_broker_losses 0
    config(render)["data"]["default.topic.config.min.insync.replicas"] = "1"
    assert run_check(durability.check_broker_topic_durability, render) == []
