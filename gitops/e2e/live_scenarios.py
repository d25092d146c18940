"""Scenarios that need the control plane (gitops/e2e/live.py): a Trigger added to and deleted from the running
system through the API server, while records flow; each ends in one ledger line like the others."""

from __future__ import annotations

import copy
import time
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from gitops.core.manifests import Obj
from gitops.e2e import scenarios as sc
from gitops.e2e import sync
from gitops.e2e.ledger import ScenarioLedger
from gitops.e2e.live import KUBE_STATE_METRICS, LiveStack

ADDED_NAME = "e2e-added"
CONTRACT_TIMEOUT_S = 120


def _added_trigger(stack: LiveStack) -> Obj:
    """A copy of the render's first Trigger under a new name: same Broker, filter and subscriber, so every record
    it matches now reaches the subscriber twice (the subscriber's dedup answers the second `duplicate`)."""
    original = next(o for o in stack.objects if o["kind"] == "Trigger")
    added = copy.deepcopy(original)
    added["metadata"] = {
        "name": ADDED_NAME,
        "namespace": original["metadata"]["namespace"],
        "annotations": {k: v for k, v in (original["metadata"].get("annotations") or {}).items() if "argocd" not in k},
    }
    return added


def _group(trigger: Obj) -> str:
    # config-kafka-features triggers-consumergroup-template (the render's value, the release default).
    return f"knative-trigger-{trigger['metadata']['namespace']}-{trigger['metadata']['name']}"


def _wait_contract(stack: LiveStack, group: str, present: bool) -> float:
    started = time.monotonic()
    while time.monotonic() - started < CONTRACT_TIMEOUT_S:
        groups = {e.get("consumerGroup") for e in sc.trigger_egresses(stack)}
        if (group in groups) == present:
            return time.monotonic() - started
        time.sleep(0.5)
    raise TimeoutError(
        f"consumer group {group} {'never reached' if present else 'never left'} the dispatcher's contract"
    )


def _matched_topic(stack: LiveStack, trigger: Obj) -> str:
    source = ((trigger["spec"].get("filter") or {}).get("attributes") or {}).get("source", "")
    return next((t for t in sc.source_topics(stack) if source.endswith("#" + t)), sc.source_topics(stack)[0])


