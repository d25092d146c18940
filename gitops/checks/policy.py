"""Production policy and repository hygiene: what a reviewer would hate to discover in production."""

import re
from collections.abc import Iterator

from gitops import environments, manifests
from gitops.checks import EnvContext, Finding
from gitops.checks.eventing import broker_configmap
from gitops.checks.serving import VISIBILITY, knative_services
from gitops.manifests import Obj, dig

DIGEST_REF = re.compile(r"@sha256:[0-9a-f]{64}$")
MIN_REPLICATION = 3


def is_production(ctx: EnvContext) -> bool:
    """Whether ctx's environment is held to the production policy (environments.yaml `production`)."""
    return environments.load(ctx.root).is_production(ctx.env)


def _is_ours(ctx: EnvContext, obj: Obj) -> bool:
    return not ctx.render.origin(obj).startswith("https://")


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


def check_secrets_not_in_git(ctx: EnvContext) -> Iterator[Finding]:
    for secret in manifests.of_kind(ctx.objects, "", "Secret"):
        if _is_ours(ctx, secret) and (secret.get("data") or secret.get("stringData")):
            yield ctx.finding(
                "secrets",
                secret,
                "a Secret with literal data is committed: create it out of band (External Secrets, Sealed Secrets)",
            )


def check_production_policy(ctx: EnvContext) -> Iterator[Finding]:
    if not is_production(ctx):
        return
    yield from _replication(ctx)
    for ksvc in knative_services(ctx):
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
            if _is_ours(ctx, obj):
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


CHECKS = [check_secrets_not_in_git, check_production_policy]
