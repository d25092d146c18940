"""Decode a CloudEvent from an HTTP request, binary or structured content mode (CloudEvents 1.0 HTTP binding).

Hand-rolled instead of the SDK's `from_http` for two reasons: it runs once per event on the hot path, and the
failure of each check has to map to a specific non-retryable status code the Kafka dispatcher understands.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import orjson

from notifications.errors import MalformedEvent

SPECVERSION = "1.0"
REQUIRED_ATTRIBUTES = ("id", "source", "type")
STRUCTURED_MEDIA_TYPE = "application/cloudevents+json"
_CLOUDEVENTS_MEDIA_PREFIX = "application/cloudevents"


@dataclass(slots=True)
class CloudEvent:
    attributes: dict[str, Any]
    """Context attributes and extensions, `data` excluded."""
    data: bytes | Any = None
    """Raw body bytes (binary mode, `data_base64`) or the already-parsed JSON value (structured `data`)."""
    data_is_raw: bool = True
    http_headers: dict[str, str] = field(default_factory=dict)
    """The few non-`ce-` request headers worth logging (`traceparent`, `tracestate`)."""

    @property
    def id(self) -> str:
        return self.attributes["id"]

    @property
    def source(self) -> str:
        return self.attributes["source"]

    @property
    def type(self) -> str:
        return self.attributes["type"]


def media_type(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def is_json_media_type(media: str | None) -> bool:
    """No content type counts as JSON: KafkaSource only sets `datacontenttype` when the record has a
    `content-type` header (InvalidCloudEventInterceptor), so most wrapped records arrive without one."""
    return media is None or media == "application/json" or media == "text/json" or media.endswith("+json")


def _decode_header_value(raw: bytes) -> str:
    if raw.isascii():
        value = raw.decode("ascii")
    else:
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            value = raw.decode("latin-1")
    # The HTTP binding percent-encodes space, '"', '%' and non-ASCII characters in ce- header values.
    return unquote(value, errors="strict") if "%" in value else value


_TRACE_HEADERS = (b"traceparent", b"tracestate")
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+")
# Header and attribute names repeat from event to event: validate each once, then look it up.
_MAX_REMEMBERED_NAMES = 4096
_header_attribute_names: dict[bytes, str] = {}
_valid_attribute_names: set[str] = set()


def _attribute_name_of_header(header: bytes) -> str:
    name = header[3:].decode("latin-1")
    if not _ATTRIBUTE_NAME.fullmatch(name):
        raise MalformedEvent(400, "bad_attribute", f"attribute name {name[:40]!r} is not [a-z0-9]+")
    if len(_header_attribute_names) < _MAX_REMEMBERED_NAMES:
        _header_attribute_names[header] = name
    return name


def from_http(raw_headers: list[tuple[bytes, bytes]], body: bytes) -> CloudEvent:
    """Decode and validate a CloudEvent; raises MalformedEvent (400 or 415) for anything not acceptable."""
    attributes: dict[str, Any] = {}
    content_type: str | None = None
    http_headers: dict[str, str] = {}
    for header, value in raw_headers:
        name = _header_attribute_names.get(header)
        if name is None:
            if header.startswith(b"ce-"):
                name = _attribute_name_of_header(header)
            else:
                if header == b"content-type":
                    content_type = value.decode("latin-1")
                elif header in _TRACE_HEADERS:
                    http_headers[header.decode("latin-1")] = value.decode("latin-1")
                continue
        if value.isascii() and b"%" not in value:
            attributes[name] = value.decode("ascii")
        else:
            try:
                attributes[name] = _decode_header_value(value)
            except UnicodeError as exc:
                raise MalformedEvent(400, "bad_attribute", f"undecodable value for {name}") from exc

    media = media_type(content_type)
    if media is not None and media.startswith(_CLOUDEVENTS_MEDIA_PREFIX):
        if media != STRUCTURED_MEDIA_TYPE:
            raise MalformedEvent(415, "unsupported_media_type", f"{media} is not supported (batch or non-JSON)")
        event = _from_structured(body)
    elif attributes:
        if not is_json_media_type(media):
            raise MalformedEvent(415, "unsupported_media_type", f"data content type {media} is not JSON")
        if content_type is not None:
            attributes["datacontenttype"] = content_type
        event = CloudEvent(attributes=attributes, data=body, data_is_raw=True)
    else:
        raise MalformedEvent(400, "not_a_cloudevent", "no ce- headers and not application/cloudevents+json")
    _validate_attributes(event.attributes)
    event.http_headers = http_headers
    return event


def _from_structured(body: bytes) -> CloudEvent:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(400, "invalid_json", f"structured event is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedEvent(400, "invalid_json", "structured event must be a JSON object")
    if "data" in document and "data_base64" in document:
        raise MalformedEvent(400, "bad_attribute", "both data and data_base64 are set")
    if "data_base64" in document:
        encoded = document.pop("data_base64")
        if not isinstance(encoded, str):
            raise MalformedEvent(400, "bad_attribute", "data_base64 must be a string")
        try:
            data: Any = base64.b64decode(encoded, validate=True)
        except ValueError as exc:  # binascii.Error, or (a ValueError too) a non-ASCII string
            raise MalformedEvent(400, "bad_attribute", "data_base64 is not valid base64") from exc
        raw = True
    else:
        data = document.pop("data", None)
        # A JSON string under `data` is the payload serialised twice, which some producers do.
        raw = isinstance(data, str)
        if raw:
            data = data.encode("utf-8")
    datacontenttype = document.get("datacontenttype")
    if datacontenttype is not None and not isinstance(datacontenttype, str):
        raise MalformedEvent(400, "bad_attribute", "datacontenttype must be a string")
    media = media_type(datacontenttype)
    if not is_json_media_type(media):
        raise MalformedEvent(415, "unsupported_media_type", f"data content type {media} is not JSON")
    _validate_names(document)
    return CloudEvent(attributes=_typed_attributes(document), data=data, data_is_raw=raw)


_INT32 = range(-(2**31), 2**31)


def _typed_attributes(document: dict[str, Any]) -> dict[str, Any]:
    """The JSON event format maps every CloudEvents attribute type (extensions included) to a JSON string,
    boolean or integer (the core spec's Integer is 32-bit), and `null` means unset. Anything else (objects,
    arrays, fractions, integers that do not fit) is the sender's mistake, refused here before any of it reaches
    the log line (cloudevents/spec, cloudevents/formats/json-format.md, 2.2)."""
    typed: dict[str, Any] = {}
    for name, value in document.items():
        if value is None:
            continue
        if isinstance(value, str | bool) or (type(value) is int and value in _INT32):
            typed[name] = value
        else:
            raise MalformedEvent(
                400,
                "bad_attribute",
                f"attribute {name} is a JSON {_json_type_name(value)}; CloudEvents attributes are strings, "
                "booleans or 32-bit integers",
            )
    return typed


def _json_type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, int):
        return "integer outside 32 bits"
    return "number with a fraction or exponent" if isinstance(value, float) else type(value).__name__


def _validate_attributes(attributes: dict[str, Any]) -> None:
    specversion = attributes.get("specversion")
    if specversion is None:
        raise MalformedEvent(400, "missing_attribute", "specversion is required")
    if specversion != SPECVERSION:
        shown = repr(specversion[:20]) if isinstance(specversion, str) else f"of type {type(specversion).__name__}"
        raise MalformedEvent(400, "unsupported_specversion", f"specversion {shown} is not 1.0")
    for name in REQUIRED_ATTRIBUTES:
        value = attributes.get(name)
        if not isinstance(value, str) or not value:
            raise MalformedEvent(400, "missing_attribute", f"{name} is required and must be a non-empty string")
    time = attributes.get("time")
    if time is not None:
        if not isinstance(time, str):
            raise MalformedEvent(400, "bad_attribute", "time must be an RFC 3339 string")
        try:
            datetime.fromisoformat(time)
        except ValueError as exc:
            raise MalformedEvent(400, "bad_attribute", "time is not RFC 3339") from exc


def _validate_names(attributes: dict[str, Any]) -> None:
    for name in attributes:
        if name not in _valid_attribute_names:
            if not _ATTRIBUTE_NAME.fullmatch(name):
                raise MalformedEvent(400, "bad_attribute", f"attribute name {name[:40]!r} is not [a-z0-9]+")
            if len(_valid_attribute_names) < _MAX_REMEMBERED_NAMES:
                _valid_attribute_names.add(name)
