"""JSON payloads carried by the `notifications` and `loggings` Kafka topics.

Unknown fields are ignored rather than rejected: producers roll out new fields before every consumer knows
them, and a rejection here would send a perfectly deliverable event to the dead-letter sink (422 is not
retried).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
AttributeValue = str | int | float | bool | None


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WEBHOOK = "webhook"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Notification(BaseModel):
    """A message to deliver to one recipient, as the notifications producer writes it to Kafka.

    Example payload::

        {"notification_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "recipient": "user-4711",
         "channel": "email", "title": "Your order has shipped",
         "body": "Order 1042 left our warehouse and arrives on Friday.", "priority": "normal",
         "created_at": "2026-11-26T07:12:03.512Z", "metadata": {"order_id": "1042"}}
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    notification_id: UUID
    recipient: ShortText = Field(description="Opaque recipient id (user id, device token, webhook name)")
    channel: Channel
    title: ShortText
    body: Annotated[str, StringConstraints(min_length=1, max_length=16_384)]
    priority: Priority = Priority.NORMAL
    created_at: datetime
    metadata: dict[str, str] = Field(default_factory=dict, max_length=64)

    @classmethod
    def example(cls) -> Notification:
        return cls(
            notification_id=UUID("0f8fad5b-d9cb-469f-a165-70867728950e"),
            recipient="user-4711",
            channel=Channel.EMAIL,
            title="Your order has shipped",
            body="Order 1042 left our warehouse and arrives on Friday.",
            priority=Priority.NORMAL,
            created_at=datetime(2026, 11, 26, 7, 12, 3, 512000, tzinfo=UTC),
            metadata={"order_id": "1042"},
        )


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


_LEVEL_ALIASES: dict[str, str] = {"WARN": "WARNING", "FATAL": "CRITICAL", "TRACE": "DEBUG", "ERR": "ERROR"}


class LogRecord(BaseModel):
    """One application log record shipped through the `loggings` topic.

    Example payload::

        {"timestamp": "2026-11-26T07:12:03.512Z", "level": "ERROR", "service": "checkout",
         "logger": "checkout.payments", "message": "card authorisation failed",
         "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
         "attributes": {"order_id": "1042", "attempt": 2}}

    `level` accepts the usual spellings of other ecosystems (`warn`, `fatal`, `trace`) and normalises them.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    LEVEL_NUMBERS: ClassVar[dict[LogLevel, int]] = {
        LogLevel.DEBUG: 10,
        LogLevel.INFO: 20,
        LogLevel.WARNING: 30,
        LogLevel.ERROR: 40,
        LogLevel.CRITICAL: 50,
    }

    timestamp: datetime
    level: LogLevel
    service: ShortText
    logger: ShortText | None = None
    message: Annotated[str, StringConstraints(max_length=32_768)]
    trace_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] | None = None
    span_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")] | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict, max_length=128)

    @field_validator("level", mode="before")
    @classmethod
    def _normalise_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            upper = value.strip().upper()
            return _LEVEL_ALIASES.get(upper, upper)
        return value

    @property
    def level_number(self) -> int:
        return self.LEVEL_NUMBERS[self.level]

    @classmethod
    def example(cls) -> LogRecord:
        return cls(
            timestamp=datetime(2026, 11, 26, 7, 12, 3, 512000, tzinfo=UTC),
            level=LogLevel.ERROR,
            service="checkout",
            logger="checkout.payments",
            message="card authorisation failed",
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            span_id="00f067aa0ba902b7",
            attributes={"order_id": "1042", "attempt": 2},
        )
