"""`make bench`: our production server vs the article's handler, one worker each, over loopback with wrk.

Server pinned to CPU 0, wrk to CPU 1. Every request is a distinct KafkaSource-shaped binary CloudEvent (unique
offset), so our server validates, deduplicates, logs and counts each one; the baseline parses the JSON body.
Figures are only comparable within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from notifications import oidc_bench
from notifications.models import Notification

ARTICLE_DIR = Path(__file__).resolve().parents[2] / "bench" / "article"
SERVER_CPU = "0"
LOAD_CPU = "1"
# Far above any offset a warm-up reaches, so the measured run's events are all new to the server.
MEASURED_FIRST_OFFSET = 1_000_000_000


def pinned(cpu: str) -> list[str]:
    """taskset to one core; as root also raise the priority, so other work on a shared box skews less."""
    prefix = ["nice", "-n", "-10"] if os.geteuid() == 0 else []
    return [*prefix, "taskset", "-c", cpu]


# wrk's Lua: a distinct (source, id) per request, and a JSON summary on stdout at the end.
WRK_SCRIPT = r"""
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("partition", counter)
  table.insert(threads, thread)
end
local offset = 0
local headers = {}
function init(args)
  body = args[1]
  offset = tonumber(args[2])
  headers["Content-Type"] = "application/json"
  headers["ce-specversion"] = "1.0"
  headers["ce-type"] = "dev.knative.kafka.event"
  headers["ce-source"] = "/apis/v1/namespaces/default/kafkasources/kafka-source#notifications"
  headers["ce-time"] = "2026-11-26T07:12:03.512Z"
  headers["ce-key"] = "user-4711"
  headers["ce-partitionkey"] = "user-4711"
  headers["ce-kafkaheaderxrequestid"] = "b7ad6b7169203331"
  headers["ce-knativekafkapartition"] = tostring(partition)
  headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
  if args[3] then headers["Authorization"] = "Bearer " .. args[3] end
