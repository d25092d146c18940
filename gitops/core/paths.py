"""Where things are: the repository, the offline release mirror, the local cache.

Two trees matter. CODE_ROOT is where this gitops package was imported from (an editable install keeps pointing at
the tree the venv was made in, also from a copy of that tree). WORK_TREE is the repository the command is run in:
the nearest directory at or above the working directory that holds environments.yaml, looking no further than the
git top level, the way git and kustomize find their tree. REPO_ROOT, which every verb acts on, is the work tree
when there is one; gitops/cli.py makes sure a verb never acts on one tree with another tree's code
(docs/forking.md, "Copies of the tree").
"""

import os
from pathlib import Path

ENVIRONMENTS_DIR = "overlays"
# The file that makes a directory a tree of this repository (every verb reads it).
TREE_MARKER = "environments.yaml"


def find_work_tree(start: Path) -> Path | None:
    """The tree `start` lies in: the nearest ancestor holding environments.yaml and overlays/, never past a
    directory holding .git (another repository's top level); None outside any such tree."""
    for directory in (start, *start.parents):
        if (directory / TREE_MARKER).is_file() and (directory / ENVIRONMENTS_DIR).is_dir():
            return directory
        if (directory / ".git").exists():
            return None
    return None


def _cwd() -> Path | None:
    try:
        return Path.cwd().resolve()
    except OSError:  # the working directory was deleted
        return None


CODE_ROOT = Path(__file__).resolve().parents[2]
_start = _cwd()
WORK_TREE = find_work_tree(_start) if _start else None
REPO_ROOT = WORK_TREE or CODE_ROOT
PLATFORM_KUSTOMIZATION = Path("base/platform/kustomization.yaml")
# Knative's post-install Jobs: not listed by the platform kustomization (kustomize refuses their generateName);
# the render adds them (gitops/core/render.py, post_install).
POST_INSTALL_KUSTOMIZATION = Path("base/platform/post-install/kustomization.yaml")
RELEASES_LOCK = Path("base/platform/releases.lock.yaml")
# The Go module that runs Knative's admission webhooks (validate) and whose versions `make bump` moves (upstream).
ADMISSION_MODULE_DIR = Path("hack/knative-admission")


# What a render reads from the repository: a copy holding these renders and validates like the tree itself (the
# benchmark's, the transcripts' and the tests' scratch copies).
MANIFEST_TREE = (
    "base",
    "overlays",
    "components",
    "apps",
    "argocd",
    "argocd-app.yaml",
    "validation-waivers.yaml",
    "environments.yaml",
    "docs/operations.md",  # the alerts' runbook anchors (the alert-rules check)
)

MIRROR_ENV = "KNATIVE_RELEASE_MIRROR"


def release_mirror() -> Path:
    """The offline copy of upstream release assets: $KNATIVE_RELEASE_MIRROR, else ../shared/releases."""
    configured = os.environ.get(MIRROR_ENV)
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "releases"


UPSTREAM_SOURCE_ENV = "KNATIVE_UPSTREAM_SOURCE"


def upstream_source_dir() -> Path:
    """The eventing-kafka-broker source tree at the pinned tag (its data plane's YAML and Java, the contract):
    $KNATIVE_UPSTREAM_SOURCE, else ../shared/upstream/eventing-kafka-broker-knative-v1.23.0 beside the repository.
    Upstream data, read in place (../shared/upstream/README.md)."""
    configured = os.environ.get(UPSTREAM_SOURCE_ENV)
    if configured:
        return Path(configured)
    return REPO_ROOT.parent / "shared" / "upstream" / "eventing-kafka-broker-knative-v1.23.0"


def argocd_crds_dir() -> Path:
    configured = os.environ.get("ARGOCD_CRDS_DIR")
    return Path(configured) if configured else release_mirror() / "argo-cd-v3.5.1"


PROMETHEUS_OPERATOR_CRDS_ENV = "PROMETHEUS_OPERATOR_CRDS_DIR"


def prometheus_operator_crds_dir() -> Path:
    """prometheus-operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule, …): $PROMETHEUS_OPERATOR_CRDS_DIR, else
    example/prometheus-operator-crd/ of its Go module at PROMETHEUS_OPERATOR_VERSION (hack/tool-versions.env) in the Go
    module cache, where `make setup` downloads it. Read in place, never copied into the repository."""
    configured = os.environ.get(PROMETHEUS_OPERATOR_CRDS_ENV)
    if configured:
        return Path(configured)
    from gitops.core.tools import pinned_versions  # tools.py imports this module

    version = pinned_versions().get("PROMETHEUS_OPERATOR_VERSION", "")
    return (
        go_mod_cache()
        / "github.com"
        / "prometheus-operator"
        / f"prometheus-operator@{version}"
        / ("example/prometheus-operator-crd")
    )


def kube_state_metrics_source_dir() -> Path:
    """kube-state-metrics' Go module at KUBE_STATE_METRICS_VERSION (hack/tool-versions.env) in the Go module cache,
    where `make setup`'s `go install` leaves it: its internal/store/ names every metric it exports."""
    from gitops.core.tools import pinned_versions  # tools.py imports this module

    version = pinned_versions().get("KUBE_STATE_METRICS_VERSION", "")
    return go_mod_cache() / "k8s.io" / "kube-state-metrics" / f"v2@{version}"


def go_mod_cache() -> Path:
    """`go env GOMODCACHE` without running go: $GOMODCACHE, else $GOPATH/pkg/mod, else ~/go/pkg/mod."""
    if os.environ.get("GOMODCACHE"):
        return Path(os.environ["GOMODCACHE"])
    gopath = os.environ.get("GOPATH", "").split(os.pathsep)[0]
    return Path(gopath or Path.home() / "go") / "pkg" / "mod"


def cache_dir() -> Path:
    return Path(os.environ.get("GITOPS_CACHE_DIR", REPO_ROOT / ".cache"))


def overlay_names(root: Path = REPO_ROOT) -> list[str]:
    """The overlays on disk (overlays/<name>/kustomization.yaml), whether or not environments.yaml lists them."""
    return sorted(p.parent.name for p in (root / ENVIRONMENTS_DIR).glob("*/kustomization.yaml"))


def environments(root: Path = REPO_ROOT) -> list[str]:
    """The environments: overlays that environments.yaml describes (raises UserError when the two disagree)."""
    from gitops.core.environments import load  # environments.py imports this module

    return load(root).names
