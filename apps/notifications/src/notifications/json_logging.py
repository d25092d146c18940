"""One JSON object per line on stdout, for the cluster's log pipeline.

Structured fields travel in `extra={"fields": {...}}`. Lines are written with `os.write` on the raw fd: no
buffering to lose on a crash, and no interleaving of partial lines.

The per-event line is the event's record, so serialising it must not fail for any value an event can carry:
`dumps_line` tries orjson as is (the fast path every ordinary event takes) and, only when orjson refuses a value,
rewrites the entry into something JSON can hold (see `json_safe`) and serialises that.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

FIELDS_ATTR = "fields"
EVENT_LOGGER = "notifications.events"
_LEVEL_NAMES = {level: logging.getLevelName(level) for level in (10, 20, 30, 40, 50)}


MAX_DEPTH = 64
"""Containers nested deeper are written as a marker. orjson refuses more than 255 levels; a log line needs far
fewer, and a hostile event may nest up to the parser's own limit (1024 for orjson.loads)."""
_TOO_DEEP = "<nested deeper than 64 levels: omitted>"
_INT64 = range(-(2**63), 2**64)
"""orjson writes integers in [-2**63, 2**64); beyond that it raises."""


def _default(value: Any) -> str:
    return _safe_str(value)


def _safe_str(value: Any) -> str:
    try:
        text = str(value)
    except Exception:  # a hostile __str__, or an int beyond sys.get_int_max_str_digits()
        text = hex(value) if isinstance(value, int) else f"<unprintable {type(value).__name__}>"
    return _valid_utf8(text)


def _valid_utf8(text: str) -> str:
    """Lone surrogates (from `surrogateescape` decoding or a `\\udXXX` escape) are not UTF-8; write them escaped."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def json_safe(value: Any, depth: int = 0) -> Any:
    """A copy of `value` that orjson can always write: integers outside 64 bits and any other non-JSON scalar
    become strings, dict keys become strings, surrogates are escaped, nesting is cut at MAX_DEPTH. NaN and
    infinities stay floats: orjson writes them as null, JSON having no such numbers."""
    if isinstance(value, str):
        return _valid_utf8(value)
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if value in _INT64 else _safe_str(value)
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            return _TOO_DEEP
        if isinstance(value, dict):
            return {
                (_valid_utf8(key) if isinstance(key, str) else _safe_str(key)): json_safe(item, depth + 1)
                for key, item in value.items()
            }
        return [json_safe(item, depth + 1) for item in value]
    return _safe_str(value)


def dumps_line(entry: dict[str, Any]) -> bytes:
    """One JSON line for `entry`, whatever it holds (see the module docstring)."""
    try:
        return orjson.dumps(entry, default=_default, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError: a big int, deep nesting, a non-str key, a surrogate
        return orjson.dumps(json_safe(entry), default=_default, option=orjson.OPT_APPEND_NEWLINE)


def _entry(created: float, level_name: str, logger: str, message: str) -> dict[str, Any]:
    return {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level_name,
        "logger": logger,
        "message": message,
    }


def format_record(record: logging.LogRecord) -> bytes:
    entry = _entry(record.created, record.levelname, record.name, record.getMessage())
    fields = getattr(record, FIELDS_ATTR, None)
    if fields:
        entry.update(fields)
    if record.exc_info:
        entry["exception"] = "".join(traceback.format_exception(*record.exc_info))
    return dumps_line(entry)


class JsonLinesHandler(logging.Handler):
    def __init__(self, fd: int | None = None) -> None:
        super().__init__()
        self._fd = sys.stdout.fileno() if fd is None else fd
        self._stamp_millis = -1
        self._stamp = ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(format_record(record))
        except Exception:
            self.handleError(record)

    def emit_fields(self, level: int, logger: str, message: str, fields: dict[str, Any]) -> None:
        """Write one line; unlike `emit`, an OSError from the write propagates: the caller decides whether an
        event whose record could not be written may be acknowledged (it may not)."""
        millis = time.time_ns() // 1_000_000
        if millis != self._stamp_millis:  # several lines per millisecond under load: format the time once
            self._stamp_millis = millis
            self._stamp = datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")
        entry = {
            "time": self._stamp,
            "level": _LEVEL_NAMES.get(level) or logging.getLevelName(level),
            "logger": logger,
            "message": message,
        }
        entry.update(fields)
        line = dumps_line(entry)
        with self.lock:
            self._write(line)

    def _write(self, line: bytes) -> None:
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]


class StructuredLogger:
    """`logger.log(level, message, extra={"fields": ...})`, minus the LogRecord when nothing needs one.

    When the records would only reach our JsonLinesHandler on the root logger (the production setup), the line
    is written directly, which halves the cost of the per-event log line. Any other configuration (a test's
    caplog, an extra handler or filter) goes through the standard logging machinery unchanged.
    """

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def log(self, level: int, message: str, fields: dict[str, Any]) -> None:
        """Raises OSError when the line could not be written (production path); never fails on a value."""
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        handler = self._sole_json_handler(level)
        if handler is None:
            # Other handlers format the fields their own way; hand them values any JSON writer accepts.
            logger.log(level, message, extra={FIELDS_ATTR: json_safe(fields)})
        else:
            handler.emit_fields(level, logger.name, message, fields)

    def _sole_json_handler(self, level: int) -> JsonLinesHandler | None:
        logger = self.logger
        if logger.handlers or logger.filters or not logger.propagate or logger.disabled:
            return None
        parent = logger.parent
        while parent is not None and parent.parent is not None:
            if parent.handlers or parent.filters or not parent.propagate:
                return None
            parent = parent.parent
        root = logging.getLogger()
        if root.filters or len(root.handlers) != 1:
            return None
        handler = root.handlers[0]
        if type(handler) is not JsonLinesHandler or handler.filters or level < handler.level:
            return None
        return handler


def configure_logging(level: str | int = "INFO", fd: int | None = None) -> None:
    """Route the root logger and uvicorn's loggers to JSON lines; drop uvicorn's access log (we log each event
    once, with its CloudEvent attributes, which an access line would only duplicate)."""
    # Documented logging optimisations (Logging HOWTO, "Optimization"): none of these fields is ever emitted.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(JsonLinesHandler(fd))
    root.setLevel(level)
    # Each event's line is its record (a 2xx is only sent once it is written): LOG_LEVEL filters diagnostics,
    # never records, so the event logger stays at INFO or below whatever the root level is.
    events = logging.getLogger(EVENT_LOGGER)
    events.setLevel(min(logging.INFO, logging.getLevelName(level) if isinstance(level, str) else level))
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
