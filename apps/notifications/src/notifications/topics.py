"""The topics this subscriber serves: the one table every other place follows.

Each entry is a Kafka topic the KafkaSource reads and a Trigger routes to `/events/<topic>`. From this table:
the app registers its routes (app.py), `send_event` and `make produce` (gitops/events/payloads.py) offer and encode
the topics, the test broker (gitops/events/kafka_local.py, `make kafka`) creates them, and `make validate` checks both
directions (check `topics`): every topic here is read by a KafkaSource and routed by a Trigger to its own path, and
every KafkaSource topic and Trigger path into this app is listed here. Adding a topic is one entry here plus its
KafkaSource topic and Trigger (docs/forking.md, "Add a topic").
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from notifications.models import LogRecord, Notification

EVENTS_PREFIX = "/events/"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summarise_notification(notification: Notification) -> dict[str, Any]:
    # Title and body may carry personal data; the log keeps what is needed to trace a delivery.
    # UUID and enum values are left to orjson, which serialises both natively.
    return {
        "notification": {
            "notification_id": notification.notification_id,
            "recipient": notification.recipient,
            "channel": notification.channel,
            "priority": notification.priority,
        }
    }


def summarise_log_record(record: LogRecord) -> dict[str, Any]:
    return {"record": record.model_dump(mode="json", exclude_none=True)}


def log_record_level(record: LogRecord) -> int:
    # Never below INFO, so every processed record is really emitted; ERROR records stay ERROR for alerting.
    return max(logging.INFO, record.level_number)


def _info(_payload: Any) -> int:
    return logging.INFO


SHARED_WRITERS = "source-producers"
"""The one set of Kafka principals allowed to write both topics today (docs/security-model.md, "Who can write a
source topic"): the name the Kafka ACLs' WRITE grants go by, not a secret."""
DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
"""1 MiB: Kafka's own default record-batch cap (a broker's `message.max.bytes`, 1048588, less the batch header)."""


@dataclass(frozen=True)
class Topic:
    """One topic: its payload model (with an `example()` classmethod), how a processed event is logged, which
    example fields `make produce` refreshes per record so --count N sends N distinct events, and the largest record
    the topic may carry.

    `max_record_bytes` is the topic's Kafka `max.message.bytes` (the largest record batch it accepts: key, value,
    headers and the batch header, uncompressed here), so a larger record is refused at its producer and never
    reaches the KafkaSource. Every later hop is sized from it (`make validate`, check `record-size`,
    docs/operations.md "Record size"): the Broker receiver's producer and the Broker's topic with room for the
    CloudEvent wrapping, the dead-letter path with room for the error extensions too, and this route's body limit.
    The test broker creates the topic with it; in a cluster its owner sets it (docs/operations.md).

    `writers` names who may write the topic (the Kafka principals its WRITE ACL grants). The KafkaSource passes a
    record that already is a CloudEvent through unchanged, so a writer of one topic can emit another topic's
    events whenever nothing the Triggers filter on tells them apart; `make validate` (check `topic-trust`) fails
    while topics with different `writers` share a KafkaSource's Broker that way."""

    name: str
    model: type[BaseModel]
    summarise: Callable[[Any], dict[str, Any]]
    log_level: Callable[[Any], int] = _info
    fresh_fields: dict[str, Callable[[], str]] = field(default_factory=dict)
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    writers: str = SHARED_WRITERS

    @property
    def path(self) -> str:
        return EVENTS_PREFIX + self.name


TOPICS: dict[str, Topic] = {
    topic.name: topic
    for topic in (
        Topic(
            "notifications",
            Notification,
            summarise_notification,
            fresh_fields={"notification_id": lambda: str(uuid.uuid4()), "created_at": _now},
            max_record_bytes=DEFAULT_MAX_RECORD_BYTES,
        ),
        Topic(
            "loggings",
            LogRecord,
            summarise_log_record,
            log_record_level,
            fresh_fields={"timestamp": _now},
            max_record_bytes=DEFAULT_MAX_RECORD_BYTES,
        ),
    )
}
