"""Shared fixtures: each environment is rendered once per test session; tests break copies, never the originals."""

import copy
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from gitops import manifests
from gitops.checks import EnvContext, Finding
from gitops.paths import REPO_ROOT, environments
from gitops.render import RenderResult, render_env

TREE = ("base", "overlays", "components", "apps", "argocd", "validation-waivers.yaml")


@pytest.fixture(scope="session")
def renders() -> dict[str, RenderResult]:
    return {env: render_env(env) for env in environments()}


@pytest.fixture
def broken(renders: dict[str, RenderResult]) -> Callable[[str], RenderResult]:
    """broken(env) -> a private deep copy of that environment's render, free to mutate."""
    return lambda env: copy.deepcopy(renders[env])


def run_check(check: Callable[[EnvContext], Iterable[Finding]], render: RenderResult) -> list[Finding]:
    return list(check(EnvContext(REPO_ROOT, render)))


def obj(render: RenderResult, group: str, kind: str, namespace: str, name: str) -> manifests.Obj:
    found = manifests.find(render.objects, group, kind, namespace, name)
    assert found is not None, f"{kind} {namespace}/{name} not in the {render.env} render"
    return found


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """A copy of the repository's manifests (and app code) to break on disk and render for real."""
    for name in TREE:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.is_file():
            shutil.copy(src, tmp_path / name)
    return tmp_path
