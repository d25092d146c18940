"""GitHub Actions workflows cannot run here, so every file in .github/workflows/ is linted with actionlint, and what
the workflows call in this repository (make verbs, gitops modules) must exist."""

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from gitops.paths import REPO_ROOT
from gitops.tools import ToolMissing, tool

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
IMAGE_WORKFLOW = WORKFLOWS / "image.yaml"


def workflow_files(directory: Path = WORKFLOWS) -> list[Path]:
    return sorted(p for p in directory.glob("*") if p.suffix in {".yaml", ".yml"})


def actionlint(files: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        binary = tool("actionlint")
    except ToolMissing as missing:
        pytest.skip(f"actionlint is not installed, workflows are NOT linted: {missing}")
    # cwd: actionlint finds the project (and any .github/actionlint.yaml) from there.
    return subprocess.run(
        [binary, "-no-color", *map(str, files)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_every_workflow_passes_actionlint() -> None:
    files = workflow_files()
    assert IMAGE_WORKFLOW in files
    result = actionlint(files, REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_fails_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  pin:\n"
        "    needs: build\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: echo ${{ needs.build.outputs.digest }}\n"
    )
    result = actionlint(workflow_files(broken.parent), tmp_path)
    assert result.returncode == 1
    assert "broken.yaml" in result.stdout and '"build" which does not exist' in result.stdout


def github_glob(pattern: str) -> re.Pattern[str]:
    """GitHub's path-filter globs: `**` crosses directories, `*` and `?` do not."""
    parts = re.split(r"(\*\*/?|\*|\?)", pattern)
    table = {"**": ".*", "**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(table.get(part, re.escape(part)) for part in parts) + r"\Z")


def test_the_pin_commit_cannot_retrigger_the_image_build() -> None:
    workflow = YAML(typ="safe").load(IMAGE_WORKFLOW.read_text())
    push = workflow["on"]["push"]
    assert push["branches"] == ["main"]
    filters = [github_glob(p) for p in push["paths"]]
    assert any(f.match("apps/notifications/src/notifications/app.py") for f in filters)
    assert any(f.match("apps/notifications/Dockerfile") for f in filters)
    scripts = "\n".join(step.get("run", "") for step in workflow["jobs"]["pin"]["steps"])
    committed = re.findall(r"git commit .* -- (\S+)", scripts)
    assert committed == ["overlays/dev/kustomization.yaml"]
    assert not any(f.match(path) for f in filters for path in committed)


def test_what_workflows_call_exists() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    verbs = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    for path in workflow_files():
        text = path.read_text()
        for verb in re.findall(r"\bmake ([a-z][a-z-]*)", text):
            assert verb in verbs, f"{path.name}: `make {verb}` is not a Makefile target"
        for module in re.findall(r"-m (gitops(?:\.\w+)+)", text):
            assert importlib.util.find_spec(module) is not None, f"{path.name}: no module {module}"
