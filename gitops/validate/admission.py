"""The upstream admission stage: every rendered object through Knative's own webhooks (bin/knative-admission).

Knative's webhooks, not our reading of them, decide what a cluster accepts: the Go program in
hack/knative-admission runs the serving, eventing and eventing-kafka-broker admission controllers of the pinned
release over each render, as Argo CD's CREATE would meet them (defaulting, then validation, then the ConfigMap
validators). This module hands it the renders and turns its answer into findings; see docs/admission.md.
"""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.core import cache as result_cache
from gitops.core import manifests
from gitops.core.paths import REPO_ROOT
from gitops.core.render import RenderResult
from gitops.upstream.knative_admission import (  # noqa: F401  (re-exported: the stage's callers and tests use them here)
    BINARY,
    AdmissionUnavailable,
    binary,
    context_objects,
    mutate,
    run_binary,
    source_digest,
)
from gitops.validate.findings import Finding, message_fields

CHECK = "upstream-admission"
# Findings of the same Go stage from Kubernetes' own validation (hack/knative-admission/podtemplates.go): every pod
# template the render implies, Knative Services' Revision Deployments included, as the API server would judge it.
POD_TEMPLATE_CHECK = "pod-template"
KUBERNETES_JUDGE = "kube-apiserver validation"


@dataclass(frozen=True)
class AdmissionWarning:
    env: str
    obj: str
    origin: str
    webhook: str
    message: str

    def __str__(self) -> str:
        return f"[{self.env}] {self.obj} ({self.origin}): {self.webhook} warns: {self.message}"


def _object_lookup(render: RenderResult) -> dict[tuple[str, str, str, str], manifests.Obj]:
    return {
        (
            o.get("apiVersion", ""),
            o.get("kind", ""),
            manifests.meta(o).get("namespace") or "",
            manifests.meta(o).get("name") or "",
        ): o
        for o in render.objects
    }


def _kubernetes_refusal(item: dict[str, str]) -> str:
    """`<judge> refuses [<subject> at ]<field path>: <reason>`: the field path is Kubernetes' own, of the object
    or (for a Knative Service) of the Revision Deployment serving builds from it, whose spec.template.spec is the
    Service's spec.template.spec plus queue-proxy."""
    subject, field = item.get("subject") or "", item.get("field") or ""
    where = " at ".join(part for part in (subject, field) if part)
    return f"{item['webhook']} refuses {where or 'it'}: {item['message']}"


def _invoke(payload: dict[str, list[manifests.Obj]], root: Path) -> dict[str, list[dict[str, Any]]]:
    """One run of the binary over `payload` (name -> objects): name -> its findings, as the binary reports them."""
    answer = run_binary([], {"environments": payload}, "environments", "findings report", 300, root)
    return {name: list(answer.get(name) or []) for name in payload}


def _identity(obj: manifests.Obj) -> tuple[str, str, str, str]:
    return (
        obj.get("apiVersion", ""),
        obj.get("kind", ""),
        manifests.meta(obj).get("namespace") or "",
        manifests.meta(obj).get("name") or "",
    )


def _item_identity(item: dict[str, Any]) -> tuple[str, str, str, str]:
    return (item["apiVersion"], item["kind"], item["namespace"], item["name"])


