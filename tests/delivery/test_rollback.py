"""`make rollback ENV=<env>`: the images and deploy commits an environment ran, from git; `--to` writes one back as
a one-line change for review, and only a digest the environment ran."""

import subprocess
from pathlib import Path

import pytest

from gitops.core.errors import UserError
from gitops.delivery import image_ref, placeholders, rollback
from tests.delivery.image_support import changed_lines, kustomization

FIRST = "sha256:" + "1a" * 32
SECOND = "sha256:" + "2b" * 32


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _pin(root: Path, env: str, digest: str, message: str) -> None:
    repository = image_ref.read_image(root, env).repository
    image_ref.set_image(root, env, image_ref.ImageRef(repository, digest))
    _git(root, "commit", "-q", "-am", message)


@pytest.fixture
def history(tree_copy: Path) -> Path:
    """A clone whose prod ran the placeholder, then FIRST, then SECOND; deploy/prod has two hydrated commits."""
    _git(tree_copy, "init", "-q", "-b", "main")
    _git(tree_copy, "add", "-A")
    _git(tree_copy, "commit", "-q", "-m", "the tree")
    _pin(tree_copy, "prod", FIRST, "Promote notifications 1a1a from dev to prod")
    _git(tree_copy, "commit", "-q", "--allow-empty", "-m", "an unrelated change")
    _pin(tree_copy, "prod", SECOND, "Promote notifications 2b2b from dev to prod")
    _git(tree_copy, "checkout", "-q", "--orphan", "deploy/prod")
    _git(tree_copy, "rm", "-rq", "--cached", ".")
    for n, source in enumerate(("a" * 40, "b" * 40)):
        (tree_copy / "provenance.txt").write_text(f"environment: prod\nsource-commit: {source}\n")
        _git(tree_copy, "add", "provenance.txt")
        _git(tree_copy, "commit", "-q", "-m", f"Hydrate prod {n}\n\nSource-Commit: {source}")
    _git(tree_copy, "checkout", "-q", "-f", "main")
    return tree_copy


def test_the_listing_names_every_digest_and_deploy_commit(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rollback.main(["--env", "prod"], root=history) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    ran = [line for line in lines if "registry.example.com/platform/notifications@" in line]
    assert ran[0].split()[0] == "now"  # the newest is what prod runs now
    digests = [next(w for w in line.split() if "@sha256:" in w).split("@")[1] for line in ran]
    assert digests == [SECOND, FIRST, placeholders.PLACEHOLDER_DIGEST]
    assert "Promote notifications 1a1a from dev to prod" in out
    deploys = [line for line in lines if "source " in line and "Hydrate prod" in line]
    assert [line.split("source ")[1].split()[0] for line in deploys] == ["b" * 12, "a" * 12]
    assert "make rollback ENV=prod DIGEST=<a digest above>" in out


def test_rollback_writes_one_line_back_for_review(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = kustomization(history, "prod").read_text()
    assert rollback.main(["--env", "prod", "--to", FIRST.removeprefix("sha256:")[:12]], root=history) == 0
    assert image_ref.read_image(history, "prod").digest == FIRST
    assert len(changed_lines(before, kustomization(history, "prod").read_text())) == 2
    out = capsys.readouterr().out
    assert f"-    digest: {SECOND}" in out and f"+    digest: {FIRST}" in out
    assert "git switch -c rollback-prod-1a1a1a1a1a1a" in out
    assert _git(history, "status", "--porcelain").strip() == "M overlays/prod/kustomization.yaml"


@pytest.mark.parametrize(
    ("wanted", "why"),
    [("sha256:" + "9c" * 32, "is not one this environment ran"), ("1a1a", "at least its first 12 hex")],
)
def test_a_digest_prod_never_ran_is_refused(
    history: Path, capsys: pytest.CaptureFixture[str], wanted: str, why: str
) -> None:
    before = kustomization(history, "prod").read_bytes()
    assert rollback.main(["--env", "prod", "--to", wanted], root=history) == 1
    assert why in capsys.readouterr().err
    assert kustomization(history, "prod").read_bytes() == before


def test_unknown_environment_is_bad_input(history: Path) -> None:
    with pytest.raises(UserError, match="unknown environment 'prd'"):
        rollback.main(["--env", "prd"], root=history)


def test_no_git_is_one_line(tree_copy: Path) -> None:
    with pytest.raises(UserError, match="run it in a git clone"):
        rollback.main(["--env", "prod"], root=tree_copy)
