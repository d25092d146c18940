"""Locate the pinned CLI tools that `make setup` installs into ./bin (or that PATH already provides)."""

import shutil
from pathlib import Path

from gitops.core.errors import UserError
from gitops.core.paths import REPO_ROOT


class ToolMissing(UserError):
    """A pinned tool is not installed: `make setup` installs it into ./bin."""


def tool(name: str) -> str:
    local = REPO_ROOT / "bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} not found in ./bin or on PATH", fix="run `make setup`")
    return found


def pinned_versions() -> dict[str, str]:
    """hack/tool-versions.env as a dict, e.g. {"KUSTOMIZE_VERSION": "v5.8.1"}."""
    pins: dict[str, str] = {}
    for line in Path(REPO_ROOT / "hack" / "tool-versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pins[key] = value
    return pins
