"""Run the pinned kubeconform, strictly and offline, and turn its JSON report into findings."""

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gitops.core.tools import tool
from gitops.validate import schemas


@dataclass(frozen=True)
class SchemaResult:
    filename: str
    kind: str
    name: str
    version: str
    status: str
    msg: str


def locations(crd_dir: Path) -> list[str]:
    k8s = schemas.kubernetes_schemas()
    # Only local locations: kubeconform's `default` (GitHub) is never listed, and -ignore-missing-schemas is never
    # passed, so an object without a schema is an error, not a pass.
    return [f"{k8s}/{schemas.K8S_TEMPLATE}", f"{crd_dir}/{schemas.CRD_TEMPLATE}"]


def run(stream: str, crd_dir: Path, filename: str = "stdin") -> list[SchemaResult]:
    """Validate a YAML stream; returns every resource that is not valid (invalid, error or skipped)."""
    cmd = [
        tool("kubeconform"),
        "-strict",
        "-output",
        "json",
        "-kubernetes-version",
        schemas.KUBERNETES_VERSION,
    ]
    for location in locations(crd_dir):
        cmd += ["-schema-location", location]
    proc = subprocess.run(cmd, input=stream, capture_output=True, text=True)
    try:
        report = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError as error:
        raise RuntimeError(f"kubeconform gave no JSON report (exit {proc.returncode}): {proc.stderr}") from error
    results = [
        SchemaResult(
            filename=filename,
            kind=r.get("kind", ""),
            name=r.get("name", ""),
            version=r.get("version", ""),
            status=r.get("status", ""),
            msg=schemas.explain_missing_schema(r.get("kind", ""), r.get("version", ""), r.get("msg", ""), crd_dir),
        )
        for r in report.get("resources") or []
    ]
    if proc.returncode != 0 and not results:
        raise RuntimeError(f"kubeconform failed (exit {proc.returncode}): {proc.stderr or proc.stdout}")
    return results
