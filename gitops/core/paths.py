"""Where things are: the repository, the offline release mirror, the local cache."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS_DIR = "overlays"
PLATFORM_KUSTOMIZATION = Path("base/platform/kustomization.yaml")
RELEASES_LOCK = Path("base/platform/releases.lock.yaml")
# The Go module that runs Knative's admission webhooks (validate) and whose versions `make bump` moves (upstream).
ADMISSION_MODULE_DIR = Path("hack/knative-admission")


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


def cache_dir() -> Path:
    return Path(os.environ.get("GITOPS_CACHE_DIR", REPO_ROOT / ".cache"))


def overlay_names(root: Path = REPO_ROOT) -> list[str]:
    """The overlays on disk (overlays/<name>/kustomization.yaml), whether or not environments.yaml lists them."""
    return sorted(p.parent.name for p in (root / ENVIRONMENTS_DIR).glob("*/kustomization.yaml"))


def environments(root: Path = REPO_ROOT) -> list[str]:
    """The environments: overlays that environments.yaml describes (raises UserError when the two disagree)."""
    from gitops.core.environments import load  # environments.py imports this module

    return load(root).names
