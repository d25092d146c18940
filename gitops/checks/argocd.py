"""Argo CD delivery checks (argocd-app.yaml, sync waves, prune guards)."""

from gitops.checks import EnvCheck, RepoCheck

ENV_CHECKS: list[EnvCheck] = []
REPO_CHECKS: list[RepoCheck] = []
