"""Bounded time and memory per connection, against the real server over loopback (issue 12's last case):
slowloris heads, never-ending chunked bodies, idle connections, header floods and over-long header lines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from notifications.connection_limits import ConnectionLimits
from notifications_testkit import LiveServer, binary_event, start_server, stop_server

pytestmark = pytest.mark.timeout(90)

NOTIFICATIONS = "/events/notifications"
TIMEOUT_SECONDS = 1
# Generous on a loaded 2-core box: the server must act within the timeout plus this.
SLACK_SECONDS = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {
        "HEADER_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "BODY_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "KEEP_ALIVE_SECONDS": str(TIMEOUT_SECONDS),
        "MAX_BODY_BYTES": "65536",
    }
    live = start_server(tmp_path_factory.mktemp("limits"), env=env)
    yield live
    stop_server(live)


def request_head(headers: dict[str, str], extra: str = "") -> bytes:
    lines = [f"POST {NOTIFICATIONS} HTTP/1.1", "host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n" + extra).encode("latin-1")


async def trickle_until_closed(port: int, first: bytes, then: bytes, every: float) -> tuple[bytes, float]:
    """Send `first`, then `then` every `every` seconds until the server closes; return what it answered and
    how long the connection lived."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(first)
    answer = b""
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), every)
            except TimeoutError:
                writer.write(then)
                await writer.drain()
                continue
            if not chunk:
                break
            answer += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
    return answer, time.monotonic() - started


def status_and_error(answer: bytes) -> tuple[int, str | None]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, (orjson.loads(body)["error"] if body else None)


def run_many(count: int, port: int, first: bytes, then: bytes, every: float) -> list[tuple[bytes, float]]:
    async def all_of_them() -> list[tuple[bytes, float]]:
        return await asyncio.gather(*(trickle_until_closed(port, first, then, every) for _ in range(count)))

    return asyncio.run(all_of_them())


def assert_still_serving(server: LiveServer) -> None:
    headers, body, _ = binary_event()
    assert httpx.post(server.url + NOTIFICATIONS, headers=headers, content=body, timeout=10).status_code == 202


def test_slowloris_heads_are_cut_off_with_408(server: LiveServer) -> None:
    results = run_many(200, server.port, request_head({"ce-specversion": "1.0"}), b"x-slow: 1\r\n", 0.3)

    for answer, lived in results:
        assert status_and_error(answer) == (408, "request_timeout")
        assert lived < TIMEOUT_SECONDS + SLACK_SECONDS
    assert_still_serving(server)


def test_never_ending_chunked_bodies_are_cut_off_with_408(server: LiveServer) -> None:
    headers, _, _ = binary_event()
    head = request_head(headers | {"transfer-encoding": "chunked"}, "\r\n")
    results = run_many(50, server.port, head + b"1\r\n{\r\n", b"1\r\n \r\n", 0.2)

    for answer, lived in results:
        assert status_and_error(answer) == (408, "request_timeout")
        assert lived < TIMEOUT_SECONDS + SLACK_SECONDS
    assert_still_serving(server)


def test_never_ending_chunked_body_over_the_limit_gets_413_then_is_cut_off(server: LiveServer) -> None:
    headers, _, _ = binary_event()
    chunk = b"%x\r\n%s\r\n" % (8192, b" " * 8192)
    [(answer, lived)] = run_many(1, server.port, request_head(headers | {"transfer-encoding": "chunked"}, "\r\n"),
                                 chunk, 0.01)  # fmt: skip
    assert status_and_error(answer) == (413, "body_too_large")  # the only answer: no stray 408 after it
    assert lived < TIMEOUT_SECONDS + SLACK_SECONDS


def test_an_answered_request_whose_body_ends_keeps_its_connection(server: LiveServer) -> None:
    headers, _, _ = binary_event()
    too_large = b"x" * 70_000  # over MAX_BODY_BYTES: 413 before the body is read to its end

    async def two_requests() -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request_head(headers | {"content-length": str(len(too_large))}, "\r\n") + too_large)
        first = await asyncio.wait_for(reader.readuntil(b"}"), 10)
        _, body, _ = binary_event()
        writer.write(request_head(headers | {"ce-id": "after-413", "content-length": str(len(body))}, "\r\n") + body)
        second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.close()
        return [first, second]

    first, second = asyncio.run(two_requests())
    assert first.startswith(b"HTTP/1.1 413 ")
    assert second.startswith(b"HTTP/1.1 202 ")


def test_idle_connection_is_closed_after_the_keep_alive_timeout(server: LiveServer) -> None:
    [(answer, lived)] = run_many(1, server.port, b"", b"", 30)
    assert answer == b""
    assert lived < TIMEOUT_SECONDS + SLACK_SECONDS


def test_a_flood_of_headers_is_431_after_the_limit(server: LiveServer) -> None:
    flood = b"".join(b"x-h%d: v\r\n" % number for number in range(10_000))
    [(answer, _)] = run_many(
        1, server.port, request_head({}).removesuffix(b"\r\n") + b"\r\n" + flood + b"\r\n", b"", 30
    )
    assert status_and_error(answer) == (431, "too_many_headers")
    assert_still_serving(server)


@pytest.mark.parametrize("pieces", [1, 40], ids=["one-write", "trickled"])
def test_a_header_line_longer_than_the_limit_is_431(server: LiveServer, pieces: int) -> None:
    value = b"v" * (ConnectionLimits().max_header_bytes + 1024)
    size = len(value) // pieces + 1
    parts = [value[i : i + size] for i in range(0, len(value), size)]

    async def send() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request_head({}) + b"x-long: ")
        try:
            for part in parts:
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.write(b"\r\n\r\n")
        except (ConnectionResetError, BrokenPipeError):
            pass
        answer = await asyncio.wait_for(reader.read(), 20)
        writer.close()
        return answer

    assert status_and_error(asyncio.run(send())) == (431, "headers_too_large")


def test_a_65_kb_ce_id_in_binary_mode_is_431(server: LiveServer) -> None:
    headers, body, _ = binary_event()
    response = httpx.post(server.url + NOTIFICATIONS, headers=headers | {"ce-id": "i" * 65 * 1024}, content=body)
    assert response.status_code == 431
    assert response.json()["error"] == "headers_too_large"


def test_a_request_at_the_limits_is_processed(server: LiveServer) -> None:
    headers, body, ce_id = binary_event()
    limits = ConnectionLimits()
    # httpx adds host, accept, accept-encoding, connection, user-agent and content-length: exactly the limit.
    filler = {f"x-filler-{n}": "v" for n in range(limits.max_header_count - len(headers) - 6)}
    response = httpx.post(server.url + NOTIFICATIONS, headers=headers | filler, content=body)
    assert response.status_code == 202, response.text
    server.wait_for_log(lambda e: e.get("ce_id") == ce_id and e["outcome"] == "processed")


def test_limits_from_env() -> None:
    limits = ConnectionLimits.from_env({"HEADER_TIMEOUT_SECONDS": "2.5", "MAX_HEADER_COUNT": "10"})
    assert (limits.header_timeout_seconds, limits.max_header_count) == (2.5, 10)
    assert ConnectionLimits.from_env({}) == ConnectionLimits()


def test_a_request_line_longer_than_the_limit_is_431(server: LiveServer) -> None:
    query = b"q=" + b"u" * ConnectionLimits().max_header_bytes
    head = b"POST " + NOTIFICATIONS.encode() + b"?" + query + b" HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
    [(answer, _)] = run_many(1, server.port, head, b"", 30)
    assert status_and_error(answer) == (431, "headers_too_large")
