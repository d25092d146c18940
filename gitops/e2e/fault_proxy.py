"""A loopback HTTP proxy in front of the real subscriber that injects the faults the scenarios need.

Modes: `pass` (forward), `status` (answer a fixed status, e.g. 401/403, for matching paths), `fail_first` (answer
503 to the first N attempts of each event, then forward; on the `always` paths to every attempt), `down` (close the connection without an answer, as a
stopped pod would), `slow` (hold each attempt `delay_s` seconds, then forward: a subscriber that keeps up less
than the Broker's rate, so its Trigger's consumer group falls behind). Every attempt is recorded with its CloudEvent id and time, so a scenario can check the spacing
of retries against the render's backoff.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclass
class Fault:
    mode: str = "pass"
    status: int = 503
    first: int = 0  # fail_first: attempts per event answered with `status`
    paths: tuple[str, ...] = ()  # empty: every path
    delay_s: float = 0.0  # slow: how long each attempt is held before it is forwarded
    always: tuple[str, ...] = ()  # fail_first: paths answered `status` on every attempt (past any retry budget)

    def applies(self, path: str) -> bool:
        return not self.paths or path.startswith(self.paths)


@dataclass
class Attempt:
    path: str
    ce_id: str
    ce_source: str
    at: float
    status: int  # 0 = connection closed without an answer


@dataclass
class FaultProxy:
    upstream_port: int
    fault: Fault = field(default_factory=Fault)
    attempts: list[Attempt] = field(default_factory=list)
    _counts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    host: str = "127.0.0.1"  # the e2e with a control plane: the Knative Service's address (gitops/e2e/live.py)
    port: int = 0

    def set(self, fault: Fault) -> None:
        with self._lock:
            self.fault = fault
            self._counts.clear()

    def start(self) -> int:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                ce_id, ce_source = self.headers.get("ce-id", ""), self.headers.get("ce-source", "")
                with proxy._lock:
                    fault = proxy.fault
                    key = (ce_source, ce_id)
                    proxy._counts[key] += 1
                    count = proxy._counts[key]
                status = 0
                try:
                    if fault.applies(self.path) and fault.mode == "down":
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if fault.applies(self.path) and (
                        fault.mode == "status"
                        or (fault.mode == "fail_first" and (count <= fault.first or self.path.startswith(fault.always)))
                    ):
                        status = fault.status
                        payload = b'{"error":"injected","detail":"e2e fault proxy"}'
                        self.send_response(status)
                        self.send_header("content-type", "application/json")
                        self.send_header("content-length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                    if fault.applies(self.path) and fault.mode == "slow":
                        time.sleep(fault.delay_s)
                    status, headers, payload = proxy._forward(self.command, self.path, dict(self.headers), body)
                    self.send_response(status)
                    for name, value in headers:
                        if name.lower() not in HOP_HEADERS:
                            self.send_header(name, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with proxy._lock:
                        proxy.attempts.append(Attempt(self.path, ce_id, ce_source, time.monotonic(), status))

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hung up (a killed dispatcher) is part of the scenarios, not an error

        self.server = QuietServer((self.host, self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True).start()
        return self.server.server_address[1]

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            conn.request(
                method, path, body=body, headers={k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}
            )
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        except OSError:
            return 502, [], b'{"error":"subscriber_unreachable"}'
        finally:
            conn.close()

    def attempts_of(self, key: tuple[str, str]) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if (a.ce_source, a.ce_id) == key]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
