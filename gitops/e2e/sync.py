"""The render applied to the e2e's API server the way Argo CD syncs it: wave by wave, each wave waited on.

Argo CD (gitops-engine pkg/sync) applies an Application's objects in sync-wave order (the
`argocd.argoproj.io/sync-wave` annotation, gitops/model/argocd.py `wave`), within a wave by kind (Namespaces, then
CRDs, ServiceAccounts, RBAC, ..., then the custom resources), and starts the next wave only when every object of
the current one is Healthy. Health of the Knative kinds comes from this repository's own checks
(argocd/resource_customizations/*/*/health.lua, run by gitops/model/argocd_health.py on the live objects). Kinds
without one of our checks count as applied (what Argo CD does for a kind it has no health for): the workloads of
the releases have no kubelet here, so their built-in health would wait forever.

We apply with server-side apply, not with Argo CD's own sync code: that code (github.com/argoproj/gitops-engine)
needs Argo CD's cluster cache, its argocd-cm settings and a running application controller; the part the e2e can
check, that the render is accepted by the API server in wave order and that each wave becomes healthy, is this.

What is left out or changed, each for a reason the cluster would not have (docs/e2e.md):
- admission webhook configurations (Mutating/ValidatingWebhookConfiguration): no webhook server runs here, and
  the webhook admission plugins are off (Knative's admission code runs in `make validate`);
- CRD conversion webhooks: `strategy: None`, and for a CRD that served a second version through the webhook, the
  storage version becomes the one the render and the 1.23 controllers use (`conversion_patches`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from gitops.core.manifests import Obj
from gitops.e2e.kube import Kube, KubeError
from gitops.model import argocd_health
from gitops.model.argocd import wave

SKIPPED_KINDS = frozenset({"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"})
# gitops-engine pkg/sync/sync_tasks.go `kindOrder` (from Helm's kind_sorter): the order of kinds within one wave,
# then by name; kinds not listed (custom resources) last.
KIND_ORDER = (
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "Ingress",
    "APIService",
)
WAVE_TIMEOUT_S = 180


def kind_rank(obj: Obj) -> int:
    kind = obj["kind"]
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def group_of(obj: Obj) -> str:
    api_version = obj["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


def conversion_patches(objects: list[Obj]) -> dict[str, str]:
    """CRD name -> the storage version it gets when its conversion webhook is replaced by `None`: the version the
    render's objects of that kind are written in, when the CRD serves it (else the CRD's own storage version)."""
    used: dict[tuple[str, str], set[str]] = {}
    for obj in objects:
        if "/" in obj["apiVersion"]:
            group, version = obj["apiVersion"].split("/")
            used.setdefault((group, obj["kind"]), set()).add(version)
    out = {}
    for crd in objects:
        if crd["kind"] != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        if (spec.get("conversion") or {}).get("strategy") != "Webhook":
            continue
        served = [v["name"] for v in spec["versions"] if v.get("served")]
        storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
        wanted = sorted(used.get((spec["group"], spec["names"]["kind"]), set()) & set(served))
        out[crd["metadata"]["name"]] = wanted[0] if len(wanted) == 1 else storage
    return out


def prepared(objects: list[Obj]) -> list[Obj]:
    """The objects the e2e applies: the render minus webhook configurations, CRD conversion set to None."""
    storage = conversion_patches(objects)
    out = []
    for obj in objects:
        if obj["kind"] in SKIPPED_KINDS:
            continue
        if obj["kind"] == "CustomResourceDefinition" and obj["metadata"]["name"] in storage:
            obj = copy.deepcopy(obj)
            obj["spec"]["conversion"] = {"strategy": "None"}
            for version in obj["spec"]["versions"]:
                version["storage"] = version["name"] == storage[obj["metadata"]["name"]]
        out.append(obj)
    return out


@dataclass
class WaveResult:
    wave: int
    applied: int
    waited: list[str] = field(default_factory=list)  # "Kind ns/name: Healthy"
    seconds: float = 0.0


class SyncFailed(RuntimeError):
    pass


def health_scripts() -> dict[tuple[str, str], str]:
    return {(c.group, c.kind): c.script for c in argocd_health.discover()}


def health(kube: Kube, obj: Obj, scripts: dict[tuple[str, str], str]) -> argocd_health.HealthStatus | None:
    """The repository's health check on the live object, or None for a kind without one."""
    script = scripts.get((group_of(obj), obj["kind"]))
    if script is None:
        return None
    meta = obj["metadata"]
    live = kube.get(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
    if live is None:
        return argocd_health.HealthStatus("Missing", "not found")
    return argocd_health.run(script, live)


def wait_healthy(
    kube: Kube,
    objs: list[Obj],
    scripts: dict[tuple[str, str], str],
    timeout: float = WAVE_TIMEOUT_S,
    on_wait: Callable[[], None] | None = None,
) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        states = {}
        for obj in objs:
            try:
                status = health(kube, obj, scripts)
            except (KubeError, httpx.HTTPError) as error:  # the API server restarting (a scenario does that)
                has_check = (group_of(obj), obj["kind"]) in scripts
                status = argocd_health.HealthStatus("Unknown", str(error)[:200]) if has_check else None
            if status is not None:
                states[f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"] = status
        pending = {k: s for k, s in states.items() if s.status != "Healthy"}
        if not pending:
            return [f"{k}: Healthy" for k in sorted(states)]
        if time.monotonic() > deadline:
            raise SyncFailed(
                f"not Healthy after {timeout:.0f}s: "
                + "; ".join(f"{k}: {s.status} ({s.message})" for k, s in sorted(pending.items()))
            )
        if on_wait is not None:
            on_wait()
        time.sleep(1)


def wait_crds(kube: Kube, crds: list[Obj], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for crd in crds:
        while True:
            live = kube.get(crd["apiVersion"], crd["kind"], None, crd["metadata"]["name"]) or {}
            conditions = (live.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise SyncFailed(f"CRD {crd['metadata']['name']} not Established after {timeout:.0f}s")
            time.sleep(0.2)
    kube.forget_discovery()


def sync(
    kube: Kube,
    objects: list[Obj],
    log: Callable[[str], None] = print,
    timeout: float = WAVE_TIMEOUT_S,
    on_wait: Callable[[], None] | None = None,
) -> list[WaveResult]:
    """Apply `objects` wave by wave; after each wave wait until every object with a health check is Healthy.
    `on_wait` runs while waiting (the stand-ins for the kubelet and volume sync)."""
    scripts = health_scripts()
    results = []
    by_wave: dict[int, list[Obj]] = {}
    for obj in prepared(objects):
        by_wave.setdefault(wave(obj), []).append(obj)
    for number in sorted(by_wave):
        started = time.monotonic()
        objs = sorted(by_wave[number], key=lambda o: (kind_rank(o), o["metadata"]["name"]))
        crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
        for obj in objs:
            if (
                obj["kind"] != "CustomResourceDefinition"
                and crds
                and kind_rank(obj) > KIND_ORDER.index("CustomResourceDefinition")
            ):
                wait_crds(kube, crds)
                crds = []
            kube.apply(obj)
        if crds:
            wait_crds(kube, crds)
        if on_wait is not None:
            on_wait()  # the stand-ins see the wave at once (an operator writes an ExternalSecret's Secret, no health)
        waited = wait_healthy(kube, objs, scripts, timeout, on_wait)
        result = WaveResult(number, len(objs), waited, time.monotonic() - started)
        results.append(result)
        log(
            f"e2e: sync wave {number}: {len(objs)} applied"
            + (f", {len(waited)} Healthy ({', '.join(w.split(':')[0] for w in waited)})" if waited else "")
            + f" [{result.seconds:.0f}s]"
        )
    return results


def describe(status: Any) -> str:
    return f"{status.status}: {status.message}" if status is not None else "no health check"
