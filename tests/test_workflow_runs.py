"""The workflows, run: every job's `run:` steps in order for every matrix entry, against a snapshot of this tree
(tests/workflow_runner.py says what stands in for GitHub). A job that would fail on GitHub fails here."""

import json
import subprocess
from pathlib import Path

import pytest

from gitops.core.paths import REPO_ROOT, environments
from tests.workflow_runner import WORKFLOWS, Runner, complete_the_lock

# Each workflow run renders and validates like CI does (the hydrate fixture: two hydrate + validate jobs), minutes on
# a busy 2-core machine, beyond the suite's 300 s default.
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def hydrate_run(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    work = tmp_path_factory.mktemp("workflows")
    assets, prepare = complete_the_lock(work)
    runner = Runner(REPO_ROOT, work, extra_assets=assets, prepare=prepare)
    runner.create_branch("deploy/prod")  # docs/shipping.md, "First deploy"
    runner.run(WORKFLOWS / "hydrate.yaml", event={})
    return runner


def test_every_environments_hydrate_job_is_green(hydrate_run: Runner) -> None:
    matrix = hydrate_run.record.job("hydrate.yaml", "environments")
    assert matrix.ok, matrix.log()
    for env in environments():
        job = hydrate_run.record.job("hydrate.yaml", "hydrate", env=env)
        assert job.ok, f"{job.label}\n{job.log()}"
        steps = [s.name for s in job.steps if s.outcome == "success"]
        assert 'make hydrate ENV="$ENV" OUT="hydrated/$ENV"' in steps
        assert 'make validate ENV="$ENV" HYDRATED="hydrated/$ENV"' in steps


def test_publish_pushes_each_environment_as_its_facts_say(hydrate_run: Runner) -> None:
    import subprocess

    for env in environments():
        job = hydrate_run.record.job("hydrate.yaml", "publish", env=env)
        assert job.ok, f"{job.label}\n{job.log()}"
    heads = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short)", "refs/heads"],
        cwd=hydrate_run.origin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    from gitops.core.environments import load

    envs = load()
    for env in envs.names:
        branch = f"hydrate/{env}" if envs.is_production(env) else f"deploy/{env}"
        assert branch in heads, heads
        files = subprocess.run(
            ["git", "ls-tree", "--name-only", branch], cwd=hydrate_run.origin, capture_output=True, text=True
        ).stdout.split()
        assert "provenance.txt" in files and len(files) > 100, files[:5]
        if envs.is_production(env):
            assert any(
                line.startswith(f"gh pr create --base deploy/{env} --head hydrate/{env}")
                for line in hydrate_run.stubbed_log()
            ), hydrate_run.stubbed_log()


def git_out(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_validate_workflow_passes_a_pull_request_of_this_tree(tmp_path: Path) -> None:
    """validate.yaml on a pull request whose head is this tree, once `make bump` has locked every release asset
    (README, "Before the first push": with a null entry the deployer RBAC cannot be compared exactly on GitHub)."""
    assets, prepare = complete_the_lock(tmp_path / "work")
    runner = Runner(REPO_ROOT, tmp_path, extra_assets=assets, prepare=prepare)
    event = {
        "number": 1,
        "base": {"ref": "main"},
        "head": {"repo": {"full_name": "example-org/knative-kafka-gitops"}},
        "labels": [],
    }
    runner.run(WORKFLOWS / "validate.yaml", event={"pull_request": event})
    job = runner.record.job("validate.yaml", "validate")
    assert job.ok, job.log()
    ran = {s.name: s.outcome for s in job.steps}
    assert ran["make validate"] == "success" and ran["Rendered diff against the base branch"] == "success"
    assert ran["Dangerous changes need the allow-dangerous label"] == "skipped"
    assert any(s.startswith("actions/github-script") for s in runner.record.stubbed)


def test_image_workflow_pins_dev_and_pushes_the_pin(tmp_path: Path) -> None:
    """image.yaml on a push: the target comes from the dev overlay, the built digest is pinned into dev, the dev
    render still builds, and the pin commit reaches origin's main (then the hydrate workflow is dispatched)."""
    runner = Runner(REPO_ROOT, tmp_path)
    runner.run(WORKFLOWS / "image.yaml", event={})
    for name in ("test", "build", "pin"):
        job = runner.record.job("image.yaml", name)
        assert job.ok, f"{job.label}\n{job.log()}"
    target = runner.record.job("image.yaml", "test").outputs
    assert target["repository"].endswith("/notifications") and target["registry"]
    pinned = git_out(runner.origin, "show", "main:overlays/dev/kustomization.yaml")
    digest = runner.record.job("image.yaml", "build").outputs["digest"]
    assert f"digest: {digest}" in pinned
    assert git_out(runner.origin, "log", "-1", "--format=%s", "main").startswith(f"dev: notifications {digest}")
    # The code the image was built from travels with its digest: validate judges Trigger paths against it.
    record = json.loads(git_out(runner.origin, "show", f"main:images/notifications/{digest.replace(':', '-')}.json"))
    assert ["POST", "/events/notifications"] in record["routes"] and record["image"].endswith(f"@{digest}")
    assert "gh workflow run hydrate.yaml --ref main" in runner.stubbed_log()
