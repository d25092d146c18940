"""The production server over loopback: what the Kafka broker dispatcher sees for each kind of request; last, in
process, the routes the app must serve as plain routes."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import socket
import uuid

import httpx
import orjson
import pytest
from fastapi.routing import APIRoute
from notifications.app import create_app
from notifications.models import LogRecord, Notification
from notifications_testkit import LiveServer, binary_event, structured_event
from starlette.routing import Mount

pytest_plugins = ["notifications_fixtures"]
pytestmark = pytest.mark.timeout(60)

NOTIFICATIONS = "/events/notifications"
LOGGINGS = "/events/loggings"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def notification(**overrides) -> dict:
    payload = orjson.loads(Notification.example().model_dump_json())
    payload["notification_id"] = str(uuid.uuid4())
    payload.update(overrides)
    return payload


def assert_rejected(response: httpx.Response, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == reason
    # The body becomes the dead-letter event's knativeerrordata, which holds at most 1024 bytes.
    assert len(response.content) < 1024


def test_binary_kafka_source_event_is_accepted_with_empty_body_and_logged(
    client: httpx.Client, live_server: LiveServer
) -> None:
    headers, body, ce_id = binary_event(data=notification(), partition=3, offset=564, key="user-42")
    response = client.post(NOTIFICATIONS, headers={**headers, "traceparent": TRACEPARENT}, content=body)

    assert response.status_code == 202
    assert response.content == b""
    [line] = live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id)
    assert line["level"] == "INFO"
    assert line["outcome"] == "processed"
    assert line["ce_type"] == "dev.knative.kafka.event"
    assert line["ce_source"] == "/apis/v1/namespaces/notifications/kafkasources/kafka-source#notifications"
    assert line["ce_subject"] == "partition:3#564"
    assert (line["kafka_partition"], line["kafka_offset"], line["kafka_key"]) == (3, 564, "user-42")
    assert line["traceparent"] == TRACEPARENT
    assert line["notification"]["channel"] == "email"


def test_structured_event_is_accepted(client: httpx.Client, live_server: LiveServer) -> None:
    headers, body, ce_id = structured_event()
    assert headers["content-type"].startswith("application/cloudevents+json")

    response = client.post(NOTIFICATIONS, headers=headers, content=body)

    assert (response.status_code, response.content) == (202, b"")
    [line] = live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id)
    assert line["outcome"] == "processed"


def test_record_that_already_was_a_cloudevent_keeps_its_own_attributes(
    client: httpx.Client, live_server: LiveServer
) -> None:
    ce_id = str(uuid.uuid4())
    headers = {
        "ce-specversion": "1.0",
        "ce-id": ce_id,
        "ce-source": "https://checkout.example.com/orders",
        "ce-type": "com.example.notification.requested",
        "ce-traceparent": TRACEPARENT,
        "ce-knativekafkapartition": "1",
        "ce-knativekafkaoffset": "77",
        "content-type": "application/json; charset=utf-8",
    }
    response = client.post(NOTIFICATIONS, headers=headers, content=orjson.dumps(notification()))

    assert response.status_code == 202
    [line] = live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id)
    assert line["ce_type"] == "com.example.notification.requested"
    assert (line["kafka_partition"], line["kafka_offset"]) == (1, 77)
    assert line["traceparent"] == TRACEPARENT
    assert "kafka_key" not in line


def test_log_record_event_is_emitted_at_its_own_level_but_never_below_info(
    client: httpx.Client, live_server: LiveServer
) -> None:
    debug = orjson.loads(LogRecord.example().model_dump_json()) | {"level": "debug", "message": "cache miss"}
    headers, body, debug_id = binary_event("loggings", data=debug)
    assert client.post(LOGGINGS, headers=headers, content=body).status_code == 202
    headers, body, error_id = binary_event("loggings")
    assert client.post(LOGGINGS, headers=headers, content=body).status_code == 202

    [debug_line] = live_server.wait_for_log(lambda e: e.get("ce_id") == debug_id)
    [error_line] = live_server.wait_for_log(lambda e: e.get("ce_id") == error_id)
    assert debug_line["level"] == "INFO"
    assert debug_line["record"]["level"] == "DEBUG"
    assert debug_line["record"]["message"] == "cache miss"
    assert error_line["level"] == "ERROR"
    assert error_line["record"]["service"] == "checkout"


def test_duplicate_delivery_is_acknowledged_but_processed_once(client: httpx.Client, live_server: LiveServer) -> None:
    headers, body, ce_id = binary_event()
    first = client.post(NOTIFICATIONS, headers=headers, content=body)
    second = client.post(NOTIFICATIONS, headers=headers, content=body)

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.content == b""
    live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id and e["outcome"] == "duplicate")
    outcomes = sorted(line["outcome"] for line in live_server.events_for(ce_id))
    assert outcomes == ["duplicate", "processed"]
    metrics = client.get("/metrics").text
    assert 'notifications_duplicate_events_total{route="notifications"}' in metrics


def test_a_forged_copy_cannot_suppress_the_genuine_event(client: httpx.Client, live_server: LiveServer) -> None:
    """Issue 30: a record claiming another topic's source and its next `partition:<p>/offset:<o>` id used to make
    the genuine event at that offset a 202 `duplicate`, never processed. Same (source, id), other content: a
    collision, processed and counted; only a true redelivery of the genuine event is a duplicate."""
    offset = 303_030
    forged_data = orjson.loads(LogRecord.example().model_dump_json()) | {"message": "forged"}
    forged_headers, forged_body, ce_id = binary_event("loggings", data=forged_data, offset=offset)
    genuine_headers, genuine_body, _ = binary_event("loggings", offset=offset)
    for headers, body in (
        (forged_headers, forged_body),
        (genuine_headers, genuine_body),
        (genuine_headers, genuine_body),
    ):
        response = client.post(LOGGINGS, headers=headers, content=body)
        assert (response.status_code, response.content) == (202, b"")

    live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id and e["outcome"] == "duplicate")
    lines = live_server.events_for(ce_id)
    assert [line["outcome"] for line in lines] == ["processed", "id_collision", "processed", "duplicate"]
    assert next(line["record"]["message"] for line in lines if line["outcome"] == "processed") == "forged"
    assert lines[1]["level"] == "WARNING"
    metrics = client.get("/metrics").text
    assert 'notifications_dedup_collisions_total{route="loggings"} 1.0' in metrics


def test_dedup_state_is_per_route(client: httpx.Client, live_server: LiveServer) -> None:
    """An event processed at one route never answers for another route's event with the same identity."""
    offset = 404_040
    source_name = "per-route"
    headers, body, ce_id = binary_event("notifications", offset=offset, source_name=source_name)
    log_headers, log_body, _ = binary_event("loggings", offset=offset, source_name=source_name)
    log_headers["ce-source"] = headers["ce-source"]
    assert client.post(NOTIFICATIONS, headers=headers, content=body).status_code == 202
    assert client.post(LOGGINGS, headers=log_headers, content=log_body).status_code == 202
    live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id and e["route"] == "loggings")
    assert [(line["route"], line["outcome"]) for line in live_server.events_for(ce_id)] == [
        ("notifications", "processed"),
        ("loggings", "processed"),
    ]


