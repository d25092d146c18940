"""Pod Security admission: every namespace labelled, every pod allowed, and no namespace looser than its pods need.

The levels are evaluated by the upstream library kube-apiserver itself runs (k8s.io/pod-security-admission, built
into ./bin/pod-security from hack/pod-security by `make setup`), never by re-implemented rules. A Knative Service's
revision template is evaluated as the PodSpec it becomes; the queue-proxy sidecar Serving adds is restricted-
compliant upstream (serving pkg/reconciler/revision/resources/queue.go, queueSecurityContext).
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from gitops.core import cache as result_cache
from gitops.core import manifests
from gitops.core.manifests import Obj
from gitops.core.tools import ToolMissing, tool
from gitops.model.pods import WORKLOAD_KINDS
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
LEVELS = ("privileged", "baseline", "restricted")  # loosest to strictest
POD_KINDS = WORKLOAD_KINDS | {("batch", "Job"), ("batch", "CronJob"), ("", "Pod"), ("serving.knative.dev", "Service")}


class PodSecurityToolError(RuntimeError):
    pass


@dataclass(frozen=True)
class Verdict:
    """One pod template's result at baseline and restricted: level -> reasons it is refused (empty: allowed)."""

    obj: Obj
    refused: dict[str, list[str]]

    def strictest_allowed(self) -> str:
        allowed = [level for level in LEVELS[1:] if not self.refused[level]]
        return allowed[-1] if allowed else "privileged"


def evaluate(objects: list[Obj], version: str, cache: result_cache.ResultCache | None = None) -> list[Verdict]:
    """Run the upstream evaluator over every pod template in `objects` at Pod Security `version` (e.g. v1.34).

    A pod template's verdict depends on nothing but its object, the version and the evaluator, so with a `cache`
    each distinct object is evaluated once (the first environment that holds it) and its verdict reused."""
    pods = [o for o in objects if (manifests.group_of(o), o.get("kind")) in POD_KINDS]
    if not pods:
        return []
    cache = cache or result_cache.disabled()
    evaluator = tool("pod-security")
    config = result_cache.digest(
        "pod-security-v1",
        result_cache.tool_identity(evaluator),
        version,
        result_cache.code_digest(sys.modules[__name__]),
    )
    keys = [result_cache.digest(config, json.dumps(o, sort_keys=True, default=str)) for o in pods]
    refused: dict[str, dict[str, list[str]]] = {}
    for key in keys:
        stored = cache.get("pod-security", key)
        if isinstance(stored, dict):
            refused[key] = stored
    pending = {k: o for k, o in zip(keys, pods, strict=True) if k not in refused}
    if pending:
        stream = yaml.dump_all(list(pending.values()), Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))
        proc = subprocess.run([evaluator, version], input=stream, capture_output=True, text=True)
        if proc.returncode != 0:
            raise PodSecurityToolError(proc.stderr.strip() or f"pod-security exited {proc.returncode}")
        by_key = {manifests.ObjKey.of(o): k for k, o in pending.items()}
        for line in proc.stdout.splitlines():
            result = json.loads(line)
            key = by_key[manifests.ObjKey(result["group"], result["kind"], result["namespace"], result["name"])]
            refused[key] = {level: result["levels"][level]["reasons"] for level in ("baseline", "restricted")}
            cache.put("pod-security", key, refused[key])
    return [Verdict(o, refused[k]) for k, o in zip(keys, pods, strict=True) if k in refused]


@env_check("pod-security")
def check_pod_security(ctx: EnvContext) -> Iterator[Finding]:
    """Every namespace is labelled with a Pod Security level its pods pass (the upstream evaluator decides)."""
    namespaces = {manifests.meta(ns).get("name"): ns for ns in manifests.of_kind(ctx.objects, "", "Namespace")}
    labelled: dict[str, tuple[str, str]] = {}
    for name, ns in namespaces.items():
        level = manifests.labels(ns).get(ENFORCE)
        if level is None:
            if ctx.is_production:
                yield ctx.finding(
                    "pod-security",
                    ns,
                    f"no {ENFORCE} label: any pod may run here, privileged included; label it with the strictest "
                    "level its pods pass (restricted, else baseline) and say why in a comment",
                )
            continue
        if level not in LEVELS:
            yield ctx.finding("pod-security", ns, f"{ENFORCE}: {level!r} is not one of {', '.join(LEVELS)}")
            continue
        labelled[name] = (level, manifests.labels(ns).get(ENFORCE_VERSION, "latest"))
    try:
        # With the Kafka data plane rebuilt from its sources when the render leaves its release asset out, so the
        # level of knative-eventing is proven with the receiver and dispatchers in it (findings on them say so).
        verdicts = {
            version: evaluate(ctx.with_stand_ins, version, ctx.cache)
            for version in sorted({v for _, v in labelled.values()})
        }
    except (ToolMissing, PodSecurityToolError) as error:
        yield ctx.finding(
            "pod-security", None, f"cannot run the Pod Security evaluator: {error}", origin="bin/pod-security"
        )
        return
    strictest: dict[str, str] = {}
    for name, (level, version) in labelled.items():
        for verdict in verdicts[version]:
            if manifests.meta(verdict.obj).get("namespace") != name:
                continue
            allowed = verdict.strictest_allowed()
            strictest[name] = min(strictest.get(name, "restricted"), allowed, key=LEVELS.index)
            if LEVELS.index(allowed) < LEVELS.index(level):
                reasons = "; ".join(verdict.refused[level])
                yield ctx.finding(
                    "pod-security",
                    verdict.obj,
                    f"Pod Security admission refuses its pods in namespace {name} (enforce={level}): {reasons}",
                )
        loosest_needed = strictest.get(name, "restricted")
        if LEVELS.index(level) < LEVELS.index(loosest_needed):
            yield ctx.finding(
                "pod-security",
                namespaces[name],
                f"{ENFORCE}: {level}, but every pod in it passes {loosest_needed}: enforce {loosest_needed}",
            )
