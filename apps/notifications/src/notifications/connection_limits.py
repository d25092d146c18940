"""Bounded time and memory per connection: the limits uvicorn's httptools protocol does not have.

uvicorn 0.54 (pinned) offers `timeout_keep_alive` (idle time between requests, armed only after a first
response), `limit_concurrency` (503 once that many connections or requests exist) and
`h11_max_incomplete_event_size` (h11 only; the httptools protocol has no equivalent). It has no header-read or
body-read timeout and no header count or size limit, so a client can hold a connection forever by sending a
byte now and then, stream a chunked body that never ends, or make the parser call back once per header for as
many headers as it sends. `BoundedHttpToolsProtocol` adds exactly that, at the layer that sees the bytes:

- a new connection gets uvicorn's keep-alive timer at once (uvicorn arms it only after a first response);
- the request line and headers must arrive within `header_timeout` of the request's first byte, the body within
  `body_timeout` of the end of the headers; otherwise 408 and the connection is closed;
- more than `max_header_count` headers, or more than `max_header_bytes` of request line and headers, is a 431
  and a closed connection, decided while parsing (so a flood of headers costs at most that many callbacks) and,
  for one endless header line, from the bytes received;
- a request answered before its body was read (a 413 for an over-long body, a 401) keeps uvicorn's behaviour:
  the rest of the body is read and discarded, so the connection stays usable (RFC 9112 9.3 allows that or
  closing; closing with unread data makes the kernel send a reset that can destroy the answer before the client
  reads it), but now only until the body deadline: a body that never ends is cut off there.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_seconds: float = 10.0
    """queue-proxy and the Kafka dispatcher send a request's head in one write; 10 s is generous for them."""
    body_timeout_seconds: float = 10.0
    """Bodies are at most a topic's largest record (1 MiB) and sent whole; a body still arriving after 10 s is not."""
    max_header_count: int = 128
    """A KafkaSource event carries ~10 ce- headers plus one per Kafka record header, and queue-proxy adds ~10."""
    max_header_bytes: int = 64 * 1024
    """Request line plus all header names and values. CloudEvents attributes are short; 64 KiB also bounds
    what one connection can make the parser buffer before the headers end."""
    keep_alive_seconds: int = 75
    """uvicorn's `timeout_keep_alive`: how long an idle connection is kept. Longer than queue-proxy's idle
    connection reuse needs, short enough that idle sockets do not pile up; now also applied to new connections."""
    limit_concurrency: int = 64
    """uvicorn's own limit: beyond this many open connections or in-flight requests, new requests get 503
    (retried by the dispatcher). Bounds request buffers to 64 x (64 KiB + 2 x the body limit: the chunks and their
    join), 132 MiB with 1 MiB records (docs/notifications-limits.md, "Worst-case memory"); above Knative's
    per-pod target of 50 concurrent requests (deploy/service.yaml), so the autoscaler adds pods first."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConnectionLimits:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            header_timeout_seconds=float(env.get("HEADER_TIMEOUT_SECONDS", defaults.header_timeout_seconds)),
            body_timeout_seconds=float(env.get("BODY_TIMEOUT_SECONDS", defaults.body_timeout_seconds)),
            max_header_count=int(env.get("MAX_HEADER_COUNT", defaults.max_header_count)),
            max_header_bytes=int(env.get("MAX_HEADER_BYTES", defaults.max_header_bytes)),
            keep_alive_seconds=int(env.get("KEEP_ALIVE_SECONDS", defaults.keep_alive_seconds)),
            limit_concurrency=int(env.get("LIMIT_CONCURRENCY", defaults.limit_concurrency)),
        )


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop httptools mid-buffer; httptools re-raises it as the context of an
    HttpParserCallbackError."""


