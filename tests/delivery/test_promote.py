"""CI's pin into dev and `make promote`, on a copy of the tree: one line changes, in one file, in one environment."""

import difflib
import shutil
import subprocess
from pathlib import Path

import pytest

from gitops.core import manifests
from gitops.core.paths import REPO_ROOT
from gitops.core.render import render_env
from gitops.delivery import image_ref, pin_image, promote
from gitops.delivery.image_ref import ImageRef, ImageRefError
from gitops.validate.checks.policy import DIGEST_REF
from gitops.validate.run import validate
from tests.support import MADE_UP_ENV, add_environment

NEW_DIGEST = "sha256:" + "ab" * 32


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def kustomization(root: Path, env: str) -> Path:
    return root / "overlays" / env / "kustomization.yaml"


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def ksvc_image(root: Path, env: str) -> str:
    ksvc = manifests.find(
        render_env(env, root).objects, "serving.knative.dev", "Service", "notifications", "notifications"
    )
    assert ksvc is not None
    return manifests.dig(ksvc, "spec", "template", "spec", "containers", 0, "image")


def pin_dev(root: Path, digest: str = NEW_DIGEST) -> str:
    ref = f"{image_ref.read_image(root, 'dev').repository}@{digest}"
    assert pin_image.main(["--env", "dev", "--image", ref], root=root) == 0
    return ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"ghcr.io/acme/notifications@{NEW_DIGEST}", ImageRef("ghcr.io/acme/notifications", NEW_DIGEST)),
        ("localhost:5000/team/notifications:1.4.2", ImageRef("localhost:5000/team/notifications", tag="1.4.2")),
        (f"registry.example.com/a/b:1.0@{NEW_DIGEST}", ImageRef("registry.example.com/a/b", NEW_DIGEST)),
        ("notifications", ImageRef("notifications")),
    ],
)
def test_parse(text: str, expected: ImageRef) -> None:
    ref = image_ref.parse(text)
    assert ref == expected
    # promote's notion of "pinned" must be the prod policy's, or promote would let through what validate rejects.
    assert ref.is_digest == bool(DIGEST_REF.search(str(ref)))


@pytest.mark.parametrize(
    "text",
    ["ghcr.io/acme/n@sha256:abc", f"ghcr.io/acme/n@sha512:{'a' * 64}", "ghcr.io/Acme/n:1", "ghcr.io/acme/n:bad tag"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ImageRefError):
        image_ref.parse(text)


def test_registry_is_the_host_docker_would_log_in_to() -> None:
    assert image_ref.parse("ghcr.io/acme/n:1").registry == "ghcr.io"
    assert image_ref.parse("localhost:5000/n:1").registry == "localhost:5000"
    assert image_ref.parse("acme/n:1").registry == "docker.io"


def test_print_target_is_the_dev_overlays_new_name(tree_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = kustomization(tree_copy, "dev").read_text()
    kustomization(tree_copy, "dev").write_text(text.replace("registry.example.com/platform", "ghcr.io/acme"))
    assert pin_image.main(["--env", "dev", "--print-target"], root=tree_copy) == 0
    assert capsys.readouterr().out.splitlines() == ["repository=ghcr.io/acme/notifications", "registry=ghcr.io"]


def test_pin_rewrites_one_line_of_dev_and_nothing_in_prod(tree_copy: Path) -> None:
    dev_before = kustomization(tree_copy, "dev").read_text()
    prod_before = files(tree_copy / "overlays/prod")
    ref = pin_dev(tree_copy)
    dev_after = kustomization(tree_copy, "dev").read_text()
    assert changed_lines(dev_before, dev_after) == [
        next(f"-{line}" for line in dev_before.splitlines() if "digest:" in line),
        f"+    digest: {NEW_DIGEST}",
    ]
    assert files(tree_copy / "overlays/prod") == prod_before
    assert ksvc_image(tree_copy, "dev") == ref
    assert ksvc_image(tree_copy, "prod") != ref


def test_pin_twice_changes_nothing(tree_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = pin_dev(tree_copy)
    before = kustomization(tree_copy, "dev").read_bytes()
    assert pin_image.main(["--env", "dev", "--image", ref], root=tree_copy) == 0
    assert kustomization(tree_copy, "dev").read_bytes() == before
    assert "already runs" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("registry.example.com/platform/notifications:1.2.3", "not a digest"),
        (f"ghcr.io/elsewhere/notifications@{NEW_DIGEST}", "newName is where images are pushed"),
    ],
)
def test_pin_refuses(tree_copy: Path, capsys: pytest.CaptureFixture[str], ref: str, reason: str) -> None:
    before = kustomization(tree_copy, "dev").read_bytes()
    assert pin_image.main(["--env", "dev", "--image", ref], root=tree_copy) == 1
    assert reason in capsys.readouterr().err
    assert kustomization(tree_copy, "dev").read_bytes() == before


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
    ("source", "target", "message"),
    [("dev", MADE_UP_ENV, f"unknown environment {MADE_UP_ENV!r}"), ("dev", "dev", "both")],
)
def test_promote_rejects_bad_environments(
    tree_copy: Path, capsys: pytest.CaptureFixture[str], source: str, target: str, message: str
) -> None:
    assert promote.main(["--from", source, "--to", target], root=tree_copy) == 1
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
