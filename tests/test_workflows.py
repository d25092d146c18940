"""GitHub Actions workflows cannot run here, so every file in .github/workflows/ is linted with actionlint, and what
the workflows call in this repository (make verbs, gitops modules) must exist."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from gitops.core.paths import REPO_ROOT
from gitops.core.tools import ToolMissing, tool

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
    committed = [p for line in re.findall(r"git commit .* -- (.+)", scripts) for p in line.split()]
    assert committed == ["overlays/dev/kustomization.yaml", "images/notifications"]
    assert not any(f.match(path) or f.match(path + "/x.json") for f in filters for path in committed)


def test_what_workflows_call_exists() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    verbs = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.MULTILINE))
    for path in workflow_files():
        text = path.read_text()
        for verb in re.findall(r"\bmake ([a-z][a-z0-9-]*)", text):
            assert verb in verbs, f"{path.name}: `make {verb}` is not a Makefile target"
        for module in re.findall(r"-m (gitops(?:\.\w+)+)", text):
            assert importlib.util.find_spec(module) is not None, f"{path.name}: no module {module}"


# --- supply chain and least privilege (issue: workflows pinned, permissions per job, zizmor) -------------------

PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
HYDRATE_WORKFLOW = WORKFLOWS / "hydrate.yaml"


def zizmor(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "zizmor"
    assert binary.is_file(), "zizmor is a dev dependency (requirements.lock): run `make setup`"
    # --offline: no GitHub API calls (tests run offline); every offline audit still runs.
    return subprocess.run(
        [str(binary), "--offline", "--no-progress", *map(str, paths)], capture_output=True, text=True, timeout=120
    )


def uses_lines(path: Path) -> list[str]:
    return [line.split("uses:", 1)[1].strip() for line in path.read_text().splitlines() if "uses:" in line]


def test_every_workflow_passes_zizmor() -> None:
    result = zizmor(workflow_files())
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_fails_an_unpinned_over_privileged_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: pull_request_target\n"
        "permissions: write-all\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          ref: ${{ github.event.pull_request.head.sha }}\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    result = zizmor([broken])
    assert result.returncode != 0
    for audit in ("unpinned-uses", "template-injection", "artipacked"):
        assert audit in result.stdout, result.stdout


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_actions_are_pinned_by_sha_with_version(path: Path) -> None:
    for ref in uses_lines(path):
        assert PINNED.match(ref), f"{path.name}: `uses: {ref}` is not `owner/action@<40-hex sha> # vX.Y.Z`"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_permissions_are_per_job(path: Path) -> None:
    workflow = YAML(typ="safe").load(path.read_text())
    assert workflow["permissions"] == {}, f"{path.name}: the workflow default must grant nothing"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} must state its permissions"
        pushes = "git push" in "\n".join(step.get("run", "") for step in job["steps"])
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                persist = (step.get("with") or {}).get("persist-credentials")
                assert persist is pushes, f"{path.name}: job {name} persist-credentials"
        if not pushes:
            assert "write" not in str(job["permissions"].get("contents", "")), f"{path.name}: job {name}"


def test_hydrate_workflow_runs_the_verbs_and_publishes_only_what_validate_passed() -> None:
    workflow = YAML(typ="safe").load(HYDRATE_WORKFLOW.read_text())
    assert workflow["on"]["push"]["branches"] == ["main"]
    hydrate_job, publish = workflow["jobs"]["hydrate"], workflow["jobs"]["publish"]
    assert hydrate_job["env"] == {"ENV": "${{ matrix.env }}"}
    runs = [step.get("run", "") for step in hydrate_job["steps"]]
    hydrate_step, validate_step = (
        'make hydrate ENV="$ENV" OUT="hydrated/$ENV"',
        'make validate ENV="$ENV" HYDRATED="hydrated/$ENV"',
    )
    assert hydrate_step in runs and validate_step in runs
    assert runs.index(hydrate_step) < runs.index(validate_step)
    upload = next(s for s in hydrate_job["steps"] if "upload-artifact" in str(s.get("uses")))
    assert upload["with"]["path"] == "hydrated/${{ matrix.env }}"
    assert publish["needs"] == ["environments", "hydrate"]
    script = "\n".join(step.get("run", "") for step in publish["steps"])
    # The publish job renders nothing itself: it copies the validated artifact.
    assert "make " not in script and "gitops." not in script
    assert 'git push origin "HEAD:refs/heads/$deploy"' in script  # dev
    # A production environment (prod): only via a pull request.
    assert 'git push --force origin "HEAD:refs/heads/hydrate/$ENV"' in script
    assert 'gh pr create --base "deploy/$ENV" --head "hydrate/$ENV"' in script
    assert "Source-Commit: $SOURCE_SHA" in script and "Releases-Lock-Sha256: $lock" in script


def test_matrices_come_from_environments_yaml() -> None:
    """No workflow lists environments itself: every matrix over environments is the `environments` job's output,
    `gitops environments --github-matrix`, so a fork's new environment is hydrated and published without a
    workflow edit (the workflow runner test runs it for a fork that adds one)."""
    from gitops.core.environments import github_matrix, load

    for path in workflow_files():
        workflow = YAML(typ="safe").load(path.read_text())
        for name, job in workflow["jobs"].items():
            matrix = (job.get("strategy") or {}).get("matrix")
            if matrix is None:
                continue
            assert matrix == "${{ fromJSON(needs.environments.outputs.matrix) }}", f"{path.name}: job {name}"
            needs = job["needs"] if isinstance(job["needs"], list) else [job["needs"]]
            assert "environments" in needs, f"{path.name}: job {name}"
    hydrate_workflow = YAML(typ="safe").load(HYDRATE_WORKFLOW.read_text())
    emit = hydrate_workflow["jobs"]["environments"]["steps"][-1]["run"]
    assert emit == 'python -m gitops.cli environments --github-matrix >> "$GITHUB_OUTPUT"'
    assert github_matrix(load(REPO_ROOT)) == {
        "include": [{"env": env, "reviewed": load(REPO_ROOT).is_production(env)} for env in load(REPO_ROOT).names]
    }
