"""One JSON object per line on stdout, for the cluster's log pipeline.

Structured fields travel in `extra={"fields": {...}}`. Lines are written with `os.write` on the raw fd: no
buffering to lose on a crash, and no interleaving of partial lines.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

FIELDS_ATTR = "fields"


def _default(value: Any) -> str:
    return str(value)


def format_record(record: logging.LogRecord) -> bytes:
    entry: dict[str, Any] = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "message": record.getMessage(),
    }
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

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = format_record(record)
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except Exception:
            self.handleError(record)


def configure_logging(level: str | int = "INFO", fd: int | None = None) -> None:
    """Route the root logger and uvicorn's loggers to JSON lines; drop uvicorn's access log (we log each event
    once, with its CloudEvent attributes, which an access line would only duplicate)."""
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
