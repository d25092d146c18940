"""Shared by the Argo CD check tests: the bootstrap's objects by name, editing it on a copy, the repository-wide
findings."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gitops.core.render import RenderResult
from gitops.model.argocd import APP_FILE
from gitops.validate.checks import argocd_access, argocd_apps, argocd_project
from gitops.validate.findings import RepoContext
from tests.support import checks_of

NS = "notifications"
EV = "eventing.knative.dev"
DEV_APP = "Application argocd/knative-kafka-dev"
PROD_APP = "Application argocd/knative-kafka-prod"
PROJECT = "AppProject argocd/knative-kafka-prod"
DEV_PROJECT = "AppProject argocd/knative-kafka-dev"
IN_FILE = f"({APP_FILE})"

# Every repository-wide Argo CD check (bootstrap, Applications, AppProjects, access).
ARGOCD_REPO_CHECKS = checks_of(argocd_apps, argocd_project, argocd_access, scope="repo")


def repo_findings(root: Path, renders: dict[str, RenderResult]) -> list[str]:
    ctx = RepoContext(root, renders)
    return [str(f) for check in ARGOCD_REPO_CHECKS for f in check(ctx)]


def edit_app_file(root: Path, edit: Callable[[dict[str, dict[str, Any]]], None]) -> None:
    """Rewrite the bootstrap file after edit(docs_by_kind_and_name) mutates the parsed documents."""
    path = root / APP_FILE
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    edit({f"{d['kind']} {d['metadata']['name']}": d for d in docs})
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def has(findings: list[str], *parts: str) -> bool:
    return any(all(p in f for p in parts) for f in findings)
