"""`make promote`, on a copy of the tree: one line changes, in one file, in one environment; tags never reach
production."""

import shutil
import subprocess
from pathlib import Path

import pytest

from gitops.core.paths import REPO_ROOT
from gitops.delivery import image_ref, promote
from gitops.validate.run import validate
from tests.delivery.image_support import NEW_DIGEST, changed_lines, files, ksvc_image, kustomization, pin_dev
from tests.support import MADE_UP_ENV, add_environment


def test_promote_copies_the_reference_and_only_it(tree_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = pin_dev(tree_copy)
    capsys.readouterr()
    dev_after_pin = files(tree_copy / "overlays/dev")
    prod_before = files(tree_copy / "overlays/prod")
    prod_text = kustomization(tree_copy, "prod").read_text()

    assert promote.main(["--from", "dev", "--to", "prod"], root=tree_copy) == 0

    out = capsys.readouterr().out
    assert f"+    digest: {NEW_DIGEST}" in out
    assert "git switch -c promote-prod-abababababab" in out
    assert str(image_ref.read_image(tree_copy, "prod")) == ref
    prod_after = files(tree_copy / "overlays/prod")
    assert {k: v for k, v in prod_after.items() if k != "kustomization.yaml"} == {
        k: v for k, v in prod_before.items() if k != "kustomization.yaml"
    }
    # One line: the digest. The comment explaining why prod only takes digests is still there.
    assert len(changed_lines(prod_text, kustomization(tree_copy, "prod").read_text())) == 2
    assert files(tree_copy / "overlays/dev") == dev_after_pin
    assert ksvc_image(tree_copy, "prod") == ref
    report = validate(tree_copy)
    assert report.ok, "\n".join(map(str, report.findings))


def test_promote_again_is_already_promoted(tree_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pin_dev(tree_copy)
    assert promote.main(["--from", "dev", "--to", "prod"], root=tree_copy) == 0
    before = kustomization(tree_copy, "prod").read_bytes()
    capsys.readouterr()
    assert promote.main(["--from", "dev", "--to", "prod"], root=tree_copy) == 0
    assert "already promoted" in capsys.readouterr().out
    assert kustomization(tree_copy, "prod").read_bytes() == before


@pytest.mark.parametrize("target", ["prod", MADE_UP_ENV])
def test_production_refuses_a_tag_and_says_why(
    tree_copy: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    if target != "prod":
        add_environment(tree_copy, target, like="prod")
    image_ref.set_image(tree_copy, "dev", image_ref.parse("registry.example.com/platform/notifications:1.2.3"))
    before = files(tree_copy / "overlays" / target)
    assert promote.main(["--from", "dev", "--to", target], root=tree_copy) == 1
    err = capsys.readouterr().err
    assert f"refusing to promote registry.example.com/platform/notifications:1.2.3 to {target}" in err
    assert "sha256 digest" in err and "mutable" in err
    assert files(tree_copy / "overlays" / target) == before


def test_non_production_takes_a_tag_and_a_digest_replaces_it(tree_copy: Path) -> None:
    add_environment(tree_copy, MADE_UP_ENV, like="dev")
    tagged = image_ref.parse("registry.example.com/platform/notifications:1.2.3")
    image_ref.set_image(tree_copy, "dev", tagged)
    assert promote.main(["--from", "dev", "--to", MADE_UP_ENV], root=tree_copy) == 0
    assert image_ref.read_image(tree_copy, MADE_UP_ENV) == tagged
    assert "digest:" not in kustomization(tree_copy, MADE_UP_ENV).read_text()

    pin_dev(tree_copy)
    assert promote.main(["--from", "dev", "--to", MADE_UP_ENV], root=tree_copy) == 0
    staging = kustomization(tree_copy, MADE_UP_ENV).read_text()
    # kustomize would render both as name:tag@digest; the promoted entry must hold the digest alone.
    assert "newTag" not in staging
    assert image_ref.read_image(tree_copy, MADE_UP_ENV).digest == NEW_DIGEST


@pytest.mark.parametrize(
    ("source", "target", "code", "message"),
    # An unknown environment is bad input (2, docs/cli.md); FROM == TO is a refused promotion (1).
    [("dev", MADE_UP_ENV, 2, f"unknown environment {MADE_UP_ENV!r}"), ("dev", "dev", 1, "both")],
)
def test_promote_rejects_bad_environments(
    tree_copy: Path, capsys: pytest.CaptureFixture[str], source: str, target: str, code: int, message: str
) -> None:
    assert promote.main(["--from", source, "--to", target], root=tree_copy) == code
    assert message in capsys.readouterr().err


def test_make_promote_runs_this_module_and_fails_on_refusal(tree_copy: Path) -> None:
    """The Makefile's `promote` verb, run in the copy (python -m imports the copy's gitops, so it edits the copy)."""
    shutil.copy(REPO_ROOT / "Makefile", tree_copy / "Makefile")
    shutil.copytree(REPO_ROOT / "gitops", tree_copy / "gitops", ignore=shutil.ignore_patterns("__pycache__"))
    make = ["make", "--no-print-directory", "-C", str(tree_copy), f"VENV={REPO_ROOT / '.venv'}", "promote"]
    pin_dev(tree_copy)
    done = subprocess.run([*make, "FROM=dev", "TO=prod"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert image_ref.read_image(tree_copy, "prod").digest == NEW_DIGEST
    assert image_ref.read_image(REPO_ROOT, "prod").digest != NEW_DIGEST

    image_ref.set_image(tree_copy, "dev", image_ref.parse("registry.example.com/platform/notifications:1.2.3"))
    refused = subprocess.run([*make, "FROM=dev", "TO=prod"], capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    assert "refusing to promote" in refused.stderr


def test_promote_keeps_the_targets_registry_and_says_the_digest_must_be_there(
    tree_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fork sets prod's registry apart from dev's (docs/forking.md): promote copied dev's repository over it."""
    prod_repository = "registry.prod.internal/platform/notifications"
    before = image_ref.read_image(tree_copy, "prod")
    image_ref.set_image(tree_copy, "prod", image_ref.ImageRef(prod_repository, before.digest))
    prod_text = kustomization(tree_copy, "prod").read_text()
    dev_ref = pin_dev(tree_copy)
    capsys.readouterr()

    assert promote.main(["--from", "dev", "--to", "prod"], root=tree_copy) == 0

    after = image_ref.read_image(tree_copy, "prod")
    assert after == image_ref.ImageRef(prod_repository, NEW_DIGEST)
    assert len(changed_lines(prod_text, kustomization(tree_copy, "prod").read_text())) == 2  # the digest line only
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "keeps its registry" in line]
    assert notes == [
        f"  prod keeps its registry: {dev_ref} must exist as {after} before prod syncs "
        "(copy it there; a copy keeps the digest)"
    ]
