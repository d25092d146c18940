"""Transient failures, concurrent redeliveries and SIGTERM draining, against real server processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from notifications_testkit import LiveServer, binary_event, start_server, stop_server

pytestmark = pytest.mark.timeout(60)
NOTIFICATIONS = "/events/notifications"
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


def _send_partial_request(port: int, headers: dict[str, str], body: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = f"POST {NOTIFICATIONS} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    sock.sendall(head.encode() + body[:10])
    return sock


def _finish_request(sock: socket.socket, body: bytes) -> bytes:
    sock.sendall(body[10:])
    with sock:
        return sock.recv(4096)


def test_sigterm_turns_readiness_false_and_drains_the_in_flight_request(tmp_path) -> None:
    server = start_server(tmp_path, env={"DRAIN_DELAY_SECONDS": "1.5"})
    headers, body, ce_id = binary_event()
    sock = _send_partial_request(server.port, headers, body)
    time.sleep(0.2)

    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    readiness = httpx.get(server.url + "/readyz", timeout=2)
    liveness = httpx.get(server.url + "/healthz", timeout=2)
    reply = _finish_request(sock, body)

    assert (readiness.status_code, readiness.json()) == (503, {"status": "draining"})
    assert liveness.status_code == 200
    assert reply.startswith(b"HTTP/1.1 202")
    assert server.process.wait(timeout=15) == 0
    assert [e["outcome"] for e in server.events_for(ce_id)] == ["processed"]
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/healthz", timeout=1)


def test_sigterm_without_delay_still_completes_a_slow_in_flight_event(tmp_path) -> None:
    server = start_server(tmp_path, factory=FACTORY)
    headers, body, ce_id = binary_event(key="slow-2")
    sock = _send_partial_request(server.port, headers, body)
    sock.sendall(body[10:])  # complete: the sink now takes a second
    time.sleep(0.2)

    server.process.send_signal(signal.SIGTERM)
    with sock:
        reply = sock.recv(4096)

    assert reply.startswith(b"HTTP/1.1 202")
    try:
        assert server.process.wait(timeout=15) == 0
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise
    assert [e["outcome"] for e in server.events_for(ce_id)] == ["processed"]
    assert any("draining" in e["message"] for e in server.log_entries())
