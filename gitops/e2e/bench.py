"""`make bench-e2e`: events/s and p50/p99 from a produced record to the subscriber's record, through Knative's data plane.

The stack of `make e2e` (gitops/e2e/live.py: the API server and kafka-controller write the contracts, in a private
network namespace): KafkaSource dispatcher -> receiver -> Broker topic -> Trigger dispatcher -> the fault proxy at
Serving's address, injecting nothing -> subscriber. Latency is the subscriber's `event processed` line time minus
the record's Kafka timestamp (both wall clocks of this machine, millisecond resolution). Run unordered and ordered
(every Trigger's `kafka.eventing.knative.dev/delivery.order` annotation and the KafkaSource's `spec.ordering`
applied through the API server; the controller rewrites the contracts and the data plane reloads them), then
`make bench`'s subscriber-only figure (one short round of notifications.bench) beside them.
"""

from __future__ import annotations

import argparse
import copy
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
from gitops.e2e import live, netns
from gitops.e2e import scenarios as sc
from gitops.e2e.live import LiveStack
from gitops.e2e.run import fetch_what_the_namespace_cannot
from gitops.events.payloads import build_payload
from gitops.model.eventing import DELIVERY_ORDER

ORDER_TIMEOUT_S = 120


def set_order(stack: LiveStack, order: str) -> float:
    """Apply the render's Triggers and KafkaSources with `order` ("ordered"/"unordered"), as a changed render would
    be synced: the Trigger annotation (eventing-kafka-broker v0.50.1 control-plane/pkg/reconciler/trigger/v2/
    triggerv2.go `deliveryOrderAnnotation`) and the KafkaSource's `spec.ordering` (pkg/apis/sources/v1/
    kafka_types.go). Return the seconds until every egress of the dispatchers' contracts carries it."""
    assert stack.kube is not None
    for obj in stack.objects:
        if obj["kind"] not in ("Trigger", "KafkaSource"):
            continue
        changed = copy.deepcopy(obj)
        if obj["kind"] == "Trigger":
            changed["metadata"].setdefault("annotations", {})[DELIVERY_ORDER] = order
        else:
            changed["spec"]["ordering"] = order
        stack.kube.apply(changed)
    started = time.monotonic()
    want = order.upper()
    while time.monotonic() - started < ORDER_TIMEOUT_S:
        contracts = stack.contracts
        egresses = [
            e
            for contract in (contracts.broker_dispatcher, contracts.source_dispatcher)
            for r in contract.get("resources", [])
            for e in r.get("egresses", [])
        ]
        # protobuf JSON leaves out an enum's zero value, UNORDERED (proto/contract.proto DeliveryOrder).
        if egresses and all(e.get("deliveryOrder", "UNORDERED") == want for e in egresses):
            return time.monotonic() - started
        time.sleep(0.5)
    raise TimeoutError(f"the controller did not write deliveryOrder {want} into every egress in {ORDER_TIMEOUT_S}s")


def _ms(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp() * 1000


def measure(stack: LiveStack, count: int, timeout_s: float, rate: float = 0.0) -> tuple[float, float, float, int]:
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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not netns.is_private():
        fetch_what_the_namespace_cannot()
    try:
        code = netns.enter(argv, module="gitops.e2e.bench")  # the stack runs only in a private network namespace
    except netns.NotPrivate as error:
        print(f"gitops bench-e2e: {error}", file=sys.stderr)
        return 2
    if code is not None:
        return code
    netns.bring_up_loopback()
    render = render_env(args.env)
    reason = live.unsupported(render.objects)
    if reason:
        print(f"gitops bench-e2e: env {args.env}: the test Kafka cannot serve this render to the controller: {reason}",
              file=sys.stderr)  # fmt: skip
        return 2
    base = cache_dir() / "e2e" / "runs"
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{args.env}-", dir=base))
    rows: list[str] = []
    try:
        with live.running(args.env, render.objects, workdir, stand_ins=render.stand_ins) as stack:
            measure(stack, 50, 120)  # warm-up: JIT, connections, consumer assignment
            for order in ("unordered", "ordered"):
                seconds = set_order(stack, order)
                print(f"bench-e2e: {order}: in every egress of the contracts {seconds:.0f}s after apply", flush=True)
                time.sleep(5)  # the dispatchers reload the contract and rejoin their consumer groups
                measure(stack, 50, 120)
                rate, p50, p99, n = measure(stack, args.events, 300)
                rows.append(row(f"{order}, burst", rate, p50, p99, n, args.events))
                paced = max(10, args.events // 5)
                rate, p50, p99, n = measure(stack, paced, 300, rate=args.paced_rate)
                rows.append(row(f"{order}, paced {args.paced_rate:g}/s", rate, p50, p99, n, paced))
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