def test_same_id_from_another_source_is_not_a_duplicate(client: httpx.Client, live_server: LiveServer) -> None:
    headers, body, ce_id = binary_event(offset=4242424, source_name="source-a")
    other_headers, other_body, _ = binary_event(offset=4242424, source_name="source-b")
    assert client.post(NOTIFICATIONS, headers=headers, content=body).status_code == 202
    assert client.post(NOTIFICATIONS, headers=other_headers, content=other_body).status_code == 202
    live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id and "source-b" in e["ce_source"])
    assert [line["outcome"] for line in live_server.events_for(ce_id)] == ["processed", "processed"]


@pytest.mark.parametrize(
    ("mutate", "status", "reason"),
    [
        pytest.param(lambda h, b: (h, b'{"notification_id": '), 400, "invalid_json", id="bad-json"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if k != "ce-id"}, b), 400, "missing_attribute",
                     id="missing-id"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if k != "ce-source"}, b), 400,
                     "missing_attribute", id="missing-source"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if k != "ce-type"}, b), 400, "missing_attribute",
                     id="missing-type"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if k != "ce-specversion"}, b), 400,
                     "missing_attribute", id="missing-specversion"),
        pytest.param(lambda h, b: (h | {"ce-specversion": "0.3"}, b), 400, "unsupported_specversion",
                     id="specversion-0.3"),
        pytest.param(lambda h, b: (h | {"ce-time": "yesterday"}, b), 400, "bad_attribute", id="bad-time"),
        pytest.param(lambda h, b: ({"content-type": "application/json"}, b), 400, "not_a_cloudevent",
                     id="plain-json-no-ce-headers"),
        pytest.param(lambda h, b: (h | {"content-type": "text/plain"}, b), 415, "unsupported_media_type",
                     id="text-plain-data"),
        pytest.param(lambda h, b: (h | {"content-type": "application/cloudevents-batch+json"}, b"[]"), 415,
                     "unsupported_media_type", id="batch-mode"),
        pytest.param(lambda h, b: (h, b""), 400, "missing_data", id="empty-body"),
        pytest.param(lambda h, b: (h, b"[1, 2]"), 422, "invalid_payload", id="json-array"),
        pytest.param(lambda h, b: (h, orjson.dumps(notification(channel="pigeon"))), 422, "invalid_payload",
                     id="unknown-channel"),
        pytest.param(lambda h, b: (h, orjson.dumps({"title": "hi"})), 422, "invalid_payload",
                     id="missing-fields"),
        pytest.param(lambda h, b: (h, "\udcff".encode("utf-8", "surrogatepass")), 400, "invalid_json",
                     id="invalid-utf8"),
    ],
)  # fmt: skip
def test_malformed_events_get_a_non_retryable_4xx_with_a_short_reason(
    client: httpx.Client, live_server: LiveServer, mutate, status: int, reason: str
) -> None:
    headers, body, _ = binary_event()
    headers, body = mutate(headers, body)

    response = client.post(NOTIFICATIONS, headers=headers, content=body)

    assert_rejected(response, status, reason)
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("document", "status", "reason"),
    [
        (b"{not json", 400, "invalid_json"),
        (b'"a string"', 400, "invalid_json"),
        (orjson.dumps({"specversion": "1.0", "source": "/s", "type": "t", "data": {}}), 400, "missing_attribute"),
        (orjson.dumps({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data_base64": "%%"}), 400,
         "bad_attribute"),
        (orjson.dumps({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "datacontenttype": "text/xml",
                       "data": "<a/>"}), 415, "unsupported_media_type"),
        (orjson.dumps({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data": {"x": 1}}), 422,
         "invalid_payload"),
    ],
)  # fmt: skip
def test_malformed_structured_events(client: httpx.Client, document: bytes, status: int, reason: str) -> None:
    response = client.post(NOTIFICATIONS, headers={"content-type": "application/cloudevents+json"}, content=document)
    assert_rejected(response, status, reason)


def test_structured_event_with_base64_data_is_accepted(client: httpx.Client, live_server: LiveServer) -> None:
    ce_id = str(uuid.uuid4())
    document = {
        "specversion": "1.0",
        "id": ce_id,
        "source": "/s",
        "type": "t",
        "data_base64": base64.b64encode(orjson.dumps(notification())).decode(),
    }
    response = client.post(
        NOTIFICATIONS, headers={"content-type": "application/cloudevents+json"}, content=orjson.dumps(document)
    )
    assert response.status_code == 202
    live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id and e["outcome"] == "processed")


def test_oversized_body_gets_413(client: httpx.Client, live_server: LiveServer) -> None:
    headers, _, ce_id = binary_event()
    big = orjson.dumps(notification(body="x" * 70_000))  # the live server allows 64 KiB

    response = client.post(NOTIFICATIONS, headers=headers, content=big)

    assert_rejected(response, 413, "body_too_large")
    [line] = live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id)
    assert line["outcome"] == "rejected"
    assert line["level"] == "WARNING"


def test_oversized_chunked_body_gets_413(client: httpx.Client) -> None:
    headers, _, _ = binary_event()

    def chunks():
        for _ in range(20):
            yield b"x" * 8192

    response = client.post(NOTIFICATIONS, headers=headers, content=chunks())

    assert_rejected(response, 413, "body_too_large")


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    headers, body, _ = binary_event()
    assert client.post("/events/unknown", headers=headers, content=body).status_code == 404
    assert client.get(NOTIFICATIONS).status_code == 405


def test_garbage_on_the_socket_does_not_take_the_worker_down(live_server: LiveServer, client: httpx.Client) -> None:
    for garbage in (
        b"\x00\x01\x02 not http\r\n\r\n",
        b"POST /events/notifications HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", live_server.port), timeout=5) as sock:
            sock.sendall(garbage)
            reply = sock.recv(1024)
            assert not reply.startswith(b"HTTP/1.1 5")
    assert live_server.process.poll() is None
    headers, body, _ = binary_event()
    assert client.post(NOTIFICATIONS, headers=headers, content=body).status_code == 202


