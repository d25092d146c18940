"""The e2e's topic readers against a real broker: each reads every record up to the watermark it saw when it
began, whatever the partition, and says where each one sits (the dead-letter recovery re-sends by offset)."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer

from gitops.e2e import scenarios as sc
from tests.events.kafka_broker import create_topics, kafka_bootstrap, kafka_broker  # noqa: F401  (session fixtures)


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    for i in range(count):
        headers = [("ce_source", b"/e2e/readers"), ("ce_id", str(i).encode()), ("ce_knativeerrorcode", b"503")]
        producer.produce(topic, f"value-{i}".encode(), key=f"k{i}".encode(), partition=i % 3, headers=headers)
    producer.flush(30)


def test_every_record_is_read_with_its_place_size_and_error_code(kafka_bootstrap: str) -> None:  # noqa: F811
    topic = f"e2e-readers-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 3})
    _produce(kafka_bootstrap, topic, 7)
    client = {"bootstrap.servers": kafka_bootstrap}

    events = sc.read_topic_events(client, topic)
    assert sorted(key for key, _ in events) == [("/e2e/readers", str(i)) for i in range(7)]
    assert {(a["id"], a["_partition"]) for _, a in events} == {(str(i), str(i % 3)) for i in range(7)}

    records = sc.read_topic_records(client, topic)
    assert {key[1]: value for key, _, value in records} == {str(i): f"value-{i}".encode() for i in range(7)}

    sizes = sc.record_sizes(client, topic)
    value, key, headers = len(b"value-0"), len(b"k0"), len("ce_source/e2e/readersce_id0ce_knativeerrorcode503")
    assert sizes[("/e2e/readers", "0")] == ("503", value + key + headers)


def test_an_empty_topic_reads_as_nothing(kafka_bootstrap: str) -> None:  # noqa: F811
    topic = f"e2e-readers-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 2})
    client = {"bootstrap.servers": kafka_bootstrap}
    assert sc.read_topic_events(client, topic) == []
    assert sc.read_topic_records(client, topic) == []
    assert sc.record_sizes(client, topic) == {}
