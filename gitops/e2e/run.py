"""`make e2e`: an environment's event path through Knative's own Kafka data plane, with a ledger per scenario.

What runs and how to read the output: docs/e2e.md. Exit 0 when every scenario ends with lost 0 and its checks
hold, 1 when an event is lost (each named) or a check fails.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from gitops.core.errors import UserError
from gitops.core.paths import cache_dir
from gitops.core.render import render_env
from gitops.e2e import alerts, dataplane, identity_scenarios, live, live_scenarios, netns
from gitops.e2e import replay as replay_mod
from gitops.e2e import scenarios as sc
from gitops.e2e.ledger import EventKey, ScenarioLedger, summary
from gitops.e2e.live import LiveStack
from gitops.events import kafka_local

SCENARIOS = (
    "routing",
    "invalid-payload",
    "subscriber-503",
    "subscriber-down",
    "subscriber-401",
    "subscriber-403",
    "subscriber-slow",
    "dead-letter-sink-refuses",
    "dispatcher-sigkill",
    "receiver-sigkill",
    "ordered",
    "record-size",
    "spoofed-source",
    "replayed-id",
    "trigger-added-live",
    "trigger-deleted",
    "trigger-unresolvable",
    "replica-lost",
    "controller-restart",
    "apiserver-restart",
    *identity_scenarios.SCENARIOS,
    "bad-kafka-password",
)
# Scenarios of the control plane (gitops/e2e/live.py): SIGKILL of a control-plane process mid-stream, restarted
# after a pause; afterwards every Knative object must be Healthy again by the repository's own health checks.
CONTROL_PLANE_KILLS = {"controller-restart": ("kafka-controller", 2.0), "apiserver-restart": ("kube-apiserver", 3.0)}
LOST_SHOWN = 20
RECAP_CHARS = 700
BACKOFF_SCALE_HELP = (
    "e2e-only override: multiply every backoffDelay of the contracts by this factor (default 1 = the render's values); "
    "the ledger says when it is not 1"
)
NOT_PROVEN = (
    "not proven here: NetworkPolicy, Kubernetes scheduling (kubelet, kube-proxy, DNS, Serving and the External "
    "Secrets Operator are stand-ins; docs/e2e.md)"
)
NO_IDENTITY = "sender identity (OIDC): the render does not turn it on, or no control plane minted tokens"


def replay_through_ingress(stack: LiveStack, keys: set[EventKey]) -> int:
    """`gitops replay`'s own functions: read the dead-letter topic, re-send the chosen events to the Broker."""
    topic = stack.dead_letter_topic()
    if topic is None:
        return 0
    letters = [letter for letter in replay_mod.read(stack.kafka_client, topic) if letter.key in keys]
    sent = 0
    # Under OIDC (prod) the Broker admits only the identities of its EventPolicy: the replay one, with its token.
    token = stack.replay_token()
    for letter in letters:
        if 200 <= replay_mod.resend(letter, stack.broker_ingress(), token=token) < 300:
            sent += 1
    return sent


def scale_backoff(stack: LiveStack, factor: float) -> None:
    if factor == 1:
        return
    stack.set_backoff_scale(factor)
    stack.volume_sync()


def run_scenario(name: str, stack: LiveStack, p: sc.Producing) -> ScenarioLedger | None:
    match name:
        case "routing":
            return sc.routing(stack, p)
        case "invalid-payload":
            return sc.invalid_payload(stack, p)
        case "subscriber-503":
            return sc.subscriber_503(stack, p)
        case "subscriber-down":
            return sc.subscriber_down(stack, p, replay_through_ingress)
        case "subscriber-401":
            return sc.subscriber_refuses(stack, p, 401)
        case "subscriber-403":
            return sc.subscriber_refuses(stack, p, 403)
        case "subscriber-slow":
            return sc.subscriber_slow(stack, p)
        case "dead-letter-sink-refuses":
            return sc.dead_letter_sink_refuses(stack, p)
        case "dispatcher-sigkill":
            return sc.killed_mid_stream(stack, p, "broker-dispatcher", 2.0)
        case "receiver-sigkill":
            return sc.killed_mid_stream(stack, p, "receiver", 3.0)
        case "ordered":
            return sc.ordered(stack, p)
        case "record-size":
            return sc.record_size(stack, p)
        case "spoofed-source":
            return sc.spoofed_source(stack, p)
        case "replayed-id":
            return sc.replayed_id(stack, p)
        case "trigger-added-live" | "trigger-deleted" | "trigger-unresolvable":
            run = {
                "trigger-added-live": live_scenarios.trigger_added_live,
                "trigger-deleted": live_scenarios.trigger_deleted,
                "trigger-unresolvable": live_scenarios.trigger_unresolvable,
            }[name]
            return run(stack, p)
        case name if name in identity_scenarios.SCENARIOS:
            # Only where the render turns sender identity on (prod) and the control plane mints the tokens.
            if not stack.oidc:
                return None
            return identity_scenarios.SCENARIOS[name](stack, p)
        case "replica-lost":
            return live_scenarios.replica_lost(stack, p)
        case "bad-kafka-password":
            return live_scenarios.bad_kafka_password(stack, p)
        case "controller-restart" | "apiserver-restart":
            process, down_s = CONTROL_PLANE_KILLS[name]
            ledger = sc.killed_mid_stream(stack, p, process, down_s, name=name)
            ledger.notes.append(stack.healthy_again())
            return ledger
    raise ValueError(name)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gitops e2e",
        description="Run an environment's event path through Knative's Java Kafka data plane (built from "
        "../shared/upstream) with a kube-apiserver and Knative 1.23's kafka-controller writing the contracts, all in a private network "
        "namespace on loopback; one ledger line per scenario.",
    )
    p.add_argument("--env", default="dev", help="the environment whose render is run (default dev)")
    p.add_argument(
        "--scenario", action="append", choices=SCENARIOS, help="run only this scenario (repeatable; default all)"
    )
    p.add_argument("--backoff-scale", type=float, default=1.0, help=BACKOFF_SCALE_HELP)
    p.add_argument("--keep", action="store_true", help="keep the work directory (contracts, every process's log)")
    return p