_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def _error_response(status: int, reason: str, detail: str) -> bytes:
    # The same JSON error body the app sends, so a dead letter's knativeerrordata reads the same either way.
    body = orjson.dumps({"error": reason, "detail": detail})
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
    return head % (status, _REASONS[status], len(body)) + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits in the module docstring. Built by `protocol_class`.

    Cheap per request on purpose (it runs for every event): a deadline is a float on the connection, checked by
    one sweeper per server every `sweep_seconds` rather than a timer armed and cancelled twice per request, and
    the header callback does its own bookkeeping instead of calling up to uvicorn's.
    """

    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline_at: float | None = None
        self._deadline_part = ""
        self._reading_head = True
        self._head_bytes = 0
        self._parsed_head_bytes = 0
        self._header_count = 0
        self._rejected = False
        # Read once per header of every request: instance attributes, not a lookup through `limits`.
        self._max_header_count = self.limits.max_header_count
        self._max_header_bytes = self.limits.max_header_bytes

    # Connection lifetime

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn arms the keep-alive timer only after a response; a connection that never sends a byte would
        # otherwise be held forever.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        _DeadlineSweeper.ensure_running(self.server_state, self.loop, self.limits)

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, plus: our own rejections raised from parser callbacks, and the byte count of
        # an unfinished head (httptools buffers a header line internally until it ends).
        self._unset_keepalive_if_required()
        if self._reading_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self._rejected:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return
        if self._reading_head and self._head_bytes - len(data) > self.limits.max_header_bytes:
            # One header line (or URL) longer than the limit, arriving over several reads: the bytes received
            # before this read already exceed the limit. Bounds what httptools buffers to the limit plus one read.
            self._head_too_large()

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._parsed_head_bytes = 0
        self._header_count = 0
        self._deadline_at = self.loop.time() + self.limits.header_timeout_seconds
        self._deadline_part = "headers"

    def on_header(self, name: bytes, value: bytes) -> None:
        count = self._header_count = self._header_count + 1
        size = self._parsed_head_bytes = self._parsed_head_bytes + len(name) + len(value) + 4  # ": " and CRLF
        if count > self._max_header_count or size > self._max_header_bytes:
            if count > self._max_header_count:
                self._reject(431, "too_many_headers", f"more than {self._max_header_count} headers")
            else:
                self._head_too_large()
            raise _HeadTooLarge  # stops httptools in the middle of the buffer: no callback for the rest
        # uvicorn's own on_header (0.54), inlined: this runs once per header of every request.
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if len(self.url) + self._parsed_head_bytes > self.limits.max_header_bytes:
            self._head_too_large()
            raise _HeadTooLarge
        self._reading_head = False
        self._head_bytes = 0
        self._deadline_at = self.loop.time() + self.limits.body_timeout_seconds
        self._deadline_part = "body"
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._deadline_at = None
        self._reading_head = True
        super().on_message_complete()

    # Helpers

    def timed_out(self, now: float) -> bool:
        deadline = self._deadline_at
        if deadline is None or deadline > now:
            return False
        seconds = (
            self.limits.header_timeout_seconds if self._deadline_part == "headers" else self.limits.body_timeout_seconds
        )
        self._reject(408, "request_timeout", f"request {self._deadline_part} not received within {seconds:g}s")
        return True

    def _head_too_large(self) -> None:
        self._reject(431, "headers_too_large", f"request line and headers exceed {self.limits.max_header_bytes} bytes")

    def _reject(self, status: int, reason: str, detail: str) -> None:
        """Answer `status` unless a response has started, then close. An ASGI task already running for this
        request sees a disconnect (uvicorn's connection_lost) and its own response is dropped."""
        self._deadline_at = None
        if self._rejected or self.transport.is_closing():
            return
        self._rejected = True
        cycle = self.cycle
        if self._reading_head:  # a new request's head; any cycle is the previous request's
            no_answer_yet = cycle is None or cycle.response_complete
        else:  # this request's body: it may have been answered already (a 413 or 401 before the body ended)
            no_answer_yet = cycle is not None and not cycle.response_started
        if no_answer_yet:
            self.transport.write(_error_response(status, reason, detail))
        self.logger.warning("closing connection: %s", detail)
        self.transport.close()


class _DeadlineSweeper:
    """One per server: every `sweep_seconds`, rejects the connections whose head or body deadline has passed.
    A deadline therefore fires up to `sweep_seconds` late, which is what one check per second instead of two
    timers per request costs. Stops when no connection is left and starts again with the next one."""

    _ATTRIBUTE = "notifications_deadline_sweeper"

    @classmethod
    def ensure_running(cls, state: Any, loop: asyncio.AbstractEventLoop, limits: ConnectionLimits) -> None:
        if getattr(state, cls._ATTRIBUTE, None) is None:
            every = min(1.0, limits.header_timeout_seconds / 2, limits.body_timeout_seconds / 2)
            setattr(state, cls._ATTRIBUTE, loop.call_later(every, cls._sweep, state, loop, every))

    @classmethod
    def _sweep(cls, state: Any, loop: asyncio.AbstractEventLoop, every: float) -> None:
        now = loop.time()
        for connection in list(state.connections):
            if isinstance(connection, BoundedHttpToolsProtocol):
                connection.timed_out(now)
        handle = loop.call_later(every, cls._sweep, state, loop, every) if state.connections else None
        setattr(state, cls._ATTRIBUTE, handle)


def protocol_class(limits: ConnectionLimits) -> type[BoundedHttpToolsProtocol]:
    """A BoundedHttpToolsProtocol subclass carrying `limits`, for `uvicorn.Config(http=...)` (which takes a
    protocol class and instantiates it per connection with uvicorn's own arguments)."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})
