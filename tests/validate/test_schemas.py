"""The schema cache is safe to build from two validations at once: entries appear whole, nothing is deleted."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.core.paths import REPO_ROOT
from gitops.validate import schemas


def test_publish_keeps_the_first_complete_copy(tmp_path: Path) -> None:
    target = tmp_path / "entry"
    first, second = tmp_path / "a", tmp_path / "b"
    for staging, text in ((first, "first"), (second, "second")):
        staging.mkdir()
        (staging / "schema.json").write_text(text)
    schemas._publish(first, target)
    schemas._publish(second, target)  # the loser of a race: its copy is discarded, the winner's is untouched
    assert (target / "schema.json").read_text() == "first"
    assert not second.exists() and not first.exists()


def test_core_schemas_are_built_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(tmp_path))
    root = schemas.kubernetes_schemas()
    built = sorted(p.name for p in root.rglob("*.json"))
    assert "_definitions.json" in built
    assert schemas.kubernetes_schemas() == root
    assert sorted(p.name for p in root.rglob("*.json")) == built
    assert [p.name for p in (tmp_path / "schemas").iterdir()] == [root.name], "no staging directory left behind"


@pytest.mark.slow
def test_two_cold_validations_at_once(tmp_path: Path) -> None:
    """Seen before the fix in 3 of 6 cold runs: one thread deleted the schemas the other was reading."""
    env = {**os.environ, "GITOPS_CACHE_DIR": str(tmp_path / "cold-cache")}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "gitops.cli", "validate"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=280)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert "could not find schema" not in output
        assert run.returncode == 0, output
        assert "validate: OK" in output
    leftovers = [p.name for p in (tmp_path / "cold-cache" / "schemas").iterdir()]
    assert all(name.startswith(("k8s-", "crds-")) for name in leftovers), leftovers
