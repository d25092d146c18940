"""The multi-broker test Kafka prod's render runs against in `make e2e` (gitops/events/kafka_local.py
`start_cluster`): three KRaft nodes, SASL_SSL/SCRAM-SHA-512, a topic with replication factor 3 and
min.insync.replicas 2 placed on all three, clients authenticating; and its memory, printed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gitops.events.kafka_local import KafkaBroker, KafkaUnavailable, Node, jars_dir, resident_mib, start_cluster

pytestmark = pytest.mark.kafka
# Addresses of their own on loopback (the e2e maps prod's bootstrap names to such addresses in its /etc/hosts).
NODES = [Node(f"127.0.5.{i}", f"127.0.5.{i}") for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[KafkaBroker]:
    try:
        jars_dir()
    except KafkaUnavailable as exc:
        pytest.skip(f"no real Kafka broker for this run: {exc}")
    from gitops.events.kafka_local import free_port

    broker = start_cluster(NODES, free_port(), sasl_ssl=True)
    try:
        yield broker
    finally:
        broker.stop()


def test_three_nodes_answer_over_sasl_ssl_and_place_three_replicas(cluster: KafkaBroker) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    config = {"bootstrap.servers": cluster.bootstrap_servers, **cluster.client_security}
    admin = AdminClient(config)
    assert len(admin.list_topics(timeout=10).brokers) == 3
    topic = "rf3"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3, config={"min.insync.replicas": "2"})])[
        topic
    ].result(timeout=30)
    # create_topics answers when the controller took it; a node's metadata may lag a moment (seen under load).
    deadline = time.monotonic() + 30
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    while len(partitions) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    assert len(partitions) == 3
    assert {len(p.replicas) for p in partitions.values()} == {3}
    producer = Producer({**config, "acks": "all"})
    delivered = []
    producer.produce(topic, b"v", partition=0, on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
    producer.flush(30)
    assert delivered and delivered[0][0] is None
    consumer = Consumer({**config, "group.id": "cluster-test"})
    try:
        consumer.assign([TopicPartition(topic, 0, delivered[0][1])])
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                assert msg.value() == b"v"
                break
        else:
            raise AssertionError("the record did not read back")
    finally:
        consumer.close()
    rss = resident_mib(cluster.pids)
    print(
        f"test Kafka cluster: 3 nodes up in {cluster.start_seconds:.1f}s, resident "
        + ", ".join(f"{mib:.0f}" for mib in rss.values())
        + f" MiB (total {sum(rss.values()):.0f} MiB)"
    )


def test_a_wrong_password_is_refused(cluster: KafkaBroker) -> None:
    from confluent_kafka.admin import AdminClient

    assert cluster.sasl_ssl is not None
    errors = []
    admin = AdminClient(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            **cluster.sasl_ssl.client_config(password="not-the-password"),
            "error_cb": errors.append,
        }
    )
    deadline = time.monotonic() + 30
    while not errors and time.monotonic() < deadline:
        with pytest.raises(Exception):  # noqa: B017 (KafkaException: no broker answers an unauthenticated client)
            admin.list_topics(timeout=2)
        admin.poll(1)  # serves error_cb
    assert any("Authentication failed" in str(e) or "SASL" in str(e) for e in errors), errors
