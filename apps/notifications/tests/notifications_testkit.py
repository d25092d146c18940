"""Helpers for the tests: a real `python -m notifications.serve` process on loopback, and CloudEvent builders.

Module names here are unique across the whole pytest run because test directories have no __init__.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from notifications.send_event import encode, example_payload, kafka_source_event

TESTS_DIR = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_entries(self) -> list[dict]:
        return [orjson.loads(line) for line in self.log_path.read_bytes().splitlines() if line.strip()]

    def wait_for_log(self, predicate, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matching = [entry for entry in self.log_entries() if predicate(entry)]
            if matching:
                return matching
            time.sleep(0.05)
        raise AssertionError("no matching log line; log was:\n" + self.log_path.read_text())

    def events_for(self, ce_id: str) -> list[dict]:
        return [entry for entry in self.log_entries() if entry.get("ce_id") == ce_id]


def start_server(tmp_path: Path, env: dict[str, str] | None = None, factory: str | None = None) -> LiveServer:
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    command = [sys.executable, "-m", "notifications.serve"]
    if factory:
        command += ["--factory", factory]
    full_env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "PYTHONPATH": str(TESTS_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    server = LiveServer(process, port, log_path)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early ({process.returncode}):\n{log_path.read_text()}")
        try:
            if httpx.get(server.url + "/readyz", timeout=0.5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("server did not become ready:\n" + log_path.read_text())


def stop_server(server: LiveServer) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


_offsets = iter(range(1_000_000, 10_000_000))


def binary_event(
    topic: str = "notifications", data: dict | None = None, offset: int | None = None, **kwargs
) -> tuple[dict[str, str], bytes, str]:
    """Headers, body and ce-id of a KafkaSource-shaped binary-mode event (encoded by the CloudEvents SDK)."""
    event = kafka_source_event(
        topic, data if data is not None else example_payload(topic), offset=offset or next(_offsets), **kwargs
    )
    message = encode(event, "binary")
    return dict(message.headers), message.body, event.get_id()


def structured_event(topic: str = "notifications", data: dict | None = None) -> tuple[dict[str, str], bytes, str]:
    event = kafka_source_event(topic, data if data is not None else example_payload(topic), offset=next(_offsets))
    message = encode(event, "structured")
    return dict(message.headers), message.body, event.get_id()


BASE = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
"""The required attributes of a binary-mode event, as HTTP headers."""


def raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """`headers` as the ASGI scope holds them, which is what `cloudevent.from_http` reads."""
    return [(k.lower().encode(), v.encode("utf-8")) for k, v in headers.items()]
