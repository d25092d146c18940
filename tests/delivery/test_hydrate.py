"""`make hydrate`: the lock-verified render as one file per object, all or nothing, byte-identical on rerun.

The real tree cannot hydrate offline (the Kafka Broker and KafkaSink data planes have no mirror copy and a null
digest): that must fail with one line. The success path runs on a copy of the tree whose mirror and lock carry
test-made data-plane assets with their real sha256 (the `hydratable` fixture, tests/conftest.py); validate's `--hydrated` is tested in
tests/validate/test_run.py.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.core import manifests
from gitops.core.paths import RELEASES_LOCK, REPO_ROOT
from gitops.core.render import render_env
from gitops.delivery import hydrate
from tests.support import BROKER_ASSET, MADE_UP_ENV, TEST_ASSET


def tree_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitops.delivery.hydrate", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- the real tree ---------------------------------------------------------------------------------------------


def test_real_tree_fails_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "dev"
    result = run_cli("--env", "dev", "--out", str(out))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hydrate dev: FAILED, nothing written: ")
    assert BROKER_ASSET in lines[0] and "the lock records no sha256" in lines[0]
    # Every left-out asset (the Broker's and the KafkaSink's data planes) and the command with its VERSION=.
    assert "eventing-kafka-sink.yaml" in lines[0] and "`make bump VERSION=1.23.0`" in lines[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no scratch directory left behind either


def test_unknown_environment_fails_with_one_line(tmp_path: Path) -> None:
    """Bad input: exit 2, as docs/cli.md documents (it was 1, a failed hydrate)."""
    result = run_cli("--env", MADE_UP_ENV, "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"unknown environment '{MADE_UP_ENV}'" in result.stderr


# --- success path on a copy whose lock is complete ------------------------------------------------------------


def test_hydrate_writes_the_render_one_file_per_object(hydratable: tuple[Path, Path], tmp_path: Path) -> None:
    root, mirror = hydratable
    out = tmp_path / "out" / "prod"
    result = hydrate.hydrate("prod", out, root, mirror=mirror)
    render = render_env("prod", root, mirror=mirror)
    assert render.omitted == []
    files = sorted(p.name for p in out.glob("*.yaml"))
    assert len(files) == len(render.objects) == len(result.files)
    # The same objects as `make render`, byte for byte per document.
    assert sorted(hydrate.split_documents(render.text)) == sorted(p.read_text() for p in out.glob("*.yaml"))
    assert sorted(map(manifests.ObjKey.of, manifests.load_stream(hydrate.load_hydrated(out)))) == sorted(
        map(manifests.ObjKey.of, render.objects)
    )
    assert "knative-eventing--configmap--config-kafka-broker-data-plane.yaml" in files
    assert "knative-eventing--configmap--config-kafka-sink-data-plane.yaml" in files
    assert "notifications--kafkasink.eventing.knative.dev--dead-letters.yaml" in files
    assert "notifications--service.serving.knative.dev--notifications.yaml" in files
    assert "_cluster--namespace--notifications.yaml" in files
    provenance = (out / hydrate.PROVENANCE).read_text()
    assert "environment: prod\n" in provenance
    assert f"releases-lock-sha256: {hashlib.sha256((root / RELEASES_LOCK).read_bytes()).hexdigest()}\n" in provenance
    assert "source-commit: unknown (not a git checkout)\n" in provenance
    assert f"objects: {len(files)}\n" in provenance


def test_hydrate_is_byte_identical_on_rerun(hydratable: tuple[Path, Path], tmp_path: Path) -> None:
    root, mirror = hydratable
    first, second = tmp_path / "a" / "dev", tmp_path / "b" / "dev"
    hydrate.hydrate("dev", first, root, mirror=mirror)
    hydrate.hydrate("dev", second, root, mirror=mirror)
    before = tree_bytes(first)
    assert before == tree_bytes(second)
    hydrate.hydrate("dev", first, root, mirror=mirror)  # rewriting in place changes nothing either
    assert tree_bytes(first) == before


def test_provenance_records_the_source_commit(hydratable: tuple[Path, Path], tmp_path: Path) -> None:
    root, mirror = hydratable
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "source"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    hydrate.hydrate("dev", tmp_path / "dev", root, mirror=mirror)
    assert f"source-commit: {head}\n" in (tmp_path / "dev" / hydrate.PROVENANCE).read_text()
    (root / "overlays" / "dev" / "scale.yaml").write_text((root / "overlays" / "dev" / "scale.yaml").read_text() + "\n")
    hydrate.hydrate("dev", tmp_path / "dev", root, mirror=mirror)
    assert f"source-commit: {head}+dirty\n" in (tmp_path / "dev" / hydrate.PROVENANCE).read_text()


def test_tampered_asset_fails_and_keeps_the_previous_output(hydratable: tuple[Path, Path], tmp_path: Path) -> None:
    root, mirror = hydratable
    out = tmp_path / "dev"
    hydrate.hydrate("dev", out, root, mirror=mirror)
    before = tree_bytes(out)
    (mirror / "knative-v1.23.0" / "eventing-kafka-broker" / "eventing-kafka-broker.yaml").write_text(
        TEST_ASSET.replace("acks=all", "acks=0")
    )
    with pytest.raises(hydrate.HydrateError, match=r"sha256 [0-9a-f]{64} but the lock says") as error:
        hydrate.hydrate("dev", out, root, mirror=mirror)
    assert "\n" not in str(error.value)
    assert tree_bytes(out) == before
    assert not [p for p in tmp_path.iterdir() if ".hydrate-" in p.name]


def test_out_with_foreign_files_is_refused(hydratable: tuple[Path, Path], tmp_path: Path) -> None:
    root, mirror = hydratable
    out = tmp_path / "checkout"
    out.mkdir()
    (out / "README.md").write_text("not ours\n")
    with pytest.raises(hydrate.HydrateError, match=r"holds files a hydrate did not write \(README.md\)"):
        hydrate.hydrate("dev", out, root, mirror=mirror)
    assert (out / "README.md").read_text() == "not ours\n"
