"""Shared fixtures: each environment is rendered once per test session; tests break copies, never the originals."""

import copy
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops.core.paths import REPO_ROOT, environments
from gitops.core.render import RenderResult, render_env
from gitops.core.signals import interrupt_on_sigterm
from tests.support import TREE, lock_unlocked_assets, mirror_with_unlocked_assets


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM during `make test` (a cancelled CI job) unwinds like Ctrl-C, so the renders' scratch directories are
    removed rather than left in $TMPDIR (gitops.cli does the same for every verb; gitops.core.signals)."""
    interrupt_on_sigterm()


@pytest.fixture(scope="session")
def renders() -> dict[str, RenderResult]:
    return {env: render_env(env) for env in environments()}


@pytest.fixture
def broken(renders: dict[str, RenderResult]) -> Callable[[str], RenderResult]:
    """broken(env) -> a private deep copy of that environment's render, free to mutate."""
    return lambda env: copy.deepcopy(renders[env])


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """A copy of the repository's manifests (and app code) to break on disk and render for real."""
    for name in TREE:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, tmp_path / name)
    return tmp_path


@pytest.fixture
def hydratable(tree_copy: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(tree, mirror) where every asset of the lock is present and verified."""
    mirror = mirror_with_unlocked_assets(tmp_path)
    lock_unlocked_assets(tree_copy, mirror)
    return tree_copy, mirror
