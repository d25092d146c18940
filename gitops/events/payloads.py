"""Test-event payloads and their Kafka encoding (CloudEvents Kafka protocol binding, or plain JSON).

The Triggers (base/eventing/triggers.yaml) match `type: dev.knative.kafka.event` and
`source: /apis/v1/namespaces/notifications/kafkasources/kafka-source#<topic>`. A KafkaSource gives a plain
record exactly those attributes, but passes a record that already is a CloudEvent through unchanged
(knative-facts §1). So a CloudEvent produced here carries the same type and source by default; any other
value would be filtered out before it reaches the subscriber. It also carries the record key as
`partitionkey` (the binding's key mapping) and `key`, the two extensions the KafkaSource adds to plain
records, so the subscriber sees one shape in all modes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

KAFKASOURCE_TYPE = "dev.knative.kafka.event"
KAFKASOURCE = ("notifications", "kafka-source")
JSON_CONTENT_TYPE = "application/json"


class CeMode(StrEnum):
    BINARY = "binary"
    STRUCTURED = "structured"
    NONE = "none"


class PayloadModel(Protocol):
    @classmethod
    def example(cls) -> Any: ...

    @classmethod
    def model_validate(cls, obj: Any) -> Any: ...


class PayloadError(ValueError):
    pass


def default_source(topic: str) -> str:
    namespace, name = KAFKASOURCE
    return f"/apis/v1/namespaces/{namespace}/kafkasources/{name}#{topic}"


def topics() -> dict[str, Any]:
    """The subscriber's topic table (notifications.topics.TOPICS), the one list of topics; imported lazily so
    --help works without the app installed."""
    try:
        from notifications.topics import TOPICS
    except ImportError as exc:
        raise PayloadError(
            f"cannot import the subscriber's topic table (notifications.topics): {exc}; run `make setup`"
        ) from exc
    return TOPICS


def topic_names() -> list[str]:
    return list(topics())


def model_for(topic: str) -> type[PayloadModel]:
    known = topics()
    if topic not in known:
        raise PayloadError(
            f"unknown topic {topic!r}: expected one of {', '.join(known)} "
            "(apps/notifications/src/notifications/topics.py; docs/forking.md, 'Add a topic')"
        )
    return known[topic].model


def fresh_fields(topic: str) -> dict[str, Callable[[], str]]:
    """Per-record fields of an example payload: a fresh id and "now", so --count N sends N distinct events."""
    return dict(topics()[topic].fresh_fields)


def _field_path(assignment: str) -> str:
    return assignment.partition("=")[0].removesuffix(":")


def _set_field(data: dict[str, Any], assignment: str) -> None:
    """FIELD=text sets a string (the model coerces it to an int, enum, UUID...); FIELD:=JSON any value."""
    path, sep, raw = assignment.partition("=")
    is_json = path.endswith(":")
    path = path.removesuffix(":")
    if not sep or not path:
        raise PayloadError(f"--set {assignment!r}: expected FIELD=TEXT or FIELD:=JSON (FIELD may be dotted)")
    value: Any = raw
    if is_json:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PayloadError(f"--set {assignment!r}: {exc}") from exc
    *parents, leaf = path.split(".")
    target = data
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[leaf] = value


def build_payload(topic: str, payload_file: Path | None = None, assignments: tuple[str, ...] = ()) -> bytes:
    """The record value: the model's example (or a file), with --set overrides, validated by the model."""
    model = model_for(topic)
    if payload_file is not None:
        try:
            data = json.loads(payload_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PayloadError(f"--payload-file {payload_file}: {exc}") from exc
        if not isinstance(data, dict):
            raise PayloadError(f"--payload-file {payload_file}: expected a JSON object")
    else:
        data = json.loads(model.example().model_dump_json())
        given = {_field_path(a) for a in assignments}
        for name, make in fresh_fields(topic).items():
            if name in data and name not in given:
                data[name] = make()
    for assignment in assignments:
        _set_field(data, assignment)
    try:
        validated = model.model_validate(data)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise PayloadError(f"payload does not match {model.__name__}: {exc}") from exc
    return validated.model_dump_json().encode()


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    ce: dict[str, str] | None


def encode(
    topic: str,
    payload: bytes,
    key: str | None,
    mode: CeMode,
    ce_type: str = KAFKASOURCE_TYPE,
    ce_source: str | None = None,
    now: datetime | None = None,
) -> Record:
    key_bytes = key.encode() if key is not None else None
    if mode is CeMode.NONE:
        # content-type lets the KafkaSource set datacontenttype on the CloudEvent it wraps the record in.
        return Record(topic, key_bytes, payload, [("content-type", JSON_CONTENT_TYPE.encode())], None)
    attributes: dict[str, Any] = {
        "type": ce_type,
        "source": ce_source or default_source(topic),
        "datacontenttype": JSON_CONTENT_TYPE,
        "time": now or datetime.now(UTC),
    }
    if key is not None:
        attributes["partitionkey"] = key
        attributes["key"] = key
    # Structured mode must embed the JSON object as `data` (bytes would become data_base64).
    data: Any = payload if mode is CeMode.BINARY else json.loads(payload)
    event = CloudEvent(attributes, data)
    fmt = JSONFormat()
    message = ce_kafka.to_binary(event, fmt) if mode is CeMode.BINARY else ce_kafka.to_structured(event, fmt)
    attrs = event.get_attributes()
    return Record(
        topic,
        key_bytes,
        message.value,
        list(message.headers.items()),
        {"id": attrs["id"], "type": attrs["type"], "source": attrs["source"]},
    )
