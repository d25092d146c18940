"""CRDs of the operators the render uses but does not install (prometheus-operator's scrape and rule kinds, the
External Secrets Operator's ExternalSecret): read from the pinned releases' Go modules in the module cache
(`make setup` downloads them; never copied in). `make validate` converts them to schemas; `make e2e` installs them
in its API server, as a cluster has the operators installed before Argo CD syncs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from gitops.core.errors import UserError
from gitops.core.paths import PROMETHEUS_OPERATOR_CRDS_ENV, prometheus_operator_crds_dir
from gitops.core.tools import pinned_versions
from gitops.model import external_secrets

# The prometheus-operator kinds the repository ships (base/monitoring): only their CRDs are converted, the others
# (Prometheus, Alertmanager, ...) are large and nothing here declares them.
MONITORING_CRD_FILES = (
    "monitoring.coreos.com_podmonitors.yaml",
    "monitoring.coreos.com_servicemonitors.yaml",
    "monitoring.coreos.com_prometheusrules.yaml",
)


def monitoring_crd_files() -> list[Path]:
    """prometheus-operator's CRDs for PodMonitor, ServiceMonitor and PrometheusRule, from the Go module cache."""
    directory = prometheus_operator_crds_dir()
    files = [directory / name for name in MONITORING_CRD_FILES]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(
            f"prometheus-operator's CRDs are missing: no {missing[0]}",
            fix="run `make setup` (it runs `go mod download` of github.com/prometheus-operator/prometheus-operator "
            f"at PROMETHEUS_OPERATOR_VERSION, hack/tool-versions.env), or set {PROMETHEUS_OPERATOR_CRDS_ENV}",
        )
    return files


def operator_crd_files() -> list[Path]:
    """CRDs of operators the render uses but does not install (the External Secrets Operator's ExternalSecret),
    from the pinned release's Go module in the module cache (`make setup` downloads it; never copied in)."""
    version = pinned_versions()[external_secrets.OPERATOR_VERSION_PIN]
    module = f"{external_secrets.OPERATOR_MODULE}@{version}"
    proc = subprocess.run(["go", "mod", "download", "-json", module], capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise RuntimeError(
            f"cannot read {module} from the Go module cache ({detail[-1] if detail else 'go mod download failed'}): "
            "run `make setup`"
        )
    directory = Path(json.loads(proc.stdout)["Dir"])
    return [directory / name for name in external_secrets.CRD_FILES]
