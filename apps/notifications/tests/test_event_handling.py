"""The acknowledgement rule of issue 12, case by case: a 2xx only once the event's record is written (or it is a
duplicate of one whose record was), a 4xx with a reason for the sender's mistakes, 5xx/409/429 only for our own
transient faults; a dedup entry is committed after the record is written and released when writing fails.
Then transient failures, bugs and concurrent redeliveries against a server whose sink misbehaves on purpose
(notifications_flaky_app), and, in process, the payload decoding (decode_payload)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest
from notifications import cloudevent
from notifications.app import create_app
from notifications.errors import MalformedEvent
from notifications.event_handling import decode_payload
from notifications.json_logging import EVENT_LOGGER, JsonLinesHandler, configure_logging
from notifications.models import LogRecord, Notification
from notifications.settings import Settings
from notifications_testkit import BASE, LiveServer, binary_event, raw, start_server, stop_server

pytest_plugins = ["notifications_fixtures"]
pytestmark = pytest.mark.timeout(60)

NOTIFICATIONS = "/events/notifications"
LOGGINGS = "/events/loggings"
ROUTES = (NOTIFICATIONS, LOGGINGS)
STRUCTURED = {"content-type": "application/cloudevents+json"}


def log_record(**attributes: object) -> dict:
    return orjson.loads(LogRecord.example().model_dump_json()) | {"attributes": attributes}


def structured(raw: dict[str, bytes] | None = None, **fields: object) -> bytes:
    """A structured-mode event; `raw` members are spliced in as JSON text (orjson cannot write > 255 levels)."""
    document = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/tests", "type": "t"} | fields
    spliced = b"".join(b',"%s":%s' % (name.encode(), value) for name, value in (raw or {}).items())
    return orjson.dumps(document)[:-1] + spliced + b"}"


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# Case 1: an integer above 2**64 in a log record attribute used to fail the log line after the dedup entry was
# committed: 500, then 202 "duplicate" on the retry, and no record ever.


def test_integer_beyond_64_bits_is_recorded_then_answered_duplicate(
    client: httpx.Client, live_server: LiveServer
) -> None:
    huge = 2**70 + 1
    body = b'{"timestamp":"2026-11-26T07:12:03Z","level":"INFO","service":"s","message":"m","attributes":{"n":%d}}'
    headers, _, ce_id = binary_event("loggings")

    first = client.post(LOGGINGS, headers=headers, content=body % huge)
    retry = client.post(LOGGINGS, headers=headers, content=body % huge)

    assert (first.status_code, retry.status_code) == (202, 202)
    live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id and e["outcome"] == "duplicate")
    [processed] = [e for e in live_server.events_for(ce_id) if e["outcome"] == "processed"]
    assert processed["record"]["attributes"]["n"] == str(huge)  # JSON lines hold 64-bit integers; this as text


# Case 2: an extension nested deeper than orjson writes (255) was a 500 on every retry. Objects are not CloudEvents attribute values at all: 400 on every route.


@pytest.mark.parametrize("route", ROUTES)
def test_nested_extension_is_a_400_on_every_route(client: httpx.Client, route: str) -> None:
    body = structured({"comexampledeep": nested(300)}, data=log_record())
    response = client.post(route, headers=STRUCTURED, content=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_attribute"


@pytest.mark.parametrize(
    "value", [b'{"a":1}', b"[1]", b"1.5", b"2147483648", b"-2147483649", b"1" * 30], ids=["object", "array", "fraction", "int32+1",
                                                                    "int32-1", "huge"]
)  # fmt: skip
def test_attribute_values_outside_the_cloudevents_type_system_are_400(client: httpx.Client, value: bytes) -> None:
    response = client.post(LOGGINGS, headers=STRUCTURED, content=structured({"comexamplex": value}, data={}))
    assert response.status_code == 400
    assert response.json()["error"] == "bad_attribute"


def test_null_attribute_counts_as_unset_and_32_bit_integers_are_accepted(
    client: httpx.Client, live_server: LiveServer
) -> None:
    ce_id = str(uuid.uuid4())
    body = structured(id=ce_id, data=log_record(), subject=None, comexamplecount=2**31 - 1, comexampleflag=True)
    assert client.post(LOGGINGS, headers=STRUCTURED, content=body).status_code == 202
    [line] = live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id)
    assert "ce_subject" not in line


# Case 3: a non-ASCII data_base64 raised an uncaught ValueError: 500 on every retry.


@pytest.mark.parametrize("route", ROUTES)
def test_non_ascii_data_base64_is_a_400(client: httpx.Client, route: str) -> None:
    response = client.post(route, headers=STRUCTURED, content=structured(data_base64="é3sifQ=="))
    assert response.status_code == 400
    assert response.json()["error"] == "bad_attribute"


@pytest.mark.parametrize("offset", ["²", "9" * 5000, "1" * 40])
def test_kafka_offsets_that_are_not_int64_numbers_are_recorded_as_text(
    client: httpx.Client, live_server: LiveServer, offset: str
) -> None:
    headers, body, ce_id = binary_event()
    headers["ce-knativekafkaoffset"] = offset.encode().decode("latin-1") if offset.isascii() else "%C2%B2"
    assert client.post(NOTIFICATIONS, headers=headers, content=body).status_code == 202
    [line] = live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id)
    assert line["kafka_offset"] == offset


# A record that cannot be written (stdout gone, disk full) is our transient fault: 503, the dedup claim released,
# so the redelivery is processed and recorded.


def only_our_handler() -> None:
    """The production logging setup: pytest adds its capture handlers to the root logger for each test phase, and
    any other handler sends records through the stdlib path, which reports write errors instead of raising."""
    root = logging.getLogger()
    root.handlers[:] = [handler for handler in root.handlers if type(handler) is JsonLinesHandler]


@pytest.fixture
def logging_to_pipe() -> Iterator[tuple[int, int]]:
    root = logging.getLogger()
    httpx_logger = logging.getLogger("httpx")
    saved = (root.handlers[:], root.level, logging.getLogger(EVENT_LOGGER).level, httpx_logger.level)
    read_end, write_end = os.pipe()
    configure_logging("INFO", write_end)
    httpx_logger.setLevel(logging.WARNING)  # its request lines are not what these tests read
    try:
        yield read_end, write_end
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger(EVENT_LOGGER).setLevel(saved[2])
        httpx_logger.setLevel(saved[3])
        for fd in (read_end, write_end):
            with contextlib.suppress(OSError):
                os.close(fd)


def test_record_write_failure_is_503_and_the_redelivery_is_processed(logging_to_pipe: tuple[int, int]) -> None:
    asyncio.run(_record_write_failure(*logging_to_pipe))


async def _record_write_failure(read_end: int, write_end: int) -> None:
    only_our_handler()
    app = create_app(Settings())
    headers, body, ce_id = binary_event()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        os.close(read_end)  # every write to the pipe now fails with EPIPE
        failed = await http.post(NOTIFICATIONS, headers=headers, content=body)
        read_end, new_write_end = os.pipe()
        os.dup2(new_write_end, write_end)  # the log destination is back
        os.close(new_write_end)
        retried = await http.post(NOTIFICATIONS, headers=headers, content=body)
        again = await http.post(NOTIFICATIONS, headers=headers, content=body)
    lines = [orjson.loads(line) for line in os.read(read_end, 1 << 20).splitlines()]
    os.close(read_end)

    assert (failed.status_code, failed.json()["error"]) == (503, "record_not_written")
    assert (retried.status_code, again.status_code) == (202, 202)
    assert [line["outcome"] for line in lines if line.get("ce_id") == ce_id] == ["processed", "duplicate"]
    assert app.state.dedup["notifications"].in_flight == 0


def test_records_are_written_whatever_log_level_says(logging_to_pipe: tuple[int, int]) -> None:
    asyncio.run(_records_whatever_log_level(*logging_to_pipe))


async def _records_whatever_log_level(read_end: int, write_end: int) -> None:
    configure_logging("ERROR", write_end)
    only_our_handler()
    app = create_app(Settings())
    headers, body, ce_id = binary_event()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        assert (await http.post(NOTIFICATIONS, headers=headers, content=body)).status_code == 202
    [line] = [orjson.loads(line) for line in os.read(read_end, 1 << 20).splitlines()]
    assert (line["ce_id"], line["outcome"]) == (ce_id, "processed")


# Transient failures and bugs in processing, and a redelivery while the first is in flight: a server whose
# notification sink misbehaves on purpose (notifications_flaky_app).

FACTORY = "notifications_flaky_app:create_app"


@pytest.fixture(scope="module")
def flaky_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("flaky"), factory=FACTORY)
    yield server
    stop_server(server)


def test_transient_failure_is_503_and_the_redelivery_is_processed(flaky_server: LiveServer) -> None:
    headers, body, ce_id = binary_event(key="fail-once-1")
    with httpx.Client(base_url=flaky_server.url) as client:
        first = client.post(NOTIFICATIONS, headers=headers, content=body)
        second = client.post(NOTIFICATIONS, headers=headers, content=body)
        third = client.post(NOTIFICATIONS, headers=headers, content=body)

    assert first.status_code == 503  # retried by the Kafka dispatcher
    assert first.json()["error"] == "transient_failure"
    assert (second.status_code, second.content) == (202, b"")
    assert third.status_code == 202
    flaky_server.wait_for_log(lambda e: e.get("ce_id") == ce_id and e["outcome"] == "duplicate")
    assert [e["outcome"] for e in flaky_server.events_for(ce_id)] == ["retry", "processed", "duplicate"]


def test_bug_in_processing_is_a_retryable_500_and_the_worker_survives(flaky_server: LiveServer) -> None:
    headers, body, ce_id = binary_event(key="crash")
    with httpx.Client(base_url=flaky_server.url) as client:
        response = client.post(NOTIFICATIONS, headers=headers, content=body)
        assert response.status_code == 500
        assert client.get("/healthz").status_code == 200
    [line] = flaky_server.wait_for_log(lambda e: e.get("ce_id") == ce_id)
    assert "RuntimeError: bug in the sink" in line["exception"]


def test_concurrent_redelivery_of_an_in_flight_event_gets_a_retryable_409(flaky_server: LiveServer) -> None:
    headers, body, ce_id = binary_event(key="slow-1")
    results: list[int] = []

    def post() -> None:
        results.append(httpx.post(flaky_server.url + NOTIFICATIONS, headers=headers, content=body).status_code)

    first = threading.Thread(target=post)
    first.start()
    time.sleep(0.3)
    post()
    first.join()

    assert sorted(results) == [202, 409]
    outcomes = sorted(e["outcome"] for e in flaky_server.events_for(ce_id))
    assert outcomes == ["in_flight", "processed"]


# In process: the decoding helpers.


class TestDecodePayload:
    def test_structured_json_string_data_is_parsed(self) -> None:
        document = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t",
                    "data": Notification.example().model_dump_json()}  # fmt: skip
        event = cloudevent.from_http(raw({"content-type": "application/cloudevents+json"}), orjson.dumps(document))
        assert decode_payload(event, Notification) == Notification.example()

    def test_validation_detail_names_the_field(self) -> None:
        payload = orjson.loads(Notification.example().model_dump_json()) | {"priority": "urgent"}
        event = cloudevent.from_http(raw(BASE), orjson.dumps(payload))
        with pytest.raises(MalformedEvent) as caught:
            decode_payload(event, Notification)
        assert caught.value.status == 422
        assert caught.value.detail.startswith("priority:")
