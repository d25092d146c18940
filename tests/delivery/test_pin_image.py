"""CI's pin into dev (gitops pin-image), on a copy of the tree: one line changes, in one file, in dev only."""

from pathlib import Path

import pytest

from gitops.delivery import pin_image
from tests.delivery.image_support import NEW_DIGEST, changed_lines, files, ksvc_image, kustomization, pin_dev


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


def test_the_pin_records_the_code_the_image_was_built_from(tree_copy: Path, capsys: pytest.CaptureFixture[str]):
    """--print-code on the built commit, --code with the pin: a record keyed by the digest (issue 28)."""
    import json

    assert pin_image.main(["--print-code"], root=tree_copy) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("code=")
    code = json.loads(line.removeprefix("code="))
    assert ["POST", "/events/notifications"] in code["routes"] and "MAX_BODY_BYTES" in code["settings"]
    ref = f"{image_ref_of_dev(tree_copy)}@{NEW_DIGEST}"
    assert pin_image.main(["--env", "dev", "--image", ref, "--code", json.dumps(code)], root=tree_copy) == 0
    record = json.loads((tree_copy / f"images/notifications/{NEW_DIGEST.replace(':', '-')}.json").read_text())
    assert record == {**code, "image": ref}
    assert pin_image.main(["--env", "dev", "--image", ref, "--code", "{not json"], root=tree_copy) == 1
    assert "--code is not JSON" in capsys.readouterr().err


def image_ref_of_dev(root: Path) -> str:
    from gitops.delivery import image_ref

    return image_ref.read_image(root, "dev").repository
