"""The layering of gitops/ (gitops.LAYERS): each sub-package imports only from itself and the layers below it."""

import ast
from pathlib import Path

import pytest

import gitops
from gitops.core.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "gitops"


def imported_layers(source: str) -> set[str]:
    """The gitops sub-packages a module's source imports (from any import statement, at any depth)."""
    layers = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "gitops" and len(parts) > 1 and parts[1] in gitops.LAYERS:
                layers.add(parts[1])
    return layers


def layer_violations(package: Path) -> list[str]:
    rank = {layer: i for i, layer in enumerate(gitops.LAYERS)}
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).parts
        if len(parts) < 2:
            continue  # gitops/__init__.py and cli.py: the top
        if parts[0] not in rank:
            found.append(f"{path.relative_to(package.parent)}: sub-package {parts[0]!r} is not in gitops.LAYERS")
            continue
        for layer in sorted(imported_layers(path.read_text())):
            if rank[layer] > rank[parts[0]]:
                found.append(f"{path.relative_to(package.parent)}: {parts[0]} imports gitops.{layer}, a higher layer")
    return found


def test_every_sub_package_imports_only_lower_layers():
    assert layer_violations(PACKAGE) == []


def test_every_sub_package_is_a_layer():
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == set(gitops.LAYERS)


def test_an_upward_import_is_reported(tmp_path: Path):
    package = tmp_path / "gitops"
    (package / "core").mkdir(parents=True)
    (package / "core" / "render.py").write_text("def f():\n    from gitops.validate import run\n")
    (package / "stray").mkdir()
    (package / "stray" / "x.py").write_text("")
    assert layer_violations(package) == [
        "gitops/core/render.py: core imports gitops.validate, a higher layer",
        "gitops/stray/x.py: sub-package 'stray' is not in gitops.LAYERS",
    ]


@pytest.mark.parametrize("layer", gitops.LAYERS)
def test_docs_show_every_layer(layer: str):
    assert f"gitops/{layer}/" in (REPO_ROOT / "README.md").read_text()
