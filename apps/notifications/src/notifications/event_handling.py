"""Turn one HTTP request into one processed event, one log line, one metrics sample and one status code."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from notifications import cloudevent
from notifications.cloudevent import CloudEvent
from notifications.dedup import Claim, RecentEvents, content_digest, event_key
from notifications.errors import MalformedEvent, TransientFailure
from notifications.json_logging import FIELDS_ATTR, StructuredLogger
from notifications.kafka_context import kafka_fields
from notifications.metrics import EventMetrics
from notifications.oidc import SENDER_SCOPE_KEY

PayloadT = TypeVar("PayloadT", bound=BaseModel)
Sink = Callable[[PayloadT, CloudEvent], Awaitable[None]]

event_log = logging.getLogger("notifications.events")
event_lines = StructuredLogger("notifications.events")

ACCEPTED = Response(status_code=202)
"""Empty body on purpose: the Kafka dispatcher fails a 2xx whose non-empty body is not a CloudEvent
(eventing-kafka-broker `ResponseToKafkaTopicHandler`)."""


def error_response(status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    # The body ends up base64-encoded in the dead-letter event's `knativeerrordata` (at most 1024 bytes).
    body = orjson.dumps({"error": reason, "detail": detail})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing to buffer more than `limit` bytes whatever Content-Length claims (or if chunked)."""
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise MalformedEvent(413, "body_too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_payload(event: CloudEvent, model: type[PayloadT]) -> PayloadT:
    data = event.data
    if data is None or data == b"":
        raise MalformedEvent(400, "missing_data", "event has no data")
    try:
        if event.data_is_raw:
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        first = errors[0]
        if first["type"] == "json_invalid":
            raise MalformedEvent(400, "invalid_json", f"data is not JSON: {first['msg']}") from exc
        location = ".".join(str(part) for part in first["loc"]) or "data"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise MalformedEvent(422, "invalid_payload", f"{location}: {first['msg']}{more}") from exc


def event_fields(event: CloudEvent) -> dict[str, Any]:
    attributes = event.attributes
    fields: dict[str, Any] = {
        "ce_id": attributes["id"],
        "ce_source": attributes["source"],
        "ce_type": attributes["type"],
    }
    for name in ("subject", "time"):
        value = attributes.get(name)
        if value is not None:
            fields["ce_" + name] = value
    fields.update(kafka_fields(attributes))
    traceparent = event.http_headers.get("traceparent") or attributes.get("traceparent")
    if traceparent:
        fields["traceparent"] = traceparent
        tracestate = event.http_headers.get("tracestate") or attributes.get("tracestate")
        if tracestate:
            fields["tracestate"] = tracestate
    return fields


@dataclass(frozen=True, slots=True)
class TopicHandler(Generic[PayloadT]):
    """How one topic's payload is validated, processed, and summarised in the log line."""

    route: str
    model: type[PayloadT]
    sink: Sink[PayloadT]
    summarise: Callable[[PayloadT], dict[str, Any]]
    log_level: Callable[[PayloadT], int] = lambda _payload: logging.INFO


class EventEndpoint(Generic[PayloadT]):
    def __init__(
        self, topic: TopicHandler[PayloadT], dedup: RecentEvents, metrics: EventMetrics, max_body_bytes: int
    ) -> None:
        self._topic = topic
        self._dedup = dedup
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        route = self._topic.route
        event: CloudEvent | None = None
        try:
            body = await read_body(request, self._max_body_bytes)
            event = cloudevent.from_http(request.scope["headers"], body)
            return await self._process(event, started, request.scope.get(SENDER_SCOPE_KEY))
        except MalformedEvent as exc:
            self._finish(
                route,
                event,
                "rejected",
                started,
                logging.WARNING,
                {"error": exc.reason, "detail": exc.detail},
                request_headers=request.scope["headers"],
            )
            return error_response(exc.status, exc.reason, exc.detail)
        except ClientDisconnect:
            self._finish(route, event, "client_disconnected", started, logging.WARNING, {})
            return error_response(400, "client_disconnected", "client went away mid-request")

    async def _process(self, event: CloudEvent, started: float, sender: str | None = None) -> Response:
        """`sender`: the verified token's subject when the route requires one (notifications.oidc), written into
        the event's record as `sender_sub`."""
        topic = self._topic
        key = event_key(event.source, event.id)
        content = content_digest(event.attributes, event.data, event.data_is_raw)
        claim = self._dedup.claim(key, content)
        if claim is Claim.DUPLICATE:
            self._finish(topic.route, event, "duplicate", started, logging.INFO, {})
            return ACCEPTED
        if claim is Claim.IN_FLIGHT:
            # 409 is retried by the dispatcher; by then the first delivery has either completed or released.
            self._finish(topic.route, event, "in_flight", started, logging.INFO, {})
            return error_response(409, "in_flight", "the same (source, id) is being processed")
        if claim is Claim.COLLISION:
            # Another event was processed under this (source, id) within the window: this one differs, so it is
            # not a redelivery, and answering `duplicate` would let the first (perhaps forged) copy suppress it.
            # It is processed like any new event; this line and the counter tell a person ids are being reused.
            self._report_collision(topic.route, event)
        try:
            payload = decode_payload(event, topic.model)
            await topic.sink(payload, event)
            level, summary = topic.log_level(payload), topic.summarise(payload)
            if sender is not None:
                summary = {**summary, "sender_sub": sender}
        except MalformedEvent:
            self._dedup.release(key)
            raise
        except TransientFailure as exc:
            self._dedup.release(key)
            self._finish(topic.route, event, "retry", started, logging.WARNING, {"error": str(exc)[:300]})
            return error_response(503, "transient_failure", str(exc)[:300])
        except Exception:
            self._dedup.release(key)
            self._log_bug(topic.route, event, started)
            return error_response(500, "internal_error", "processing failed; will be retried")
        except BaseException:  # cancelled (shutdown timeout): a redelivery must not find it "in flight"
            self._dedup.release(key)
            raise
        # The log line is the event's record: only once it is written is the event done, and only then may a
        # redelivery be answered "duplicate". Until then the claim is released on every failure.
        try:
            self._finish(topic.route, event, "processed", started, level, summary, record=True)
        except OSError as exc:
            self._dedup.release(key)
            self._metrics.observe(topic.route, event.type, "record_failed", time.perf_counter() - started)
            return error_response(503, "record_not_written", f"writing the event's record failed: {exc}"[:300])
        except BaseException:
            self._dedup.release(key)
            raise
        self._dedup.complete(key, content)
        return ACCEPTED

    def _report_collision(self, route: str, event: CloudEvent) -> None:
        """Diagnostics, not the record (the `processed` line that follows is): a failed write changes nothing."""
        self._metrics.collision(route)
        if event_log.isEnabledFor(logging.WARNING):
            fields: dict[str, Any] = {"route": route, "outcome": "id_collision", **event_fields(event)}
            fields["detail"] = "same (source, id) as an event processed within the dedup window, other content"
            with contextlib.suppress(OSError):
                event_lines.log(logging.WARNING, "event id_collision", fields)

    def _log_bug(self, route: str, event: CloudEvent, started: float) -> None:
        fields = {"route": route, "outcome": "error", **event_fields(event)}
        event_log.exception("event processing failed", extra={FIELDS_ATTR: fields})
        self._metrics.observe(route, event.type, "error", time.perf_counter() - started)

    def _finish(
        self,
        route: str,
        event: CloudEvent | None,
        outcome: str,
        started: float,
        level: int,
        extra_fields: dict[str, Any],
        request_headers: list[tuple[bytes, bytes]] | None = None,
        record: bool = False,
    ) -> None:
        """Log the outcome, then count it. With `record` the line is the event's record and an OSError from
        writing it propagates (the caller must not acknowledge); otherwise the status code already tells the
        sender what happened, the line is diagnostics, and a failed write is not worth a different answer."""
        elapsed = time.perf_counter() - started
        event_type = event.attributes.get("type") if event is not None else None
        if event_log.isEnabledFor(level):
            fields: dict[str, Any] = {"route": route, "outcome": outcome}
            if event is not None:
                fields.update(event_fields(event))
            elif request_headers is not None:
                fields.update(_raw_identity(request_headers))
            fields.update(extra_fields)
            fields["duration_ms"] = round(elapsed * 1000, 3)
            try:
                event_lines.log(level, "event " + outcome, fields)
            except OSError:
                if record:
                    raise
        self._metrics.observe(route, event_type, outcome, elapsed)


_IDENTITY_HEADERS = {
    b"ce-id": "ce_id",
    b"ce-source": "ce_source",
    b"ce-type": "ce_type",
    b"traceparent": "traceparent",
}


def _raw_identity(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """What a rejected request claimed to be, so its dead letter can be matched to this log line."""
    return {
        _IDENTITY_HEADERS[name]: value.decode("latin-1")[:256] for name, value in headers if name in _IDENTITY_HEADERS
    }
