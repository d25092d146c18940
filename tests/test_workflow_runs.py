"""The workflows, run: every job's `run:` steps in order for every matrix entry, against a snapshot of this tree
(tests/workflow_runner.py says what stands in for GitHub). A job that would fail on GitHub fails here."""

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops.core import releases
from gitops.core.paths import RELEASES_LOCK, REPO_ROOT, environments
from tests.workflow_runner import WORKFLOWS, Runner


def stand_in_asset(url: str) -> str:
    """A stand-in for a release asset no offline copy exists of (its lock entry is null until `make bump`)."""
    asset = releases.ReleaseAsset.parse(url)
    name = "test-" + asset.file.removesuffix(".yaml")
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  name: {name}\n  namespace: knative-eventing\ndata:\n  stands-in-for: {url}\n"
    )


def null_lock_entries(root: Path = REPO_ROOT) -> list[str]:
    return [url for url, digest in releases.load_lock(root).items() if digest is None]


def complete_the_lock(work: Path) -> tuple[dict[str, Path], Callable[[Path], None]]:
    """What `make bump VERSION=1.23.0` where GitHub is reachable leaves behind, for any number of null entries:
    every lock entry has a digest, and the release cache holds the matching files."""
    assets: dict[str, Path] = {}
    digests: dict[str, str] = {}
    for url in null_lock_entries():
        asset = releases.ReleaseAsset.parse(url)
        path = work / "assets" / asset.tag / asset.repo / asset.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(stand_in_asset(url))
        assets[str(Path(asset.tag) / asset.repo / asset.file)] = path
        digests[url] = hashlib.sha256(path.read_bytes()).hexdigest()

    def prepare(snapshot: Path) -> None:
        lock = snapshot / RELEASES_LOCK
        text = lock.read_text()
        for url, digest in digests.items():
            assert f"{url}: null" in text
            text = text.replace(f"{url}: null", f"{url}: {digest}")
        lock.write_text(text)

    return assets, prepare


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
