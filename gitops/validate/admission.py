"""The upstream admission stage: every rendered object through Knative's own webhooks (bin/knative-admission).

Knative's webhooks, not our reading of them, decide what a cluster accepts: the Go program in
hack/knative-admission runs the serving, eventing and eventing-kafka-broker admission controllers of the pinned
release over each render, as Argo CD's CREATE would meet them (defaulting, then validation, then the ConfigMap
validators). This module hands it the renders and turns its answer into findings; see docs/admission.md.
"""

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gitops.core import manifests
from gitops.core.paths import ADMISSION_MODULE_DIR, REPO_ROOT
from gitops.core.render import RenderResult
from gitops.validate.findings import Finding

CHECK = "upstream-admission"
# Findings of the same Go stage from Kubernetes' own validation (hack/knative-admission/podtemplates.go): every pod
# template the render implies, Knative Services' Revision Deployments included, as the API server would judge it.
POD_TEMPLATE_CHECK = "pod-template"
KUBERNETES_JUDGE = "kube-apiserver validation"
BINARY = Path("bin/knative-admission")


class AdmissionUnavailable(RuntimeError):
    """The binary is missing, stale or broken: one line saying what to run."""


@dataclass(frozen=True)
class AdmissionWarning:
    env: str
    obj: str
    origin: str
    webhook: str
    message: str

    def __str__(self) -> str:
        return f"[{self.env}] {self.obj} ({self.origin}): {self.webhook} warns: {self.message}"


def source_digest(root: Path = REPO_ROOT) -> str:
    """sha256 over go.mod, go.sum and the Go sources, computed like hack/install-tools.sh's module_digest
    (`sha256sum go.mod go.sum *.go | sha256sum`), so a binary built from other sources is never trusted."""
    module = root / ADMISSION_MODULE_DIR
    names = ["go.mod", "go.sum", *sorted(p.name for p in module.glob("*.go"))]
    listing = "".join(f"{hashlib.sha256((module / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    return hashlib.sha256(listing.encode()).hexdigest()


def binary(root: Path = REPO_ROOT) -> Path:
    path = root / BINARY
    stamp = path.with_name(path.name + ".stamp")
    if not path.is_file():
        raise AdmissionUnavailable(f"{BINARY} is missing: run `make setup` (builds it from {ADMISSION_MODULE_DIR})")
    if not stamp.is_file() or stamp.read_text().strip() != source_digest(root):
        raise AdmissionUnavailable(
            f"{BINARY} was built from other sources than {ADMISSION_MODULE_DIR}: run `make setup`"
        )
    return path


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


def run(renders: dict[str, RenderResult], root: Path = REPO_ROOT) -> tuple[list[Finding], list[AdmissionWarning]]:
    """(refusals as findings, upstream warnings) for every environment, from one run of the binary.

    `root` is where the tool lives (this checkout's ./bin and hack/knative-admission), like kubeconform's, not the
    tree being validated."""
    payload = json.dumps({"environments": {env: r.objects for env, r in renders.items()}}, default=str)
    try:
        proc = subprocess.run([str(binary(root))], input=payload, capture_output=True, text=True, timeout=300)
    except OSError as error:
        raise AdmissionUnavailable(f"{BINARY} does not run ({error}): run `make setup`") from error
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise AdmissionUnavailable(f"{BINARY} failed: {last}")
    try:
        answer = json.loads(proc.stdout)["environments"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise AdmissionUnavailable(f"{BINARY} gave no findings report ({error}): run `make setup`") from error
    findings: list[Finding] = []
    warnings: list[AdmissionWarning] = []
    for env, render in renders.items():
        lookup = _object_lookup(render)
        for item in answer.get(env) or []:
            key = (item["apiVersion"], item["kind"], item["namespace"], item["name"])
            obj = lookup.get(key)
            if obj is not None:
                ref, origin = str(manifests.ObjKey.of(obj)), render.origin(obj)
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


def stage(renders: dict[str, RenderResult], root: Path = REPO_ROOT) -> tuple[list[Finding], list[AdmissionWarning]]:
    """The validate stage: like run(), but a missing or broken binary is one failing finding, not a traceback."""
    if not renders:
        return [], []
    try:
        return run(renders, root)
    except (AdmissionUnavailable, subprocess.TimeoutExpired) as error:
        return [Finding(CHECK, "-", "-", str(BINARY), str(error))], []
