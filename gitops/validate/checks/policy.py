"""Production policy and repository hygiene: what a reviewer would hate to discover in production."""

import ipaddress
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.eventing import broker_configmap
from gitops.model.serving import VISIBILITY, knative_services
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

DIGEST_REF = re.compile(r"@sha256:[0-9a-f]{64}$")
MIN_REPLICATION = 3


def pod_specs(obj: Obj) -> Iterator[dict]:
    """The pod specs inside a workload (Deployment & co., Job, CronJob, Knative Service)."""
    spec = obj.get("spec") or {}
    for candidate in (
        dig(spec, "template", "spec"),
        dig(spec, "jobTemplate", "spec", "template", "spec"),
        spec if obj.get("kind") == "Pod" else None,
    ):
        if isinstance(candidate, dict) and candidate.get("containers"):
            yield candidate


def containers(obj: Obj) -> Iterator[tuple[dict, dict]]:
    for pod in pod_specs(obj):
        for container in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            yield pod, container


@env_check("secrets")
def check_secrets_not_in_git(ctx: EnvContext) -> Iterator[Finding]:
    """No Secret of ours carries literal data in git."""
    for secret in manifests.of_kind(ctx.objects, "", "Secret"):
        if not ctx.render.is_upstream(secret) and (secret.get("data") or secret.get("stringData")):
            yield ctx.finding(
                "secrets",
                secret,
                "a Secret with literal data is committed: declare it as an ExternalSecret instead (as "
                "overlays/prod/kafka-credentials.yaml does; docs/security-model.md, 'Kafka credentials')",
            )


# Host names that only the cluster's DNS answers: <svc>.<ns>.svc[.cluster.local], or *.cluster.local.
CLUSTER_DNS_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")


def _destinations(obj: Obj) -> Iterator[tuple[str, object]]:
    """Where a Trigger delivers and where a Trigger or Broker dead-letters."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Trigger":
        yield "spec.subscriber", spec.get("subscriber")
    yield "spec.delivery.deadLetterSink", dig(spec, "delivery", "deadLetterSink")


def outside_cluster_host(destination: object, namespaces: set[str]) -> str | None:
    """The host a Destination sends to when that host is outside the cluster, else None.

    A `ref` resolves to the target's in-cluster address (a `uri` beside it is only a path). A bare `uri` stays in
    the cluster only through cluster DNS: a single-label Service name, <svc>.<namespace> for a namespace in the
    render, or a *.svc / *.cluster.local name. Anything else, IP literals included, is treated as leaving it.
    """
    if not isinstance(destination, dict) or destination.get("ref") or not destination.get("uri"):
        return None
    host = (urlsplit(str(destination["uri"])).hostname or "").rstrip(".").lower()
    if not host:
        return None  # a relative URI without a ref: the webhook refuses it
    try:
        return None if ipaddress.ip_address(host).is_loopback else host
    except ValueError:
        pass
    labels = host.split(".")
    if len(labels) == 1 or host.endswith(CLUSTER_DNS_SUFFIXES) or (len(labels) == 2 and labels[1] in namespaces):
        return None
    return host


@env_check("event-egress")
def check_events_stay_in_cluster(ctx: EnvContext) -> Iterator[Finding]:
    """Production: no Trigger subscriber or dead-letter sink sends events to a URI outside the cluster.

    In production, events leaving the cluster (a Trigger subscriber or a dead-letter sink with an external URI)
    must be an explicit decision: a waiver in validation-waivers.yaml with its reason, never an accident."""
    if not ctx.is_production:
        return
    namespaces = {manifests.meta(ns).get("name") for ns in manifests.of_kind(ctx.objects, "", "Namespace")}
    for obj in ctx.objects:
        if manifests.group_of(obj) != "eventing.knative.dev" or obj.get("kind") not in {"Trigger", "Broker"}:
            continue
        for where, destination in _destinations(obj):
            host = outside_cluster_host(destination, namespaces)
            if host is not None:
                yield ctx.finding(
                    "event-egress",
                    obj,
                    f"{where} delivers to {host}, outside the cluster: events leave it. Point it at an in-cluster "
                    "ref, or waive this finding with the reason",
                )


@env_check("prod-policy")
def check_production_policy(ctx: EnvContext) -> Iterator[Finding]:
    """Production: cluster-local services, digest-pinned images, replicated authenticated Kafka, hardened pods, limits, a DLS."""
    if not ctx.is_production:
        return
    yield from _replication(ctx)
    for ksvc in knative_services(ctx.objects):
        if manifests.labels(ksvc).get(VISIBILITY) != "cluster-local":
            yield ctx.finding("prod-policy", ksvc, f"public in production: label it {VISIBILITY}: cluster-local")
    for obj in ctx.objects:
        for pod, container in containers(obj):
            image = container.get("image", "")
            if not DIGEST_REF.search(image):
                yield ctx.finding(
                    "prod-policy",
                    obj,
                    f"container {container.get('name')} image {image!r} is not pinned by @sha256 digest",
                    field="spec.template.spec.containers.image" if obj.get("kind") == "Service" else None,
                )
            if not ctx.render.is_upstream(obj):
                yield from _hardening(ctx, obj, pod, container)
    for broker in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Broker"):
        if not dig(broker, "spec", "delivery", "deadLetterSink"):
            yield ctx.finding("prod-policy", broker, "no dead-letter sink: undeliverable events are dropped")


def _replication(ctx: EnvContext) -> Iterator[Finding]:
    for broker in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Broker"):
        cm = broker_configmap(ctx.objects, broker)
        data = (cm or {}).get("data") or {}
        rf = data.get("default.topic.replication.factor", "")
        if cm is not None and (not rf.isdigit() or int(rf) < MIN_REPLICATION):
            yield ctx.finding(
                "prod-policy",
                cm,
                f"default.topic.replication.factor {rf!r} < {MIN_REPLICATION}: one broker loss loses events",
                field="data[default.topic.replication.factor]",
            )
        if cm is not None and not data.get("auth.secret.ref.name"):
            yield ctx.finding("prod-policy", cm, "no auth.secret.ref.name: production Kafka traffic is unauthenticated")


def _hardening(ctx: EnvContext, obj: Obj, pod: dict, container: dict) -> Iterator[Finding]:
    name = container.get("name")
    sc = container.get("securityContext") or {}
    pod_sc = pod.get("securityContext") or {}
    expectations = [
        (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, "runAsNonRoot: true"),
        (sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false"),
        (sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true"),
        ("ALL" in (dig(sc, "capabilities", "drop") or []), "capabilities.drop: [ALL]"),
        (
            (dig(sc, "seccompProfile", "type") or dig(pod_sc, "seccompProfile", "type"))
            in {"RuntimeDefault", "Localhost"},
            "seccompProfile.type: RuntimeDefault",
        ),
    ]
    for ok, wanted in expectations:
        if not ok:
            yield ctx.finding("prod-policy", obj, f"container {name} securityContext lacks {wanted}")
    resources = container.get("resources") or {}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(kind) or {}):
                yield ctx.finding("prod-policy", obj, f"container {name} has no {kind}.{resource}")
