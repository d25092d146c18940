"""Shared by the pin-image and promote tests: a new digest, pinning it into dev, the overlay files, the rendered
image."""

import difflib
from pathlib import Path

from gitops.core import manifests
from gitops.core.render import render_env
from gitops.delivery import image_ref, pin_image

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