def fetch_what_the_namespace_cannot() -> None:
    """Before the run enters its private network namespace, where nothing but loopback answers: build the data plane
    (a cold ~/.m2 downloads from Maven Central) and fetch the test Kafka's jars. Inside, both are reused from the
    cache; without this a fresh clone's first `make e2e` failed with Maven's "Unknown host"."""
    dataplane.build()
    try:
        kafka_local.jars_dir()
    except kafka_local.KafkaUnavailable as error:
        raise UserError(f"the test Kafka cannot run: {error}", fix="install Java 17+ and Maven (README)") from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    started = time.monotonic()
    if not netns.is_private():
        fetch_what_the_namespace_cannot()
    try:
        code = netns.enter(argv)  # the run lives in a private network namespace: re-run there, or carry on inside
    except netns.NotPrivate as error:
        print(f"gitops e2e: {error}", file=sys.stderr)
        return 2
    if code is not None:
        return code
    netns.bring_up_loopback()
    render = render_env(args.env)
    objects = render.objects
    reason = live.unsupported(objects)
    if reason:
        print(f"gitops e2e: env {args.env}: the test Kafka cannot serve this render to the controller: {reason}",
              file=sys.stderr)  # fmt: skip
        return 2
    base = cache_dir() / "e2e" / "runs"
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{args.env}-", dir=base))
    ledgers: list[ScenarioLedger] = []
    identity_ran = False
    failed_checks: list[str] = []
    try:
        with live.running(args.env, objects, workdir, stand_ins=render.stand_ins) as stack:
            print(f"e2e: {stack.header()}", flush=True)
            identity_ran = stack.oidc
            scale_backoff(stack, args.backoff_scale)
            delivery = sc.trigger_delivery(stack)
            print(
                f"e2e: env {args.env}: Trigger delivery retry {delivery.retry}, "
                f"{'exponential' if delivery.exponential else 'linear'} {delivery.backoff_delay_s:g}s "
                f"(retry budget {delivery.budget_s():.1f}s), timeout {delivery.timeout_s:g}s"
                + (f"; backoff scaled x{args.backoff_scale:g} (e2e override)" if args.backoff_scale != 1 else ""),
                flush=True,
            )
            dead_letter_topic = stack.dead_letter_topic()
            print(
                "e2e: dead-letter sink: "
                + (
                    f"KafkaSink topic {dead_letter_topic}"
                    if dead_letter_topic
                    else "the subscriber's own route (no topic)"
                ),
                flush=True,
            )
            producing = sc.Producing(stack)
            workloads = stack.workloads_run()
            watch = alerts.AlertWatch.start(objects, workdir, stack.metrics_targets(), workloads)
            for name in args.scenario or SCENARIOS:
                t0 = time.monotonic()
                mark = watch.scraper.mark()
                ledger = run_scenario(name, stack, producing)
                if ledger is None:
                    why = (
                        "the render does not turn on sender identity (config-features authentication-oidc), or no "
                        "control plane mints tokens in this run"
                        if name in identity_scenarios.SCENARIOS
                        else "the render's Kafka takes no credentials"
                        if name == "bad-kafka-password"
                        else "the render orders no delivery"
                    )
                    print(f"{name}: skipped: {why}", flush=True)
                    continue
                ledgers.append(ledger)
                fired = watch.fired(name, mark)
                ledger.notes += watch.judge(name, fired)
                if ledger.after is not None:
                    ledger.after()
                notes = "; ".join(ledger.notes)
                print(
                    f"{ledger.line()} [{time.monotonic() - t0:.0f}s]"
                    + (f" - {notes}" if notes else "")
                    + f" | {alerts.describe(fired)}",
                    flush=True,
                )
                failed_checks += [f"{ledger.name}: {n}" for n in ledger.notes if n.startswith("FAIL")]
            watch.stop()
            producing.close()
    except KeyboardInterrupt:
        print("e2e: interrupted; every process stopped", file=sys.stderr)
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    last, lost = summary(ledgers)
    # CI shows only the tail: the ledger lines of what went wrong again, then at most LOST_SHOWN lost records.
    for ledger in ledgers:
        if ledger.lost or any(n.startswith("FAIL") for n in ledger.notes):
            print(f"e2e: again: {ledger.line()} - {'; '.join(ledger.notes)}"[:RECAP_CHARS])
    for line in lost[:LOST_SHOWN]:
        print(f"LOST {line}")
    if len(lost) > LOST_SHOWN:
        print(f"LOST ... and {len(lost) - LOST_SHOWN} more")
    for line in failed_checks:
        print(line)
    print(f"e2e: {NOT_PROVEN}" + ("" if identity_ran else f"; {NO_IDENTITY}"))
    print(f"{last} ({time.monotonic() - started:.0f}s)" if not args.keep else f"{last}; logs in {workdir}")
    return 1 if lost or failed_checks else 0


if __name__ == "__main__":
    sys.exit(main())