def _canonical(obj: manifests.Obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def _answers(
    renders: dict[str, RenderResult], root: Path, cache: result_cache.ResultCache
) -> dict[str, list[dict[str, Any]]]:
    """env -> the binary's findings for that environment, admitting each distinct (context, object) pair once and
    reusing stored answers.

    An object's admission depends on the object and on its environment's context (context_objects). Its answer is
    stored under both digests; the answers about the context itself (a refused or missing ConfigMap) under the
    context's. Objects still to be judged go to the binary beside their context, in as few environments as keep
    every (kind, namespace, name) unique within one."""
    config = result_cache.digest(
        "admission-v1",
        result_cache.tool_identity(binary(root), source_digest(root)),
        result_cache.code_digest(sys.modules[__name__]),
    )
    plans: dict[str, tuple[list[manifests.Obj], dict[str, manifests.Obj]]] = {}  # context key -> (context, pending)
    named: dict[str, str] = {}  # context key -> the first environment holding it (what the binary's errors name)
    known: dict[str, list[dict[str, Any]]] = {}  # context or object key -> its findings
    looked_up: set[str] = set()
    layout: dict[str, tuple[str, list[tuple[str, manifests.Obj]]]] = {}  # env -> (context key, [(key, obj)])

    def recall(key: str) -> bool:
        if key not in looked_up:
            looked_up.add(key)
            stored = cache.get("admission", key)
            if isinstance(stored, list):
                known[key] = stored
        return key in known

    for render in renders.values():
        context = context_objects(render.objects)
        in_context = {id(o) for o in context}
        ctx_key = result_cache.digest(config, *map(_canonical, context))
        keyed = [(result_cache.digest(ctx_key, _canonical(o)), o) for o in render.objects if id(o) not in in_context]
        layout[render.env] = (ctx_key, keyed)
        _, pending = plans.setdefault(ctx_key, (context, {}))
        named.setdefault(ctx_key, render.env)
        recall(ctx_key)
        for key, obj in keyed:
            if not recall(key):
                pending[key] = obj
    payload: dict[str, list[manifests.Obj]] = {}
    members: dict[str, tuple[str, dict[tuple[str, str, str, str], str]]] = {}
    for ctx_key, (context, pending) in plans.items():
        if not pending and ctx_key in known:
            continue
        buckets: list[dict[tuple[str, str, str, str], str]] = [{}]
        for key, obj in pending.items():
            bucket = next((b for b in buckets if _identity(obj) not in b), None)
            if bucket is None:
                bucket = {}
                buckets.append(bucket)
            bucket[_identity(obj)] = key
        for i, bucket in enumerate(buckets):
            name = named[ctx_key] if i == 0 else f"{named[ctx_key]} (part {i + 1})"
            payload[name] = context + [pending[k] for k in bucket.values()]
            members[name] = (ctx_key, bucket)
    if payload:
        for name, items in _invoke(payload, root).items():
            ctx_key, bucket = members[name]
            about: dict[str, list[dict[str, Any]]] = {key: [] for key in bucket.values()}
            context_items = []
            for item in items:
                key = bucket.get(_item_identity(item))
                if key is None:
                    context_items.append(item)
                else:
                    about[key].append(item)
            if name == named[ctx_key]:
                about[ctx_key] = context_items
            for key, found in about.items():
                known[key] = found
                cache.put("admission", key, found)
    return {
        env: known[ctx_key] + [i for key, _ in keyed for i in known[key]] for env, (ctx_key, keyed) in layout.items()
    }


def run(
    renders: dict[str, RenderResult], root: Path = REPO_ROOT, cache: result_cache.ResultCache | None = None
) -> tuple[list[Finding], list[AdmissionWarning]]:
    """(refusals as findings, upstream warnings) for every environment.

    `root` is where the tool lives (this checkout's ./bin and hack/knative-admission), like kubeconform's, not the
    tree being validated. With an enabled `cache`, each distinct object is admitted once in its context and
    stored answers are reused (_answers); without one, every environment goes to the binary whole, as the API
    server would meet it: the reference the cached path is tested against."""
    if cache is not None and cache.enabled:
        answer = _answers(renders, root, cache)
    else:
        answer = _invoke({env: r.objects for env, r in renders.items()}, root)
    findings: list[Finding] = []
    warnings: list[AdmissionWarning] = []
    for env, render in renders.items():
        lookup = _object_lookup(render)
        for item in answer.get(env) or []:
            obj = lookup.get(_item_identity(item))
            if obj is not None:
                fields = [item["field"]] if item.get("field") else message_fields(item["message"])
                ref, origin = str(manifests.ObjKey.of(obj)), render.fields_origin(obj, fields)
            else:  # e.g. a ConfigMap a webhook needs that the render lacks
                ref = (
                    f"{item['kind']} {item['namespace']}/{item['name']}"
                    if item["namespace"]
                    else f"{item['kind']} {item['name']}"
                )
                origin = "(not in the render)"
            if item["severity"] == "warning":
                warnings.append(AdmissionWarning(env, ref, origin, item["webhook"], item["message"]))
            elif item["webhook"].startswith(KUBERNETES_JUDGE):
                findings.append(Finding(POD_TEMPLATE_CHECK, env, ref, origin, _kubernetes_refusal(item)))
            else:
                findings.append(Finding(CHECK, env, ref, origin, f"{item['webhook']} refuses it: {item['message']}"))
    return findings, warnings


def stage(
    renders: dict[str, RenderResult], root: Path = REPO_ROOT, cache: result_cache.ResultCache | None = None
) -> tuple[list[Finding], list[AdmissionWarning]]:
    """The validate stage: like run(), but a missing or broken binary is one failing finding, not a traceback."""
    if not renders:
        return [], []
    try:
        return run(renders, root, cache)
    except (AdmissionUnavailable, subprocess.TimeoutExpired) as error:
        return [Finding(CHECK, "-", "-", str(BINARY), str(error))], []