def test_probes_and_metrics(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    headers, body, _ = binary_event()
    client.post(NOTIFICATIONS, headers=headers, content=body)
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert (
        'notifications_events_total{outcome="processed",route="notifications",type="dev.knative.kafka.event"}' in text
    )
    assert 'notifications_events_total{outcome="rejected",route="notifications"' in text
    assert 'notifications_event_handling_seconds_bucket{le="0.001",outcome="processed",route="notifications"}' in text
    assert "process_resident_memory_bytes" in text


def test_every_log_line_is_json_and_there_is_no_access_log(client: httpx.Client, live_server: LiveServer) -> None:
    headers, body, ce_id = binary_event()
    client.post(NOTIFICATIONS, headers=headers, content=body)
    live_server.wait_for_log(lambda e: e.get("ce_id") == ce_id)
    raw = live_server.log_path.read_bytes()
    entries = [orjson.loads(line) for line in raw.splitlines()]  # raises if any line is not JSON
    assert not any('"POST /events' in entry["message"] for entry in entries)
    assert {entry["logger"] for entry in entries} <= {"uvicorn.error", "notifications.events", "notifications.serve"}
    assert sum(1 for entry in entries if entry.get("ce_id") == ce_id) == 1


def test_randomised_malformed_requests_never_get_a_5xx(client: httpx.Client, live_server: LiveServer) -> None:
    rng = random.Random(20261126)
    valid_headers, valid_body, _ = binary_event()
    bodies = [
        b"",
        b"null",
        b"{}",
        b"[" * 5000 + b"]" * 5000,
        b'{"notification_id": 1e999999}',
        valid_body[: len(valid_body) // 2],
        valid_body.replace(b'"email"', b"42"),
        bytes(rng.getrandbits(8) for _ in range(256)),
        orjson.dumps({"specversion": "1.0", "id": 1, "source": [], "type": {}, "data": "x"}),
        orjson.dumps({"specversion": "1.0", "id": "i", "source": "/s", "type": "t", "Bad-Name": 1, "data": {}}),
    ]
    header_mutations = [
        lambda h: h,
        lambda h: {k: v for k, v in h.items() if rng.random() < 0.7},
        lambda h: h | {"content-type": rng.choice(["application/cloudevents+json", "text/html", ";;", ""])},
        lambda h: h | {"ce-" + rng.choice(["id", "source", "type", "specversion", "time"]): rng.choice(["", "%ZZ", "%00"])},
        lambda h: h | {"ce-x_y": "1", "ce-": "2"},
        lambda h: {"content-type": "application/cloudevents+json"},
    ]  # fmt: skip
    statuses = set()
    for _ in range(300):
        headers = rng.choice(header_mutations)(dict(valid_headers))
        path = rng.choice([NOTIFICATIONS, LOGGINGS])
        statuses.add(client.post(path, headers=headers, content=rng.choice(bodies)).status_code)

    assert statuses <= {202, 400, 409, 413, 415, 422}, statuses
    assert {400, 422} <= statuses
    assert live_server.process.poll() is None
    assert client.get("/healthz").status_code == 200


def test_required_routes_are_plain_routes_on_the_app() -> None:
    app = create_app()
    served = {(route.path, method) for route in app.routes for method in getattr(route, "methods", ())}
    for required in [
        ("/events/notifications", "POST"),
        ("/events/loggings", "POST"),
        ("/healthz", "GET"),
        ("/readyz", "GET"),
        ("/metrics", "GET"),
    ]:
        assert required in served
    # The dead-letter sink is a KafkaSink (base/eventing/dead-letters.yaml): a refused event is never posted back here.
    assert ("/events/dead-letters", "POST") not in served
    assert not any(isinstance(route, Mount) for route in app.routes)
    assert all(isinstance(route, APIRoute) and "{" not in route.path for route in app.routes)


def test_each_route_accepts_its_topics_largest_record() -> None:
    """Without MAX_BODY_BYTES a route's body limit is its topic's `max_record_bytes` (notifications.topics), so a
    valid 900 KB event is processed (issue 30: it was a 413 and dead-lettered at once) and only a body larger than
    any record the topic can carry is refused."""
    from notifications.settings import Settings
    from notifications.topics import TOPICS

    limit = TOPICS["notifications"].max_record_bytes
    app = create_app(Settings())
    headers, _, _ = binary_event()
    large = orjson.dumps(notification(metadata={"blob": "x" * 900_000}))
    over = orjson.dumps(notification(metadata={"blob": "x" * limit}))
    assert len(large) < limit < len(over)
    other_headers, _, _ = binary_event()

    async def post_both() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            return (
                await http.post(NOTIFICATIONS, headers=headers, content=large),
                await http.post(NOTIFICATIONS, headers=other_headers, content=over),
            )

    processed, refused = asyncio.run(post_both())
    assert processed.status_code == 202, processed.text
    assert_rejected(refused, 413, "body_too_large")
    assert f"body exceeds {limit} bytes" in refused.json()["detail"]


def test_structured_data_nested_too_deep_to_digest_is_a_4xx_not_a_500() -> None:
    """The dedup's content digest cannot serialise data nested past 254 levels: the event is still judged by its
    payload (422 here), never a 500 from the digest."""
    from notifications.settings import Settings

    data: dict = {}
    node = data
    for _ in range(300):
        node["a"] = {}
        node = node["a"]
    body = json.dumps({"specversion": "1.0", "id": "deep", "source": "/s", "type": "t", "data": data})  # orjson: 254
    app = create_app(Settings())

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            return await http.post(
                NOTIFICATIONS, content=body, headers={"content-type": "application/cloudevents+json"}
            )

    response = asyncio.run(post())
    assert response.status_code == 422, response.text
