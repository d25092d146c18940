"""JSON schemas for kubeconform, built offline into .cache/schemas.

- Kubernetes core kinds: the `kubernetes-validate` wheel ships them, but each file refers to its definitions by
  the absolute URL https://kubernetes.io/api/_definitions.json, which kubeconform cannot load offline. The copies
  here drop `$id` and point `$ref` at the sibling `_definitions.json`, which kubeconform resolves as a file.
- Custom resources: kubeconform's own openapi2jsonschema.py (from its Go module, the exact v0.7.0 release we
  run) converts the CRDs of the pinned releases, Argo CD's CRDs and those of operators the render uses without
  installing them (the External Secrets Operator's ExternalSecret, from its Go module: `operator_crd_files`). It closes every object that lists
  properties, but ignores `x-kubernetes-preserve-unknown-fields` (kubeconform issue #224). We then (1) reopen
  exactly the objects that say preserve-unknown-fields, as the API server does (Trigger `spec`, Broker
  `spec.delivery`, the KService template metadata: the Knative webhooks police those, and so do our semantic
  checks), and (2) close the top level, adding the apiVersion/kind/metadata fields some Knative CRDs leave out of
  their root schema, so a misspelt `spec` is an error rather than an ignored field.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import kubernetes_validate
import yaml

from gitops.core.manifests import Obj
from gitops.core.paths import argocd_crds_dir, cache_dir
from gitops.core.tools import pinned_versions
from gitops.model.operator_crds import monitoring_crd_files, operator_crd_files

KUBERNETES_VERSION = "1.34.0"  # Knative 1.23's minimum (knative/pkg DefaultKubernetesMinVersion)
K8S_TEMPLATE = (
    "{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
)
# Group-qualified, so a Knative `Service` can never be checked against the core `Service` schema or vice versa.
CRD_TEMPLATE = "{{ .Group }}_{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
CRD_FILENAME_FORMAT = "{fullgroup}_{kind}_{version}"


def kubernetes_schemas(version: str = KUBERNETES_VERSION) -> Path:
    """A kubeconform schema location (directory) holding the strict core schemas of `version`."""
    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    if not source.is_dir():
        raise FileNotFoundError(f"kubernetes-validate ships no schemas for Kubernetes {version} ({source})")
    root = cache_dir() / "schemas" / f"k8s-{kubernetes_validate.__version__}"
    target = root / f"v{version}-standalone-strict"
    if not target.is_dir():
        staging = Path(tempfile.mkdtemp(dir=_ensure(cache_dir() / "schemas")))
        for schema_file in source.glob("*.json"):
            schema = json.loads(schema_file.read_text())
            schema.pop("$id", None)
            text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
            (staging / schema_file.name).write_text(text)
        target.parent.mkdir(parents=True, exist_ok=True)
        _publish(staging, target)
    return root


def extra_crd_files() -> list[Path]:
    """The CRDs kubeconform needs beyond the render's own: Argo CD's (the mirror), prometheus-operator's and the
    External Secrets Operator's (both from the Go module cache)."""
    return sorted(argocd_crds_dir().glob("*.yaml")) + monitoring_crd_files() + operator_crd_files()


