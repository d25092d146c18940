"""Where an event came from in Kafka (notifications.kafka_context), read from the attributes the data plane adds."""

from __future__ import annotations

from notifications.kafka_context import kafka_fields


def test_kafka_fields_from_kafka_source_id_when_extensions_are_absent() -> None:
    fields = kafka_fields({"type": "dev.knative.kafka.event", "id": "partition:2/offset:9", "partitionkey": "k",
                           "kafkaheaderxtraceid": "abc"})  # fmt: skip
    assert fields == {"kafka_partition": 2, "kafka_offset": 9, "kafka_key": "k", "kafka_headers": {"xtraceid": "abc"}}
    assert kafka_fields({"type": "com.example", "id": "partition:2/offset:9"}) == {}
