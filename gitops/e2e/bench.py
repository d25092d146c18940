"""`make bench-e2e`: events/s and p50/p99 from a produced record to the subscriber's record, through Knative's data plane.

The stack of `make e2e` without the fault proxy: KafkaSource dispatcher -> receiver -> Broker topic -> Trigger
dispatcher -> subscriber. Latency is the subscriber's `event processed` line time minus the record's Kafka
timestamp (both wall clocks of this machine, millisecond resolution). Run unordered and ordered (every egress's
deliveryOrder rewritten, contract generation bumped, the data plane reloads), then `make bench`'s subscriber-only
figure (one short round of notifications.bench) beside them.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from gitops.core.paths import REPO_ROOT, cache_dir
from gitops.core.render import render_env
from gitops.e2e import scenarios as sc
from gitops.e2e.stack import Stack, running
from gitops.events.payloads import build_payload


def set_order(stack: Stack, order: str) -> None:
    for contract in (stack.contracts.broker_dispatcher, stack.contracts.source_dispatcher):
        for resource in contract["resources"]:
            for egress in resource.get("egresses", []):
                egress["deliveryOrder"] = order
    for contract in (stack.contracts.broker_dispatcher, stack.contracts.source_dispatcher, stack.contracts.receiver):
        contract["generation"] = str(int(contract["generation"]) + 1)
    stack.write_contracts()


def _ms(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp() * 1000


def measure(stack: Stack, count: int, timeout_s: float, rate: float = 0.0) -> tuple[float, float, float, int]:
    """(events/s, p50 ms, p99 ms, processed) for `count` records, produced as fast as the producer goes (a burst:
    the latency is mostly the backlog's queueing) or paced at `rate` per second (the latency of one record)."""
    topic = sc.source_topics(stack)[0]
    source = sc.event_source(stack, topic)
    produced: dict[str, float] = {}
    producing = sc.Producing(stack)

    def report(err: object, msg: object) -> None:
        if err is None:
            produced[f"partition:{msg.partition()}/offset:{msg.offset()}"] = msg.timestamp()[1]  # type: ignore[attr-defined]

    payload = build_payload(topic)
    for i in range(count):
        producing.producer.produce(topic, payload, key=f"k{i % 64}".encode(), on_delivery=report,
                                   headers=[("content-type", b"application/json")])  # fmt: skip
        producing.producer.poll(0)
        if rate:
            time.sleep(1 / rate)
    producing.producer.flush(60)
    deadline = time.monotonic() + timeout_s
    done: dict[str, float] = {}
    while time.monotonic() < deadline:
        done = {
            r["ce_id"]: _ms(r["time"])
            for r in stack.subscriber_records("processed")
            if r["ce_source"] == source and r["ce_id"] in produced
        }
        if len(done) >= len(produced):
            break
        time.sleep(1)
    latencies = sorted(done[k] - produced[k] for k in done)
    if len(latencies) < 2:
        return 0.0, 0.0, 0.0, len(latencies)
    span_s = (max(done.values()) - min(produced.values())) / 1000
    p99 = statistics.quantiles(latencies, n=100)[98]
    return len(done) / span_s, statistics.median(latencies), p99, len(done)


def row(name: str, rate: float, p50: float, p99: float, done: int, produced: int) -> str:
    return f"{name:<34}{rate:>10.0f} {p50:>9.1f} {p99:>9.1f}   ({done}/{produced} records)"


def subscriber_only() -> str:
    """`make bench`'s figure for our subscriber (one 5 s round): 'events/s, p50, p99', or why it is missing."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "notifications.bench", "--rounds", "1", "--seconds", "5"],
            cwd=REPO_ROOT / "apps" / "notifications", capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "n/a (make bench timed out)"
    medians = proc.stdout.split("\nmedian", 1)[-1]
    match = re.search(r"^ours\s+(\S+)\s+(\S+)\s+(\S+)", medians, re.MULTILINE)
    if proc.returncode != 0 or match is None:
        return f"n/a (make bench exited {proc.returncode})"
    return f"{float(match.group(1)):>10.0f} {float(match.group(2)):>9.2f} {float(match.group(3)):>9.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gitops bench-e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dev", help="the environment whose render is run (default dev)")
    parser.add_argument("--events", type=int, default=2000, help="records per run (default 2000)")
    parser.add_argument("--paced-rate", type=float, default=50.0, help="records/s of the paced (latency) runs")
    parser.add_argument("--no-subscriber-bench", action="store_true", help="skip make bench's subscriber-only round")
    args = parser.parse_args(argv)
    objects = render_env(args.env).objects
    base = cache_dir() / "e2e" / "runs"
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{args.env}-", dir=base))
    rows: list[str] = []
    try:
        with running(args.env, objects, workdir, direct=True) as stack:
            measure(stack, 50, 120)  # warm-up: JIT, connections, consumer assignment
            for order in ("UNORDERED", "ORDERED"):
                set_order(stack, order)
                time.sleep(5)  # the data plane reloads the contract
                measure(stack, 50, 120)
                rate, p50, p99, n = measure(stack, args.events, 300)
                rows.append(row(f"{order.lower()}, burst", rate, p50, p99, n, args.events))
                paced = max(10, args.events // 5)
                rate, p50, p99, n = measure(stack, paced, 300, rate=args.paced_rate)
                rows.append(row(f"{order.lower()}, paced {args.paced_rate:g}/s", rate, p50, p99, n, paced))
    except KeyboardInterrupt:
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'env ' + args.env + ', data plane':<34}{'events/s':>10} {'p50 ms':>9} {'p99 ms':>9}")
    for line in rows:
        print(line)
    if not args.no_subscriber_bench:
        print(f"{'subscriber only (make bench)':<34}{subscriber_only()}")
    print("data plane: record timestamp -> the subscriber's record line; subscriber only: HTTP request -> 202 (wrk)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