end
function request()
  offset = offset + 1
  headers["ce-id"] = "partition:" .. partition .. "/offset:" .. offset
  headers["ce-subject"] = "partition:" .. partition .. "#" .. offset
  headers["ce-knativekafkaoffset"] = tostring(offset)
  return wrk.format("POST", nil, headers, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class Result:
    name: str
    events_per_second: float
    p50_ms: float
    p99_ms: float
    peak_rss_mib: float
    cpu_us_per_event: float
    requests: int
    non_2xx: int
    socket_errors: int
    log_lines: int
    run_queue_ms: float
    """Time the server was runnable but waiting for its CPU during the measured run: other load on the box."""


def ensure_wrk() -> str:
    """wrk's path, or one line with the command that installs it: a verb never installs packages on its own
    (root or not), so nothing on the machine changes behind the person's back."""
    found = shutil.which("wrk")
    if found:
        return found
    sys.exit("make bench: wrk is not installed; install it (Debian/Ubuntu: `sudo apt-get install -y wrk`) and rerun")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server exited with {process.returncode} before serving {url}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    sys.exit(f"server did not start serving {url} within {timeout}s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the server process: unlike wall-clock rates, barely moved by other load on the box."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_seconds(pid: int) -> float:
    """Time spent runnable but not running (/proc/<pid>/schedstat, field 2): CPU taken by anything else."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def running(command: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> Iterator[subprocess.Popen]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*pinned(SERVER_CPU), *command], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_wrk(load: Load, url: str, seconds: int, first_offset: int, token: str | None = None) -> dict:
    """`first_offset` keeps the offsets (and so the CloudEvent ids) of one wrk run clear of any other run's
    against the same server: a replayed id would take the cheap duplicate path instead of being processed."""
    command = [
        *pinned(LOAD_CPU), load.wrk, "-t1", f"-c{load.connections}", f"-d{seconds}s",
        "--timeout", "5s", "-s", str(load.script), url, "--", load.body, str(first_offset), *([token] if token else []),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    summary_line = completed.stdout.strip().splitlines()[-1]
    return orjson.loads(summary_line)


@dataclass(frozen=True)
class ServerUnderTest:
    name: str
    command: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    probe_path: str
    token: str | None = None
    """Bearer token wrk sends with every request (the OIDC-on variant); one token, as the dispatcher reuses one."""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@dataclass(frozen=True)
class Load:
    wrk: str
    script: Path
    body: str
    connections: int
    seconds: int


def bench_one(server: ServerUnderTest, load: Load, workdir: Path) -> Result:
    log_path = workdir / f"{server.name}.log"
    url = server.url("/events/notifications")
    with running(server.command, server.env, server.cwd, log_path) as process:
        wait_until_serving(server.url(server.probe_path), process)
        run_wrk(load, url, min(2, load.seconds), first_offset=0, token=server.token)  # warm-up
        cpu_before = cpu_seconds(process.pid)
        waited_before = run_queue_seconds(process.pid)
        summary = run_wrk(load, url, load.seconds, first_offset=MEASURED_FIRST_OFFSET, token=server.token)
        cpu = cpu_seconds(process.pid) - cpu_before
        waited = run_queue_seconds(process.pid) - waited_before
        rss = peak_rss_mib(process.pid)
    log_lines = sum(1 for line in log_path.read_bytes().splitlines() if b"/events/" in line or b'"event ' in line)
    return Result(
        name=server.name,
        events_per_second=summary["requests"] / (summary["duration_us"] / 1e6),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        peak_rss_mib=rss,
        cpu_us_per_event=cpu / max(summary["requests"], 1) * 1e6,
        requests=summary["requests"],
        non_2xx=summary["non_2xx"],
        socket_errors=summary["socket_errors"],
        log_lines=log_lines,
        run_queue_ms=waited * 1000,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per server; medians are reported")
    parser.add_argument(
        "--oidc",
        action="store_true",
        help="also run our server with sender-token verification on (loopback JWKS, one RS256 token), and time "
        "an uncached RS256/ES256 verification in process",
    )
    args = parser.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 CPUs, server and wrk share a core", file=sys.stderr)
    wrk = ensure_wrk()
    python = sys.executable
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST", "LOG_LEVEL")}
    with tempfile.TemporaryDirectory(prefix="notifications-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        script = workdir / "cloudevent.lua"
        script.write_text(WRK_SCRIPT)
        load = Load(wrk, script, Notification.example().model_dump_json(), args.connections, args.seconds)
        article_port, our_port = free_port(), free_port()
        servers = [
            # Plain `uvicorn main:app` defaults, as the article's users ran it.
            ServerUnderTest(
                "article", [python, "-m", "uvicorn", "main:app", "--port", str(article_port)],
                ARTICLE_DIR, env, article_port, "/docs",
            ),
            ServerUnderTest(
                "ours", [python, "-m", "notifications.serve"],
                workdir, {**env, "PORT": str(our_port), "HOST": "127.0.0.1"}, our_port, "/readyz",
            ),
        ]  # fmt: skip
        if args.oidc:
            oidc = stack.enter_context(oidc_bench.loopback_issuer())
            oidc_port = free_port()
            servers.append(
                ServerUnderTest(
                    "ours+oidc", [python, "-m", "notifications.serve"], workdir,
                    {**env, **oidc.env, "PORT": str(oidc_port), "HOST": "127.0.0.1"}, oidc_port, "/readyz",
                    token=oidc.token,
                )
            )  # fmt: skip
        load_before = os.getloadavg()[0]
        rounds = [[bench_one(server, load, workdir) for server in servers] for _ in range(args.rounds)]
        load_after = os.getloadavg()[0]
    print_report(rounds, args.connections, args.seconds)
    waits = ", ".join(f"{r.name} #{n} {r.run_queue_ms:.0f}" for n, results in enumerate(rounds, 1) for r in results)
    print(f"server run-queue wait per measured run, ms (CPU {SERVER_CPU} taken by other processes): {waits}")
    if args.oidc:
        print(oidc_bench.uncached_verification_report())
        print(oidc_bench.asgi_cost_report())
    if max(load_before, load_after) > 1.5:
        print(
            f"warning: load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} CPUs; other processes "
            "competed for the pinned cores, so wall-clock figures (p99 above all) are pessimistic. "
            "CPU us/event is the steadier comparison."
        )
    return 0


def _median(values: list[float]) -> float:
    return statistics.median(values)


def print_report(rounds: list[list[Result]], connections: int, seconds: int) -> None:
    print(
        f"\n{connections} connections, {seconds}s per run, {len(rounds)} alternating rounds, "
        f"1 server worker on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}"
    )
    columns = ("events/s", "p50 ms", "p99 ms", "CPU us/ev", "peak RSS MiB", "non-2xx", "sock err", "log lines")
    print(f"{'run':<14}" + "".join(f"{c:>13}" for c in columns))
    for number, results in enumerate(rounds, 1):
        for r in results:
            values = (f"{r.events_per_second:.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.cpu_us_per_event:.0f}",
                      f"{r.peak_rss_mib:.1f}", r.non_2xx, r.socket_errors, r.log_lines)  # fmt: skip
            print(f"{f'{r.name} #{number}':<14}" + "".join(f"{v:>13}" for v in values))
    medians = {}
    for index, name in enumerate(r.name for r in rounds[0]):
        runs = [results[index] for results in rounds]
        medians[name] = {
            "events/s": _median([r.events_per_second for r in runs]),
            "p50 ms": _median([r.p50_ms for r in runs]),
            "p99 ms": _median([r.p99_ms for r in runs]),
            "CPU us/ev": _median([r.cpu_us_per_event for r in runs]),
            "peak RSS MiB": max(r.peak_rss_mib for r in runs),
        }
    print(f"\n{'median':<14}" + "".join(f"{c:>13}" for c in medians["ours"]))
    for name, figures in medians.items():
        print(f"{name:<14}" + "".join(f"{v:>13.2f}" if v < 100 else f"{v:>13.0f}" for v in figures.values()))
    article, ours = medians["article"], medians["ours"]
    print(
        f"\nours / article: {ours['events/s'] / article['events/s']:.2f}x events/s, "
        f"{article['CPU us/ev'] / ours['CPU us/ev']:.2f}x events per CPU-second (goal >= 1.5x); "
        f"ours p99 {ours['p99 ms']:.2f} ms (goal <= 10 ms)"
    )
    if "ours+oidc" in medians:
        secured = medians["ours+oidc"]
        print(
            f"sender-token verification on: {secured['CPU us/ev'] - ours['CPU us/ev']:+.0f} us CPU per event, "
            f"{secured['events/s'] / ours['events/s']:.2f}x events/s of verification off"
        )
    print("log lines: article = uvicorn access lines, ours = one JSON line per event (warm-up included)")


if __name__ == "__main__":
    sys.exit(main())
