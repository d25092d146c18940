"""`make hydrate`: the lock-verified render as one file per object, all or nothing, byte-identical on rerun.

The real tree cannot hydrate offline (the Kafka Broker data plane has no mirror copy and a null digest): that must
fail with one line. The success path runs on a copy of the tree whose mirror and lock carry a test-made data-plane
asset with its real sha256.
"""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gitops.core import manifests
from gitops.core.paths import RELEASES_LOCK, REPO_ROOT, release_mirror
from gitops.core.render import render_env
from gitops.delivery import hydrate
from gitops.validate.run import validate
from tests.support import MADE_UP_ENV

BROKER_ASSET = (
    "https://github.com/knative-extensions/eventing-kafka-broker/releases/download/knative-v1.23.0/"
    "eventing-kafka-broker.yaml"
)
# Stands in for the Kafka Broker data plane, which no offline copy exists of; made here, hashed here.
TEST_ASSET = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: config-kafka-broker-data-plane
  namespace: knative-eventing
data:
  config-kafka-broker-producer.properties: |
    acks=all
"""


def mirror_with_broker_asset(tmp_path: Path, asset: str = TEST_ASSET) -> Path:
    """A mirror: links to every real mirrored asset plus the test-made broker data plane."""
    mirror = tmp_path / "mirror"
    for src in release_mirror().rglob("*.yaml"):
        dest = mirror / src.relative_to(release_mirror())
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(src)
    target = mirror / "knative-v1.23.0" / "eventing-kafka-broker" / "eventing-kafka-broker.yaml"
    target.write_text(asset)
    return mirror


def lock_digest(root: Path, url: str, digest: str) -> None:
    lock = root / RELEASES_LOCK
    text = lock.read_text()
    assert f"{url}: null" in text
    lock.write_text(text.replace(f"{url}: null", f"{url}: {digest}"))


@pytest.fixture
def hydratable(tree_copy: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(tree, mirror) where every asset of the lock is present and verified."""
    mirror = mirror_with_broker_asset(tmp_path)
    lock_digest(tree_copy, BROKER_ASSET, hashlib.sha256(TEST_ASSET.encode()).hexdigest())
    return tree_copy, mirror


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
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no scratch directory left behind either


def test_unknown_environment_fails_with_one_line(tmp_path: Path) -> None:
    result = run_cli("--env", MADE_UP_ENV, "--out", str(tmp_path / "x"))
    assert result.returncode == 1
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


def test_validate_checks_the_hydrated_bytes(hydratable: tuple[Path, Path], tmp_path: Path, monkeypatch) -> None:
    root, mirror = hydratable
    monkeypatch.setenv("KNATIVE_RELEASE_MIRROR", str(mirror))
    out = tmp_path / "dev"
    hydrate.hydrate("dev", out, root, mirror=mirror)
    report = validate(root, ["dev"], hydrated={"dev": out})
    assert [f for f in report.findings if f.check == "hydrated"] == []
    assert report.renders["dev"].text == hydrate.load_hydrated(out)
    # A hand edit on the deploy branch is not what validate passed: named with env, object and directory.
    ksvc = out / "notifications--service.serving.knative.dev--notifications.yaml"
    edited = yaml.safe_load(ksvc.read_text())
    edited["metadata"].setdefault("labels", {})["hand-edited"] = "true"
    ksvc.write_text(yaml.safe_dump(edited))
    (out / "_cluster--namespace--extra.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: extra\n")
    found = [str(f) for f in validate(root, ["dev"], hydrated={"dev": out}).findings if f.check == "hydrated"]
    assert (
        f"[dev] Namespace extra ({out}): is in the hydrated files but not in a fresh render of this tree  <hydrated>"
        in found
    )
    assert any(
        "Service.serving.knative.dev notifications/notifications" in f and "differs from a fresh render" in f
        for f in found
    )


def test_wave_and_health_checks_run_on_the_hydrated_files(
    hydratable: tuple[Path, Path], tmp_path: Path, monkeypatch
) -> None:
    """What Argo CD syncs is the hydrated directory: a Trigger hydrated into the upstream install's wave is
    reported from those files, with env, object and source file named."""
    root, mirror = hydratable
    monkeypatch.setenv("KNATIVE_RELEASE_MIRROR", str(mirror))
    triggers = root / "base" / "eventing" / "triggers.yaml"
    triggers.write_text(
        triggers.read_text().replace('argocd.argoproj.io/sync-wave: "3"', 'argocd.argoproj.io/sync-wave: "0"')
    )
    shutil.rmtree(root / "argocd/resource_customizations/sources.knative.dev/KafkaSource")
    out = tmp_path / "dev"
    hydrate.hydrate("dev", out, root, mirror=mirror)
    report = validate(root, ["dev"], hydrated={"dev": out})
    assert report.renders["dev"].text == hydrate.load_hydrated(out)
    found = [str(f) for f in report.findings]
    assert any(
        f.startswith("[dev] Trigger notifications/loggings (base/eventing/triggers.yaml): sync wave 0 is not after")
        and f.endswith("<argocd-waves>")
        for f in found
    ), found
    assert any(
        "[dev] KafkaSource notifications/kafka-source" in f
        and "no health check for sources.knative.dev/KafkaSource" in f
        for f in found
    ), found
