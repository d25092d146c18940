"""One JSON object per line on stdout, for the cluster's log pipeline.

Structured fields travel in `extra={"fields": {...}}`. Lines are written with `os.write` on the raw fd: no
buffering to lose on a crash, and no interleaving of partial lines.
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
_LEVEL_NAMES = {level: logging.getLevelName(level) for level in (10, 20, 30, 40, 50)}


def _default(value: Any) -> str:
    return str(value)


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
    return orjson.dumps(entry, default=_default, option=orjson.OPT_APPEND_NEWLINE)


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
        line = orjson.dumps(entry, default=_default, option=orjson.OPT_APPEND_NEWLINE)
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
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        handler = self._sole_json_handler(level)
        if handler is None:
            logger.log(level, message, extra={FIELDS_ATTR: fields})
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
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
