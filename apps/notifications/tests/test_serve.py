"""SIGTERM draining (notifications.serve): readiness turns false at once and the in-flight request still completes,
against real server processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import httpx
import pytest
from notifications_testkit import binary_event, start_server

pytestmark = pytest.mark.timeout(60)
NOTIFICATIONS = "/events/notifications"
FACTORY = "notifications_flaky_app:create_app"


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
