"""The record writer never fails on a value: every line it writes is one JSON object, whatever the event held;
and a line written directly is the one the stdlib logging path writes."""

from __future__ import annotations

import logging
import math
import os
import uuid

import orjson
import pytest
from notifications.json_logging import (
    MAX_DEPTH,
    JsonLinesHandler,
    StructuredLogger,
    configure_logging,
    dumps_line,
    json_safe,
)


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def deep_list(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "written"),
    [
        pytest.param(2**64, str(2**64), id="int-above-64-bits"),
        pytest.param(-(2**63) - 1, str(-(2**63) - 1), id="int-below-int64"),
        pytest.param(10**5000, hex(10**5000), id="int-beyond-str-digits-limit"),
        pytest.param({1: "a", None: "b", (1, 2): "c"}, {"1": "a", "None": "b", "(1, 2)": "c"}, id="non-str-keys"),
        pytest.param("a\ud800b", "a\\ud800b", id="lone-surrogate"),
        pytest.param({"k\udcff": 1}, {"k\\udcff": 1}, id="surrogate-key"),
        pytest.param(Unprintable(), "<unprintable Unprintable>", id="unprintable-object"),
        pytest.param(b"raw", "b'raw'", id="bytes"),
    ],
)
def test_values_orjson_refuses_are_written_as_text(value: object, written: object) -> None:
    line = dumps_line({"value": value, "n": 1})
    assert line.endswith(b"\n")
    assert orjson.loads(line) == {"value": written, "n": 1}


def test_nesting_is_cut_at_max_depth() -> None:
    line = orjson.loads(dumps_line({"value": deep_list(1000), "bigint": 2**70}))
    depth, value = 0, line["value"]
    while isinstance(value, list):
        depth, value = depth + 1, value[0]
    assert depth == MAX_DEPTH - 1  # the entry itself is level 0
    assert value == "<nested deeper than 64 levels: omitted>"


def test_nan_and_infinity_are_written_as_null() -> None:
    assert orjson.loads(dumps_line({"a": math.nan, "b": math.inf, "c": 2**70})) == {
        "a": None,
        "b": None,
        "c": str(2**70),
    }


def test_ordinary_entries_are_written_unchanged() -> None:
    entry = {"route": "loggings", "n": 2**63, "nested": {"a": [1, 2.5, True, None]}}
    assert orjson.loads(dumps_line(entry)) == entry
    assert json_safe(entry) == entry


_LOGGING_FLAGS = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")


def test_direct_log_lines_match_the_stdlib_path(tmp_path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    root = logging.getLogger()
    access = logging.getLogger("uvicorn.access")
    saved = (root.handlers[:], root.level, access.disabled, access.propagate)
    saved_flags = {name: getattr(logging, name) for name in _LOGGING_FLAGS}
    try:
        configure_logging("INFO", fd)
        events = StructuredLogger(f"notifications.test.{uuid.uuid4().hex}")
        events.log(logging.INFO, "direct", {"ce_id": "1"})
        events.log(logging.DEBUG, "filtered", {"ce_id": "2"})
        extra = JsonLinesHandler(fd)
        events.logger.addHandler(extra)  # any other handler forces the stdlib path
        events.log(logging.WARNING, "stdlib", {"ce_id": "3"})
        events.logger.removeHandler(extra)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        access.disabled, access.propagate = saved[2], saved[3]
        for name, value in saved_flags.items():
            setattr(logging, name, value)
        os.close(fd)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [(line["message"], line["level"], line["ce_id"]) for line in lines] == [
        ("direct", "INFO", "1"),
        ("stdlib", "WARNING", "3"),  # written by the extra handler
        ("stdlib", "WARNING", "3"),  # propagated to the root handler
    ]
    assert all(line.keys() >= {"time", "level", "logger", "message"} for line in lines)
