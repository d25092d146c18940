"""What Argo CD reads from our files: the Argo CD manifests we ship, sync waves, sync options, ignore rules."""

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.core import manifests
from gitops.core.manifests import Obj

# What a person applies once (`kubectl apply -f argocd-app.yaml`), at the top level where readers look first.
APP_FILE = "argocd-app.yaml"
ARGOCD_DIR = "argocd"
WAVE = "argocd.argoproj.io/sync-wave"
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
IN_CLUSTER = "https://kubernetes.default.svc"
# Kinds Argo CD v3.5.1 has a built-in health check for, among the custom resources we deploy
# (resource_customizations/serving.knative.dev/Service and resource_customizations/external-secrets.io/ExternalSecret
# in argoproj/argo-cd: Healthy once Ready=True, i.e. the Secret is written; Degraded on Ready=False).
BUILTIN_HEALTH = frozenset({("serving.knative.dev", "Service"), ("external-secrets.io", "ExternalSecret")})


@dataclass(frozen=True)
class ArgoDoc:
    """One object from argocd-app.yaml or argocd/*.yaml, with the repo-relative file it sits in."""

    path: str
    obj: Obj

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str(manifests.meta(self.obj).get("name", ""))

    @property
    def spec(self) -> dict[str, Any]:
        return self.obj.get("spec") or {}

    @property
    def ref(self) -> str:
        return str(manifests.ObjKey.of(self.obj))


def argocd_paths(root: Path) -> list[Path]:
    """argocd-app.yaml and the top level of argocd/ (health-check fixtures under resource_customizations are not
    Argo CD objects)."""
    files = [root / APP_FILE] if (root / APP_FILE).is_file() else []
    return files + sorted((root / ARGOCD_DIR).glob("*.yaml"))


def load_docs(root: Path) -> list[ArgoDoc]:
    return [
        ArgoDoc(str(path.relative_to(root)), obj)
        for path in argocd_paths(root)
        for obj in manifests.load_stream(path.read_text())
    ]


def applications(docs: list[ArgoDoc]) -> list[ArgoDoc]:
    return [d for d in docs if d.kind == "Application" and manifests.group_of(d.obj) == "argoproj.io"]


def projects(docs: list[ArgoDoc]) -> dict[str, ArgoDoc]:
    return {d.name: d for d in docs if d.kind == "AppProject" and manifests.group_of(d.obj) == "argoproj.io"}


def sources(app: ArgoDoc) -> list[dict[str, Any]]:
    spec = app.spec
    return list(spec.get("sources") or ([spec["source"]] if spec.get("source") else []))


def wave(obj: Obj) -> int:
    """The object's sync wave (default 0). Raises ValueError for a value Argo CD could not parse."""
    return int(str(manifests.annotations(obj).get(WAVE, "0")).strip())


def sync_options(obj: Obj) -> dict[str, str]:
    raw = manifests.annotations(obj).get(SYNC_OPTIONS, "")
    pairs = (item.strip().split("=", 1) for item in raw.split(",") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


def is_namespaced(obj: Obj) -> bool:
    return bool(manifests.meta(obj).get("namespace"))


def rule_matches(rule: dict[str, Any], obj: Obj) -> bool:
    """Whether an Application ignoreDifferences entry applies to obj (group, kind, optional name/namespace)."""
    key = manifests.ObjKey.of(obj)
    return (
        (rule.get("group") or "") == key.group
        and rule.get("kind") == key.kind
        and rule.get("name", key.name) == key.name
        and rule.get("namespace", key.namespace) == key.namespace
    )


def rule_paths(rule: dict[str, Any]) -> set[str]:
    return set(rule.get("jsonPointers") or []) | set(rule.get("jqPathExpressions") or [])


def whitelist_matches(entry: dict[str, Any], obj: Obj) -> bool:
    key = manifests.ObjKey.of(obj)
    name = entry.get("name")
    return (
        (entry.get("group") or "") == key.group
        and entry.get("kind") == key.kind
        and (name is None or fnmatch.fnmatchcase(key.name, name))
    )


def references(obj: Obj) -> Iterator[tuple[str, str, str, str, str]]:
    """(field, group, kind, namespace, name) of every object obj needs before it can become Ready."""
    spec = obj.get("spec") or {}
    namespace = manifests.meta(obj).get("namespace") or ""
    for field, ref in (
        ("spec.subscriber.ref", manifests.dig(spec, "subscriber", "ref")),
        ("spec.sink.ref", manifests.dig(spec, "sink", "ref")),
        ("spec.delivery.deadLetterSink.ref", manifests.dig(spec, "delivery", "deadLetterSink", "ref")),
    ):
        if isinstance(ref, dict) and ref.get("kind"):
            group = str(ref.get("apiVersion", "")).split("/", 1)[0] if "/" in str(ref.get("apiVersion", "")) else ""
            yield field, group, ref["kind"], ref.get("namespace") or namespace, ref.get("name", "")
    if obj.get("kind") == "Trigger" and isinstance(spec.get("broker"), str):
        yield "spec.broker", "eventing.knative.dev", "Broker", namespace, spec["broker"]
    config = spec.get("config")
    if obj.get("kind") == "Broker" and isinstance(config, dict) and config.get("kind") == "ConfigMap":
        yield "spec.config", "", "ConfigMap", config.get("namespace") or namespace, config.get("name", "")
    # An EventPolicy resolves each `from` ref to the object's OIDC identity (status.auth.serviceAccountName); until
    # that object exists and is reconciled it is Ready=False, SubjectsNotResolved (eventing v0.50.0
    # pkg/auth/event_policy.go resolveSubjectsFromReference), so its wave must come after theirs.
    if obj.get("kind") == "EventPolicy":
        for index, item in enumerate(spec.get("from") or []):
            ref = item.get("ref") if isinstance(item, dict) else None
            if isinstance(ref, dict) and ref.get("kind"):
                group = str(ref.get("apiVersion", "")).split("/", 1)[0] if "/" in str(ref.get("apiVersion", "")) else ""
                yield (
                    f"spec.from[{index}].ref",
                    group,
                    ref["kind"],
                    ref.get("namespace") or namespace,
                    ref.get("name", ""),
                )
