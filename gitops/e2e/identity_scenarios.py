"""Scenarios of sender identity (Eventing OIDC), run only where the render turns it on (config-features
`authentication-oidc: enabled`: prod) and the control plane is in the loop (gitops/e2e/live.py): the tokens are the
API server's, the dispatchers obtain them by TokenRequest for the OIDC ServiceAccounts the controller creates, the
receivers enforce the EventPolicies the controller writes into their contracts, and the subscriber verifies issuer,
audience and subject with the render's OIDC_* settings. Each ends in one ledger line like the others.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from gitops.core.manifests import Obj
from gitops.e2e import cluster, identity_gap, replay
from gitops.e2e import scenarios as sc
from gitops.e2e.ledger import EventKey, ScenarioLedger
from gitops.e2e.live import LiveStack
from gitops.events.payloads import build_payload

CONTRACT_TIMEOUT_S = 120
INTRUDER = "e2e-intruder"  # a ServiceAccount no EventPolicy names
SERVICE_ACCOUNT_SUBJECT = "system:serviceaccount:"
EVENT_TYPE = "dev.knative.kafka.event"  # what the KafkaSource gives a plain record (the Triggers filter on source)


def _triggers(stack: LiveStack) -> list[Obj]:
    return [o for o in stack.objects if o["kind"] == "Trigger"]


def _live(stack: LiveStack, obj: Obj) -> dict[str, Any]:
    assert stack.kube is not None
    meta = obj["metadata"]
    return stack.kube.get(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]) or {}


def _oidc_subject(stack: LiveStack, obj: Obj) -> str:
    """The sender's identity as the controller set it (status.auth.serviceAccountName), as a token's `sub`."""
    account = ((_live(stack, obj).get("status") or {}).get("auth") or {}).get("serviceAccountName", "")
    return f"{SERVICE_ACCOUNT_SUBJECT}{obj['metadata']['namespace']}:{account}" if account else ""


def _topic_of(stack: LiveStack, trigger: Obj) -> str:
    source = ((trigger["spec"].get("filter") or {}).get("attributes") or {}).get("source", "")
    return next((t for t in sc.source_topics(stack) if source.endswith("#" + t)), sc.source_topics(stack)[0])


def _records(stack: LiveStack, keys: set[EventKey]) -> list[dict[str, Any]]:
    return [r for r in stack.subscriber_records("processed") if (r["ce_source"], r["ce_id"]) in keys]


def _broker_audience(stack: LiveStack) -> str:
    for resource in stack.contracts.receiver.get("resources", []):
        audience = (resource.get("ingress") or {}).get("audience")
        if audience:
            return str(audience)
    raise LookupError("the Broker receiver's contract has no ingress audience (is authentication-oidc on?)")


def _post(stack: LiveStack, token: str, source: str, event_id: str, topic: str) -> int:
    """One binary CloudEvent to the Broker's ingress address (the private /etc/hosts resolves it), as a sender with
    this token."""
    headers = {
        "authorization": f"Bearer {token}",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": source,
        "ce-type": EVENT_TYPE,
        "content-type": "application/json",
    }
    response = httpx.post(stack.broker_ingress(), headers=headers, content=build_payload(topic), timeout=30)
    return response.status_code


def _ensure_account(stack: LiveStack, namespace: str, name: str) -> None:
    assert stack.kube is not None
    if stack.kube.get("v1", "ServiceAccount", namespace, name) is None:
        stack.kube.create(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
        )


def _wait_egress(stack: LiveStack, predicate: Callable[[dict[str, Any]], bool], what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < CONTRACT_TIMEOUT_S:
        if any(predicate(e) for e in sc.trigger_egresses(stack)):
            return time.monotonic() - started
        time.sleep(0.5)
    raise TimeoutError(f"{what} never reached the Broker dispatcher's contract")


# --- the scenarios ---------------------------------------------------------------------------------------------


def identity_ok(stack: LiveStack, p: sc.Producing) -> ScenarioLedger:
    """Records on every source topic, delivered with real tokens at both hops; each record names its sender."""
    ledger = ScenarioLedger("identity-ok")
    expected: dict[str, str] = {}  # CloudEvent source -> the Trigger's OIDC subject
    for trigger in _triggers(stack):
        topic = _topic_of(stack, trigger)
        expected[sc.event_source(stack, topic)] = _oidc_subject(stack, trigger)
        ledger.produced |= p.many(topic, 10)
    sc.settle(stack, ledger, sc.deadline_for(stack))
    egresses = sc.trigger_egresses(stack)
    with_identity = [e for e in egresses if e.get("oidcServiceAccountName")]
    policies = sum(
        len((r.get("ingress") or {}).get("eventPolicies", [])) for r in stack.contracts.receiver.get("resources", [])
    )
    records = _records(stack, ledger.processed)
    wrong = [r for r in records if r.get("sender_sub") != expected.get(r["ce_source"])]
    if wrong:
        ledger.notes.append(
            f"FAIL: {len(wrong)} record(s) name another sender than their Trigger's identity, e.g. "
            f"{wrong[0].get('sender_sub')!r} for {wrong[0]['ce_source']}"
        )
    if not expected or not all(expected.values()):
        ledger.notes.append("FAIL: a Trigger has no OIDC identity in its status (status.auth.serviceAccountName)")
    if len(with_identity) < len(egresses) or not policies:
        ledger.notes.append(
            f"FAIL: {len(with_identity)} of {len(egresses)} egresses carry an OIDC ServiceAccount, the Broker "
            f"receiver's contract holds {policies} EventPolicies"
        )
    ledger.notes.append(
        f"{len(records)} records name their verified sender ({', '.join(sorted(set(expected.values())))}); "
        f"{len(with_identity)} egresses with an OIDC ServiceAccount, {policies} EventPolicies at the Broker receiver"
    )
    return ledger


def wrong_audience(stack: LiveStack, p: sc.Producing) -> ScenarioLedger:
    """A Trigger whose subscriber audience is not the subscriber's: the dispatcher mints a token for it, the
    subscriber answers 401 wrong_audience, the dispatcher dead-letters (a 4xx is not retried). Restored after."""
    assert stack.kube is not None
    ledger = ScenarioLedger("wrong-audience")
    original = _triggers(stack)[0]
    changed = copy.deepcopy(original)
    audience = original["spec"]["subscriber"].get("audience", "") + "-wrong"
    changed["spec"]["subscriber"]["audience"] = audience
    group = f"knative-trigger-{original['metadata']['namespace']}-{original['metadata']['name']}"
    stack.kube.apply(changed)
    try:
        _wait_egress(
            stack,
            lambda e: e.get("consumerGroup") == group and e.get("destinationAudience") == audience,
            f"audience {audience}",
        )
        time.sleep(2)  # every dispatcher pod's contract file, not only the first one read
        # A Trigger edit re-reconciles the KafkaSource too (its sink is the Broker) and, with the 1.23 gap, its
        # Consumers lose their identity: what the source reads meanwhile is neither delivered nor dead-lettered
        # (seen in `make e2e ENV=prod`: 5 lost, OIDCTokenRequestException in the source dispatcher). The runbook's
        # check after every sync, and its recovery, before this scenario's records.
        ledger.notes.extend(_source_identity_checked(stack, "the Trigger edit"))
        before = len(stack.subscriber_records("unauthorized"))
        ledger.produced |= p.many(_topic_of(stack, original), 5)
        sc.settle(stack, ledger, sc.deadline_for(stack))
        refusals = stack.subscriber_records("unauthorized")[before:]
        reasons = sorted({str(r.get("error")) for r in refusals})
        ledger.notes.append(f"the subscriber answered 401 {len(refusals)} times ({', '.join(reasons) or 'none'})")
        if ledger.processed or "wrong_audience" not in reasons:
            ledger.notes.append("FAIL: a token for another audience was not refused as wrong_audience")
    finally:
        stack.kube.apply(original)
        try:
            _wait_egress(
                stack,
                lambda e: (
                    e.get("consumerGroup") == group
                    and e.get("destinationAudience") == original["spec"]["subscriber"].get("audience")
                ),
                "the restored audience",
            )
        except TimeoutError as error:
            ledger.notes.append(f"FAIL: {error}")
        ledger.notes.extend(_source_identity_checked(stack, "the restore"))
    return ledger


def _source_identity_checked(stack: LiveStack, after: str) -> list[str]:
    """docs/operations.md's check after a sync: when the KafkaSource's Consumers lost their identity, the recovery
    (delete them); the notes say what was found and done."""
    source = next((o for o in stack.objects if o["kind"] == "KafkaSource"), None)
    if source is None or not identity_gap.wait_consumers(stack, source, with_identity=False, seconds=10):
        return []
    if identity_gap.recover(stack, source):
        time.sleep(5)  # the consumer rejoins its group
        return [f"{after} reopened the KafkaSource identity gap (its Consumers lost the identity): recovered"]
    return [f"FAIL: {after} reopened the KafkaSource identity gap and the recovery did not restore the identity"]


def subject_not_in_policy(stack: LiveStack, p: sc.Producing) -> ScenarioLedger:
    """A sender the Broker's EventPolicy does not name, with a valid token for the Broker's audience: the Broker's
    receiver answers 403 and writes nothing to the Broker topic (the sender keeps its event: nothing accepted,
    nothing lost). The same events from an identity the policy names (`sub`: the replay ServiceAccount) are
    accepted and processed."""
    assert stack.kube is not None
    ledger = ScenarioLedger("subject-not-in-policy")
    namespace = sc.kafka_source_name(stack)[0]
    audience = _broker_audience(stack)
    _ensure_account(stack, namespace, INTRUDER)
    intruder = stack.kube.token(namespace, INTRUDER, audience, expiration_s=600)
    named = _named_sub(stack)
    topic = sc.source_topics(stack)[0]
    source = sc.event_source(stack, topic)
    refused: dict[str, int] = {}
    for i in range(5):
        event_id = f"e2e-intruder-{uuid.uuid4()}-{i}"
        refused[event_id] = _post(stack, intruder, source, event_id, topic)
    accepted = 0
    if named:
        account_ns, _, account = named.removeprefix(SERVICE_ACCOUNT_SUBJECT).partition(":")
        token = stack.kube.token(account_ns, account, audience, expiration_s=600)
        for i in range(5):
            event_id = f"e2e-policy-sub-{uuid.uuid4()}-{i}"
            status = _post(stack, token, source, event_id, topic)
            if 200 <= status < 300:
                accepted += 1
                ledger.produced.add((source, event_id))
    sc.settle(stack, ledger, sc.deadline_for(stack))
    statuses = sorted(set(refused.values()))
    broker_topic = next(iter(stack.contracts.brokers.values()))
    written = {k for k, _ in sc.read_topic_events(stack.kafka_client, broker_topic)} & {(source, i) for i in refused}
    ledger.notes.append(
        f"{len(refused)} events from {SERVICE_ACCOUNT_SUBJECT}{namespace}:{INTRUDER} refused at the Broker receiver "
        f"with {statuses}, {len(written)} of them in the Broker topic; {accepted} of 5 from {named or 'no sub'} "
        "accepted"
    )
    if statuses != [403] or written:
        ledger.notes.append("FAIL: a sender outside the EventPolicy was not refused with 403 before the Broker topic")
    if named and accepted != 5:
        ledger.notes.append(f"FAIL: the identity the EventPolicy names was refused ({5 - accepted} of 5)")
    return ledger


def _named_sub(stack: LiveStack) -> str:
    """The person's identity the Broker's EventPolicy names by `sub` (prod's replay ServiceAccount; `gitops replay`
    finds it the same way), '' when it names none."""
    identities = replay.replay_identities(stack.objects)
    return f"{SERVICE_ACCOUNT_SUBJECT}{identities[0][0]}:{identities[0][1]}" if identities else ""


def jwks_rotated(stack: LiveStack, p: sc.Producing) -> ScenarioLedger:
    """The API server's signing key changes mid-run as a rotation does (a new signing key; the old public key still
    listed, so tokens signed before stay valid): records before, during (tokens the dispatchers cached, signed with
    the old key) and after the senders took new tokens (signed with the new key), all processed."""
    assert stack.kube is not None and stack.api is not None
    ledger = ScenarioLedger("jwks-rotated")
    topic = _topic_of(stack, _triggers(stack)[0])
    ledger.produced |= p.many(topic, 5, rate=5)
    cluster.rotate_signing_key(stack.supervisor, stack.api)
    stack.kube.forget_discovery()
    kids = [k.get("kid") for k in stack.kube.client.get("/openid/v1/jwks").json().get("keys", [])]
    ledger.produced |= p.many(topic, 5)  # the dispatchers' cached tokens: old key, still listed
    sc.settle(stack, ledger, sc.deadline_for(stack))
    # A new-key token straight to the Broker receiver, which fetched the JWKS at its start.
    namespace = sc.kafka_source_name(stack)[0]
    source_obj = next(o for o in stack.objects if o["kind"] == "KafkaSource")
    source_account = _oidc_subject(stack, source_obj).rpartition(":")[2]
    fresh = stack.kube.token(namespace, source_account, _broker_audience(stack), expiration_s=600)
    probe_id = f"e2e-rotated-{uuid.uuid4()}"
    stale_status = _post(stack, fresh, sc.event_source(stack, topic), probe_id, topic)
    if 200 <= stale_status < 300:
        ledger.produced.add((sc.event_source(stack, topic), probe_id))
    # The rollout a rotation needs: receivers first (they read the JWKS at start), then the senders (their
    # TokenProvider caches a token for 55 minutes; a new process asks the API server again).
    for role in ("receiver", "sink-receiver"):
        stack.supervisor.stop(role)
        stack.supervisor.restart(role)
    stack.wait_receivers_ready()
    for role in ("source-dispatcher", "broker-dispatcher"):
        stack.supervisor.stop(role)  # SIGTERM: the consumer commits its offsets on the way out
        stack.supervisor.restart(role)
    ledger.produced |= p.many(topic, 5, rate=2)
    sc.settle(stack, ledger, sc.deadline_for(stack) + 60)
    fetched = [r for r in _subscriber_lines(stack) if r.get("kids")]
    last_kids = fetched[-1]["kids"] if fetched else []
    ledger.notes.append(
        f"JWKS after the rotation: {len(kids)} keys; a new-key token at the Broker receiver started before the "
        f"rotation: {stale_status}; after the receivers' restart and new tokens the subscriber's JWKS holds "
        f"{len(last_kids)} keys"
    )
    if len(kids) != 2 or len(last_kids) != 2:
        ledger.notes.append("FAIL: old and new key not both published and fetched")
    return ledger


def _subscriber_lines(stack: LiveStack) -> list[dict[str, Any]]:
    out = []
    for line in stack.subscriber_log().read_text(errors="replace").splitlines():
        if '"kids"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


GAP_WAIT_S = 60


def kafkasource_consumer_update(stack: LiveStack, p: sc.Producing) -> ScenarioLedger:
    """The 1.23 defect docs/operations.md describes ("Identity gaps" (a)): a KafkaSource spec edit updates its
    Consumers from the group-level oidcServiceAccountName (unset for a KafkaSource), so they lose the identity and
    the source dispatcher cannot mint tokens: records read meanwhile are neither delivered nor dead-lettered. The
    runbook's recovery: delete the Consumers, then re-produce the dropped records."""
    assert stack.kube is not None
    ledger = ScenarioLedger("kafkasource-consumer-update")
    source = next(o for o in stack.objects if o["kind"] == "KafkaSource")
    topic = sc.source_topics(stack)[-1]
    ledger.produced |= p.many(topic, 5)
    sc.settle(stack, ledger, sc.deadline_for(stack))
    edited = copy.deepcopy(source)
    delivery = edited["spec"].setdefault("delivery", {})
    delivery["retry"] = int(delivery.get("retry", 0)) + 1  # an ordinary spec edit the Consumers carry
    stack.kube.apply(edited)
    try:
        if not identity_gap.wait_consumers(stack, source, with_identity=False, seconds=GAP_WAIT_S):
            ledger.notes.append("the Consumers kept their identity after the edit: the upstream gap did not reproduce")
            return ledger
        time.sleep(3)  # the source dispatcher's contract without the identity
        payloads = [build_payload(topic) for _ in range(5)]
        reports = [p.plain(topic, payload) for payload in payloads]  # filled by the delivery reports on flush
        p.producer.flush(30)
        dropped = {key for keys in reports for key in keys}
        ledger.produced |= dropped
        time.sleep(20)
        dead = set(sc.dead_letters(stack))
        gone = {k for k in dropped if k not in sc.processed_keys(stack) and k not in dead}
        recovered = identity_gap.recover(stack, source)
        time.sleep(5)  # the consumer rejoins its group
        again = [p.plain(topic, payload) for payload in payloads]
        p.producer.flush(30)
        copies: set[EventKey] = set()
        for originals, copied in zip(reports, again, strict=True):
            for original, copy_key in zip(originals, copied, strict=False):
                copies.add(copy_key)
                if original in gone:
                    ledger.reproduce(original, copy_key)
                else:
                    ledger.produced.add(copy_key)
        sc.settle(stack, ledger, sc.deadline_for(stack) + 60)
        ledger.notes.append(
            f"after the edit every Consumer lost oidcServiceAccountName; {len(gone)} of {len(dropped)} records read "
            f"meanwhile neither processed nor dead-lettered; Consumers deleted and re-created with the identity: "
            f"{recovered}; the {len(copies)} re-produced copies processed: {copies <= ledger.processed}"
        )
    finally:
        stack.kube.apply(source)  # the render again: another Consumer update, so the gap again, and its recovery
        if identity_gap.wait_consumers(
            stack, source, with_identity=False, seconds=GAP_WAIT_S
        ) and not identity_gap.recover(stack, source):
            ledger.notes.append("FAIL: the KafkaSource's Consumers did not get their identity back after the restore")
    return ledger


SCENARIOS = {
    "identity-ok": identity_ok,
    "wrong-audience": wrong_audience,
    "subject-not-in-policy": subject_not_in_policy,
    "jwks-rotated": jwks_rotated,
    "kafkasource-consumer-update": kafkasource_consumer_update,
}