def trigger_added_live(stack: LiveStack, p: sc.Producing) -> ScenarioLedger:
    assert stack.kube is not None
    ledger = ScenarioLedger("trigger-added-live")
    trigger = _added_trigger(stack)
    topic = _matched_topic(stack, trigger)
    ledger.produced |= p.many(topic, 20, rate=20)  # flowing while the Trigger is added
    stack.kube.apply(trigger)
    try:
        healthy = sync.wait_healthy(stack.kube, [trigger], sync.health_scripts(), timeout=CONTRACT_TIMEOUT_S)
        seconds = _wait_contract(stack, _group(trigger), present=True)
    except (sync.SyncFailed, TimeoutError) as error:
        ledger.notes.append(f"FAIL: {error}")
        sc.settle(stack, ledger, sc.deadline_for(stack))
        return ledger
    time.sleep(5)  # the dispatcher's consumer joins its group
    after = p.many(topic, 10)
    ledger.produced |= after
    sc.settle(stack, ledger, sc.deadline_for(stack) + 30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        twice = [k for k in after if len([a for a in stack.proxy.attempts_of(k) if "dead-letters" not in a.path]) >= 2]
        if len(twice) == len(after):
            break
        time.sleep(1)
    ledger.notes.append(
        f"{healthy[0]} after apply; its egress in the dispatcher's contract {seconds:.0f}s later; "
        f"{len(twice)} of {len(after)} records produced afterwards delivered by both Triggers"
        + ("" if len(twice) == len(after) else " (FAIL: the added Trigger did not deliver every one)")
    )
    if len(twice) != len(after):
        ledger.notes[-1] = "FAIL: " + ledger.notes[-1]
    return ledger


def trigger_deleted(stack: LiveStack, p: sc.Producing) -> ScenarioLedger:
    assert stack.kube is not None
    ledger = ScenarioLedger("trigger-deleted")
    trigger = _added_trigger(stack)
    if stack.kube.get(trigger["apiVersion"], "Trigger", trigger["metadata"]["namespace"], ADDED_NAME) is None:
        stack.kube.apply(trigger)
        _wait_contract(stack, _group(trigger), present=True)
    topic = _matched_topic(stack, trigger)
    ledger.produced |= p.many(topic, 20, rate=20)  # flowing while the Trigger is deleted
    stack.kube.delete(trigger)
    try:
        seconds = _wait_contract(stack, _group(trigger), present=False)
    except TimeoutError as error:
        ledger.notes.append(f"FAIL: {error}")
        sc.settle(stack, ledger, sc.deadline_for(stack))
        return ledger
    time.sleep(3)
    after = p.many(topic, 10)
    ledger.produced |= after
    sc.settle(stack, ledger, sc.deadline_for(stack) + 30)
    once = [k for k in after if len([a for a in stack.proxy.attempts_of(k) if "dead-letters" not in a.path]) == 1]
    ledger.notes.append(
        f"its egress left the dispatcher's contract {seconds:.0f}s after the delete; {len(once)} of {len(after)} "
        f"records produced afterwards delivered once (by the render's Trigger only)"
    )
    if len(once) != len(after):
        ledger.notes[-1] = "FAIL: " + ledger.notes[-1]
    return ledger


def trigger_unresolvable(stack: LiveStack, p: sc.Producing) -> ScenarioLedger:
    """A Trigger whose subscriber (a Knative Service that does not exist) has no address: our health check, on the
    status the controller writes, must say Degraded (Argo CD would stop the sync there), then the Trigger is
    deleted again. No records: the ledger line says produced 0."""
    assert stack.kube is not None
    ledger = ScenarioLedger("trigger-unresolvable")
    trigger = _added_trigger(stack)
    trigger["metadata"]["name"] = "e2e-unresolvable"
    trigger["spec"]["subscriber"] = {
        "ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "e2e-missing"}
    }
    stack.kube.apply(trigger)
    scripts = sync.health_scripts()
    seen: list[str] = []
    deadline = time.monotonic() + 90
    status = None
    while time.monotonic() < deadline:
        status = sync.health(stack.kube, trigger, scripts)
        if status is not None and status.status not in seen:
            seen.append(status.status)
        if status is not None and status.status == "Degraded":
            break
        time.sleep(1)
    stack.kube.delete(trigger)
    message = f"health {' -> '.join(seen)}" + (f": {status.message[:160]}" if status is not None else "")
    ledger.notes.append(message if seen and seen[-1] == "Degraded" else f"FAIL: never Degraded ({message})")
    return ledger


def _ready_replicas(metrics_url: str, kind: str, name: str) -> float | None:
    """kube_<kind>_status_replicas_ready (StatefulSet) or kube_deployment_status_replicas_available of one workload,
    as kube-state-metrics serves it (None: not (yet) exported)."""
    metric = (
        "kube_statefulset_status_replicas_ready"
        if kind == "statefulset"
        else ("kube_deployment_status_replicas_available")
    )
    try:
        with urllib.request.urlopen(metrics_url, timeout=2) as response:
            text = response.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric and sample.labels.get(kind) == name:
                return float(sample.value)
    return None


def replica_lost(stack: LiveStack, p: sc.Producing) -> ScenarioLedger:
    """The KafkaSource dispatcher's first pod is SIGKILLed and stays down through the scenario's last scrape: the
    stand-in kubelet reports the pod not Ready and the stand-in StatefulSet controller writes one ready replica less, as
    the real ones would; kube-state-metrics, watching the API server, exports it. Records produced meanwhile wait
    in the source topic. After the alerts are judged (promtool holds the last scrape for six minutes, past the
    alert's `for:`), the pod is restarted and every record must be processed."""
    ledger = ScenarioLedger("replica-lost")
    role, workload = "source-dispatcher", "kafka-source-dispatcher"
    url = stack.metrics_targets()[KUBE_STATE_METRICS]
    before = _ready_replicas(url, "statefulset", workload)
    started = time.monotonic()
    stack.supervisor.kill(role)
    # One pod of the workload's replicas (dev: 1 -> 0; prod's two: 2 -> 1): below its expected replicas either way.
    target = int(before if before is not None else 1) - 1

    def below() -> bool:
        ready = _ready_replicas(url, "statefulset", workload)
        return ready is not None and ready <= target

    seen = _wait(below, 60)
    reported_s = time.monotonic() - started
    ledger.produced |= p.many(sc.source_topics(stack)[0], 20)
    time.sleep(4)  # at least one more scrape of the state the alerts are judged on
    ledger.notes.append(
        f"SIGKILL of {workload}-0: kube-state-metrics reported ready {before if before is None else int(before)} -> "
        + (f"{target} after {reported_s:.0f}s" if seen else f"never {target}")
        + "; 20 records produced while it is down"
    )
    if not seen:
        ledger.notes.append(f"FAIL: kube-state-metrics never reported {workload} below its replicas")

    def restore() -> None:
        stack.supervisor.restart(role)
        back = _wait(lambda: _ready_replicas(url, "statefulset", workload) == target + 1, 120)
        sc.settle(stack, ledger, sc.deadline_for(stack) + 60)
        ledger.notes.append("restarted after the alerts were judged" + (f"; ready {target + 1} again" if back else ""))
        if not back:
            ledger.notes.append(f"FAIL: {workload} did not report ready again")

    ledger.after = restore
    return ledger


def _wait(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


WRONG_PASSWORD = "e2e-not-the-password"


def _broker(stack: LiveStack) -> Obj:
    return next(o for o in stack.objects if o["kind"] == "Broker")


def _watch_health(stack: LiveStack, obj: Obj, want: str, timeout: float, seen: list[str], because: str = "") -> str:
    """Poll our health check on the live object until it says `want` (with `because` in its message); the states
    seen are appended to `seen`."""
    assert stack.kube is not None
    scripts = sync.health_scripts()
    deadline = time.monotonic() + timeout
    message = ""
    while time.monotonic() < deadline:
        status = sync.health(stack.kube, obj, scripts)
        if status is not None:
            if not seen or seen[-1] != status.status:
                seen.append(status.status)
            message = status.message
            if status.status == want and because in status.message:
                break
        time.sleep(1)
    return message


def bad_kafka_password(stack: LiveStack, p: sc.Producing) -> ScenarioLedger | None:
    """The secret store hands out a wrong Kafka password (issue 27 item 4): the External Secrets stand-in writes it
    into the Secret the render declares, the controller reconciles with it and the Broker is not Ready (our health
    check: Degraded), while records keep arriving; then the right password is restored. Whatever the data plane
    did meanwhile, no record may be acknowledged and lost: the ledger accounts for every one after the restore.
    None when the render's Kafka takes no credentials."""
    from gitops.e2e import live

    if stack.kube is None or not stack.secret_store or stack.kafka.sasl_ssl is None:
        return None
    auth = live.kafka_auth(stack.objects)
    assert isinstance(auth, live.KafkaAuth)
    ledger = ScenarioLedger("bad-kafka-password")
    broker = _broker(stack)
    before = stack.healthy_again()  # a Broker Degraded for another reason (an earlier scenario) proves nothing
    if before.startswith("FAIL"):
        ledger.notes.append(f"FAIL: not Healthy before the password changed: {before}")
        return ledger
    topic = sc.source_topics(stack)[0]
    ledger.produced |= p.many(topic, 10, rate=10)  # flowing when the password changes
    started = time.monotonic()
    stack.secret_store = live.secret_store(auth, stack.kafka, password=WRONG_PASSWORD)
    seen: list[str] = ["Healthy"]
    # Degraded because of the password: sarama's "SASL Authentication failed" in the Broker's Ready message.
    degraded = _watch_health(stack, broker, "Degraded", 120, seen, because="SASL")
    degraded_s = time.monotonic() - started
    ledger.produced |= p.many(topic, 10, rate=5)  # arriving while the Broker is not Ready
    stack.secret_store = live.secret_store(auth, stack.kafka)
    restored = time.monotonic()
    healthy_msg = _watch_health(stack, broker, "Healthy", 180, seen)
    healthy_s = time.monotonic() - restored
    ledger.produced |= p.many(topic, 10)
    sc.settle(stack, ledger, sc.deadline_for(stack) + 30)
    path = " -> ".join(seen)
    if "Degraded" not in seen or "SASL" not in degraded:
        ledger.notes.append(f"FAIL: the Broker never Degraded for the wrong password (health {path}: {degraded[:160]})")
    elif seen[-1] != "Healthy":
        ledger.notes.append(
            f"FAIL: the Broker not Healthy again with the right password (health {path}: {healthy_msg[:160]})"
        )
    else:
        ledger.notes.append(
            f"Broker health {path}: Degraded {degraded_s:.0f}s after the wrong password ({degraded[:120]}), "
            f"Healthy {healthy_s:.0f}s after the right one"
        )
    ledger.notes.append(stack.healthy_again())
    return ledger