def crd_schemas(crds: Iterable[Obj], extra_crd_files: Iterable[Path] = ()) -> Path:
    """A kubeconform schema location holding schemas converted from these CRDs (cached by content)."""
    ordered = sorted(crds, key=lambda c: c["metadata"]["name"])
    files = sorted(extra_crd_files)
    digest = hashlib.sha256(json.dumps(ordered, sort_keys=True).encode())  # the cache key; JSON is fast to dump
    for path in files:
        digest.update(path.read_bytes())
    target = cache_dir() / "schemas" / f"crds-{digest.hexdigest()[:16]}"
    if target.is_dir():
        return target
    staging = Path(tempfile.mkdtemp(dir=_ensure(cache_dir() / "schemas")))
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    (staging / "rendered-crds.yaml").write_text(yaml.dump_all(ordered, Dumper=dumper, sort_keys=True))
    inputs = [str(staging / "rendered-crds.yaml"), *map(str, files)]
    env = {**os.environ, "FILENAME_FORMAT": CRD_FILENAME_FORMAT}
    env.pop("DENY_ROOT_ADDITIONAL_PROPERTIES", None)
    proc = subprocess.run(
        [sys.executable, str(openapi2jsonschema()), *inputs],
        cwd=staging,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"openapi2jsonschema.py failed:\n{proc.stderr}")
    (staging / "rendered-crds.yaml").unlink()
    for schema_file in staging.glob("*.json"):
        schema = json.loads(schema_file.read_text())
        _reopen_preserved(schema)
        _close_root(schema)
        schema_file.write_text(json.dumps(schema))
    _publish(staging, target)
    return target


def _publish(staging: Path, target: Path) -> None:
    """Make a fully written directory visible at `target` in one rename, never touching one that exists.

    Two validations may build the same cache entry at once (the environment threads, or two `make validate`
    runs). A directory only ever appears whole, by rename(2), which fails when the target already exists; the
    loser discards its own copy and uses the winner's, which holds the same content (the name is its key).
    Nothing is ever deleted from under a reader.
    """
    try:
        staging.rename(target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def _reopen_preserved(node: object) -> None:
    if isinstance(node, dict):
        if node.get("x-kubernetes-preserve-unknown-fields") is True and node.get("additionalProperties") is False:
            del node["additionalProperties"]
        for child in node.values():
            _reopen_preserved(child)
    elif isinstance(node, list):
        for child in node:
            _reopen_preserved(child)


def _close_root(schema: dict) -> None:
    properties = schema.setdefault("properties", {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties.setdefault("metadata", {"type": "object"})
    schema["additionalProperties"] = False


def openapi2jsonschema() -> Path:
    """kubeconform's CRD converter, from the Go module of the pinned kubeconform release."""
    version = pinned_versions()["KUBECONFORM_VERSION"]
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"github.com/yannh/kubeconform@{version}"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cannot fetch kubeconform {version} from the Go module proxy: {proc.stderr.strip()}")
    return Path(json.loads(proc.stdout)["Dir"]) / "scripts" / "openapi2jsonschema.py"


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def served_api_versions(kind: str, crd_dir: Path) -> list[str]:
    """The apiVersions a schema exists for `kind`: Kubernetes' built-in kinds (the group-version-kind each schema
    file declares) and the rendered CRDs' versions (their schema files are named group_kind_version)."""
    found = set()
    core = kubernetes_schemas() / f"v{KUBERNETES_VERSION}-standalone-strict"
    for path in core.glob(f"{kind.lower()}-*.json"):
        for gvk in json.loads(path.read_text()).get("x-kubernetes-group-version-kind") or []:
            if gvk.get("kind") == kind:
                found.add(f"{gvk['group']}/{gvk['version']}" if gvk.get("group") else gvk["version"])
    for path in crd_dir.glob(f"*_{kind.lower()}_*.json"):
        group, _, version = path.stem.split("_")
        found.add(f"{group}/{version}")
    return sorted(found)


def explain_missing_schema(kind: str, api_version: str, message: str, crd_dir: Path) -> str:
    """kubeconform's "could not find schema for Trigger" as what is wrong: the apiVersion is not served (naming
    the ones that are), or the kind is unknown altogether (a misspelt kind, or a CRD missing from the render)."""
    if not message.startswith("could not find schema for"):
        return message
    served = served_api_versions(kind, crd_dir)
    if served:
        return (
            f"{kind} is not served at apiVersion {api_version}; served: {', '.join(served)} "
            "(change apiVersion to one of them)"
        )
    return (
        f"no schema for kind {kind} at any apiVersion: a misspelt kind, or a CustomResourceDefinition that is not in "
        f"the render ({message})"
    )
