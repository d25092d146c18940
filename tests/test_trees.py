"""Every verb acts on the tree it is run in (like git and kustomize), with that tree's own code, or refuses in one
line: a copy of a checkout whose venv still imports the original's gitops/ must never read or write the original
(gitops/core/paths.py, gitops/cli.py)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.core import paths
from gitops.core.paths import REPO_ROOT, UPSTREAM_SOURCE_ENV, release_mirror, upstream_source_dir
from gitops.delivery import image_ref
from tests.delivery.image_support import NEW_DIGEST, kustomization

# `.venv/bin/gitops` of this tree, from anywhere: the original's code first on the path, as its editable install does.
ORIGINAL_GITOPS = [
    sys.executable,
    "-c",
    f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from gitops.cli import main; sys.exit(main())",
]


def original_gitops(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environ |= {
        "KNATIVE_RELEASE_MIRROR": str(release_mirror()),
        UPSTREAM_SOURCE_ENV: str(upstream_source_dir()),
        "GITOPS_CACHE_DIR": str(REPO_ROOT / ".cache"),
    }
    return subprocess.run([*ORIGINAL_GITOPS, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=300)


def test_the_work_tree_is_found_from_any_directory_inside_it(
    tree_copy: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert paths.find_work_tree(tree_copy / "overlays" / "dev") == tree_copy
    assert paths.find_work_tree(tree_copy) == tree_copy
    outside = tmp_path_factory.mktemp("elsewhere")
    assert paths.find_work_tree(outside) is None
    # Another repository's top level is a boundary: a tree above it is not this one's.
    (outside / ".git").mkdir()
    (outside / "sub").mkdir()
    assert paths.find_work_tree(outside / "sub") is None


def test_a_copied_checkout_pins_its_own_overlay_never_the_original(tree_copy: Path) -> None:
    """The incident: in a copy, `.venv/bin/gitops pin-image` rewrote the original's overlays/dev."""
    shutil.copytree(REPO_ROOT / "gitops", tree_copy / "gitops", ignore=shutil.ignore_patterns("__pycache__"))
    (tree_copy / "bin").symlink_to(REPO_ROOT / "bin")
    original = kustomization(REPO_ROOT, "dev")
    original_bytes = original.read_bytes()
    ref = f"{image_ref.read_image(tree_copy, 'dev').repository}@{NEW_DIGEST}"
    try:
        proc = original_gitops(tree_copy / "overlays", "pin-image", "--env", "dev", "--image", ref)
    finally:
        changed_original = original.read_bytes() != original_bytes
        original.write_bytes(original_bytes)
    assert not changed_original, "pin-image in a copy rewrote the original tree"
    assert proc.returncode == 0, proc.stderr
    assert NEW_DIGEST in kustomization(tree_copy, "dev").read_text()
    assert f"pin-image: wrote {kustomization(tree_copy, 'dev')}" in proc.stdout


def test_a_tree_without_its_own_code_is_refused_in_one_line(tree_copy: Path) -> None:
    """Manifests without gitops/ beside them: acting on them with another tree's code could be wrong; say so."""
    before = kustomization(tree_copy, "dev").read_bytes()
    original = kustomization(REPO_ROOT, "dev")
    original_bytes = original.read_bytes()
    ref = f"{image_ref.read_image(tree_copy, 'dev').repository}@{NEW_DIGEST}"
    try:
        proc = original_gitops(tree_copy, "pin-image", "--env", "dev", "--image", ref)
    finally:
        changed_original = original.read_bytes() != original_bytes
        original.write_bytes(original_bytes)
    assert not changed_original
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"this tree is {tree_copy}" in lines[0] and "refusing" in lines[0] and "make setup" in lines[0]
    assert kustomization(tree_copy, "dev").read_bytes() == before


def test_outside_any_tree_a_manifest_verb_refuses_and_the_subscriber_verbs_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    proc = original_gitops(elsewhere, "render", "dev")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "is not inside a tree of this repository" in proc.stderr
    assert original_gitops(elsewhere, "send-event", "--help").returncode == 0


def test_make_in_a_copy_runs_the_copys_app_code_too(tree_copy: Path) -> None:
    """`make <verb>` in a copy runs `python -m gitops.cli`, which imports the copy's gitops/ but, through the venv's
    editable install, the original's subscriber: the copy's new topic must be the one validate and the verbs see."""
    shutil.copytree(REPO_ROOT / "gitops", tree_copy / "gitops", ignore=shutil.ignore_patterns("__pycache__"))
    topics = tree_copy / "apps/notifications/src/notifications/topics.py"
    topics.write_text(
        topics.read_text().replace(
            "\n    )\n}",
            '\n        Topic("audits", LogRecord, summarise_log_record, log_record_level, fresh_fields={"timestamp": _now}),'
            "\n    )\n}",
        )
    )
    environ = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "apps/notifications/src")}  # the original's app
    proc = subprocess.run(
        [sys.executable, "-m", "gitops.cli", "send-event", "--help"],
        cwd=tree_copy,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "audits" in proc.stdout, proc.stdout
