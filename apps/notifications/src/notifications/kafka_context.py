"""Where a CloudEvent came from in Kafka, read from the attributes the Knative Kafka data plane adds.

`knativekafkapartition` / `knativekafkaoffset` are set on every dispatched event (eventing-kafka-broker
`CloudEventOverridesMutator`); for a KafkaSource-wrapped record the id is also `partition:<p>/offset:<o>`
and the record key is in `key` / `partitionkey` (`InvalidCloudEventInterceptor`). A record that already was a
CloudEvent keeps its own id, source and type.
"""

from __future__ import annotations

import re
from typing import Any

KAFKA_SOURCE_EVENT_TYPE = "dev.knative.kafka.event"
KAFKA_HEADER_PREFIX = "kafkaheader"
_KAFKA_SOURCE_ID = re.compile(r"^partition:(\d+)/offset:(\d+)$")


def kafka_fields(attributes: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    partition = attributes.get("knativekafkapartition")
    offset = attributes.get("knativekafkaoffset")
    if (partition is None or offset is None) and attributes.get("type") == KAFKA_SOURCE_EVENT_TYPE:
        match = _KAFKA_SOURCE_ID.match(attributes.get("id", ""))
        if match:
            partition, offset = match.groups()
    if partition is not None:
        fields["kafka_partition"] = _as_int(partition)
    if offset is not None:
        fields["kafka_offset"] = _as_int(offset)
    key = attributes.get("key", attributes.get("partitionkey"))
    if key is not None:
        fields["kafka_key"] = key
    headers = {
        name[len(KAFKA_HEADER_PREFIX) :]: value
        for name, value in attributes.items()
        if name.startswith(KAFKA_HEADER_PREFIX)
    }
    if headers:
        fields["kafka_headers"] = headers
    return fields


def _as_int(value: Any) -> Any:
    """A partition or offset as a number when it is one; any other value is logged as the sender wrote it.

    ASCII digits only (`"²".isdigit()` is true but `int("²")` raises) and at most 18 of them, so the number
    always fits the 64-bit integers the log writer emits (Kafka offsets are int64)."""
    if isinstance(value, str) and len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)
    return value
