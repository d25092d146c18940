"""make bump rewrites URLs and lock together (or nothing), against a copy of the tree; the Renovate config proposes it."""

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from gitops.core import manifests, releases
from gitops.core.paths import (
    PLATFORM_KUSTOMIZATION,
    POST_INSTALL_KUSTOMIZATION,
    RELEASES_LOCK,
    REPO_ROOT,
    release_mirror,
)
from gitops.core.render import render_env
from gitops.upstream import bump

# The lock entries no offline copy exists of (null digests): the Kafka Broker and the KafkaSink data planes.
UNLOCKED = (
    "eventing-kafka-broker/eventing-kafka-broker.yaml",
    "eventing-kafka-broker/eventing-kafka-sink.yaml",
    # upstream's prometheus-operator scrape objects (base/monitoring): no offline copy either
    "eventing-kafka-broker/eventing-kafka-controller-prometheus-operator.yaml",
    "eventing-kafka-broker/eventing-kafka-broker-prometheus-operator.yaml",
    "eventing-kafka-broker/eventing-kafka-sink-prometheus-operator.yaml",
    "eventing-kafka-broker/eventing-kafka-source-prometheus-operator.yaml",
)
FAKE = "1.99.0"


def _no_network(url: str, dest: Path, timeout: float = 20.0) -> Path:
    raise httpx.ConnectError(f"offline (test): {url}")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(releases, "download", _no_network)


@pytest.fixture
def fake_mirror(tmp_path: Path) -> Path:
    """The real 1.23.0 files under a fake knative-v1.99.0 tag, serving-core tweaked so its digest differs."""
    mirror = tmp_path / "mirror"
    shutil.copytree(release_mirror() / "knative-v1.23.0", mirror / f"knative-v{FAKE}")
    (mirror / "knative-v1.23.0").symlink_to(release_mirror() / "knative-v1.23.0")
    core = mirror / f"knative-v{FAKE}/serving/serving-core.yaml"
    core.write_text(
        core.read_text().replace('app.kubernetes.io/version: "1.23.0"', f'app.kubernetes.io/version: "{FAKE}"')
    )
    return mirror


def null_entries(root: Path) -> list[str]:
    return [url for url, digest in releases.load_lock(root).items() if digest is None]


def snapshot(root: Path) -> dict[Path, str]:
    return {p: (root / p).read_text() for p in (PLATFORM_KUSTOMIZATION, RELEASES_LOCK)}


def run(root: Path, version: str, mirror: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = bump.main([version, "--root", str(root), "--mirror", str(mirror)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_same_version_offline_keeps_everything_and_says_null_stays_null(
    tree_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(tree_copy)
    code, out = run(tree_copy, "1.23.0", release_mirror(), capsys)
    # Non-zero while a lock entry is null: that lock cannot deploy (issue: it said "already at" and exited 0).
    assert code == bump.EXIT_UNAVAILABLE, out
    assert snapshot(tree_copy) == before
    for asset in UNLOCKED:
        assert f"{asset}: UNAVAILABLE" in out
    assert "still unrecorded (null) because it cannot be fetched here" in out
    nulls, total = null_entries(tree_copy), len(releases.load_lock(tree_copy))
    assert f"bump: INCOMPLETE: {len(nulls)} of {total} lock entries are still null" in out
    assert all(f"  {url}\n" in out for url in nulls)
    assert "next step: run `make bump VERSION=1.23.0` where github.com is reachable and commit" in out
    assert "PostSync" not in out  # no upgrade happened, nothing moved


def test_same_version_with_network_records_the_missing_digest(
    tree_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_download(url: str, dest: Path, timeout: float = 20.0) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(f"kind: List\n# stand-in for {url.rsplit('/', 1)[-1]}\n")
        return dest

    monkeypatch.setattr(releases, "download", fake_download)
    code, out = run(tree_copy, "1.23.0", release_mirror(), capsys)
    assert code == 0, out
    lock = releases.load_lock(tree_copy)
    urls = [u for u in lock if u.endswith(tuple("/" + asset.rsplit("/", 1)[-1] for asset in UNLOCKED))]
    assert len(urls) == len(UNLOCKED)
    for url in urls:
        stand_in = f"kind: List\n# stand-in for {url.rsplit('/', 1)[-1]}\n".encode()
        assert lock[url] == hashlib.sha256(stand_in).hexdigest()
        assert f"recorded the missing digest of {url}" in out
    # Every other line of the lock, comments included, is as it was.
    old, new = (
        (REPO_ROOT / RELEASES_LOCK).read_text().splitlines(),
        (tree_copy / RELEASES_LOCK).read_text().splitlines(),
    )
    assert [a for a, b in zip(old, new, strict=True) if a != b] == [f"  {url}: null" for url in urls]


def test_bump_to_new_version_rewrites_urls_and_lock_and_renders(
    tree_copy: Path, fake_mirror: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(tree_copy)
    code, out = run(tree_copy, f"v{FAKE}", fake_mirror, capsys)
    # Written, but the entries that were null (no mirror copy) stay null: not deployable yet, so not 0.
    assert code == bump.EXIT_UNAVAILABLE, out
    assert f"bump: INCOMPLETE: {len(null_entries(tree_copy))} of " in out

    kustomization = (tree_copy / PLATFORM_KUSTOMIZATION).read_text()
    assert kustomization == before[PLATFORM_KUSTOMIZATION].replace("knative-v1.23.0", f"knative-v{FAKE}")
    assert "knative-v1.23.0" not in kustomization
    lock = releases.load_lock(tree_copy)
    assert set(lock) == set(releases.referenced_urls(tree_copy))
    for url, digest in lock.items():
        asset = releases.ReleaseAsset.parse(url)
        assert asset.tag == f"knative-v{FAKE}"
        mirrored = asset.mirror_path(fake_mirror)
        assert digest == (releases.sha256_of(mirrored) if mirrored.is_file() else None), url
    serving = next(u for u in lock if u.endswith("/serving-core.yaml"))
    assert lock[serving] != releases.load_lock(REPO_ROOT)[serving.replace(FAKE, "1.23.0")]
    assert "# sha256 of every upstream release asset" in (tree_copy / RELEASES_LOCK).read_text()

    assert f"https://github.com/knative/serving/releases/tag/knative-v{FAKE}" in out
    # The post-install Jobs moved with the lock (no `kubectl create -f <url>` past it): in the render as hooks.
    assert "kubectl create -f" not in out and "Argo CD runs them as PostSync hooks" in out
    post_install = (tree_copy / POST_INSTALL_KUSTOMIZATION).read_text()
    assert "knative-v1.23.0" not in post_install and f"knative-v{FAKE}/eventing-kafka-post-install.yaml" in post_install

    rendered = render_env("prod", root=tree_copy, mirror=fake_mirror)
    controller = manifests.find(rendered.objects, "apps", "Deployment", "knative-serving", "controller")
    assert controller is not None and manifests.labels(controller)["app.kubernetes.io/version"] == FAKE
    assert rendered.origin(controller).endswith(f"knative-v{FAKE}/serving-core.yaml")


def test_offline_bump_to_unmirrored_version_changes_nothing(
    tree_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(tree_copy)
    code, out = run(tree_copy, "1.98.0", release_mirror(), capsys)
    assert code == bump.EXIT_UNAVAILABLE
    assert snapshot(tree_copy) == before
    # Honest counts: every asset listed as unhashable is counted (5 blocking + the null ones).
    total = len(releases.load_lock(tree_copy))
    assert f"could not hash {total} of {total} asset(s); NOTHING was changed" in out
    assert "https://github.com/knative/serving/releases/download/knative-v1.98.0/serving-core.yaml" in out
    assert "next steps: run `make bump VERSION=1.98.0` where github.com is reachable" in out


def test_changed_digest_for_the_same_url_is_refused(tree_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = tree_copy / RELEASES_LOCK
    lock.write_text(lock.read_text().replace("be3f16c9c0ac9276", "0000000000000000"))
    before = snapshot(tree_copy)
    code, out = run(tree_copy, "1.23.0", release_mirror(), capsys)
    assert code == 1
    assert "a release asset never changes" in out
    assert snapshot(tree_copy) == before


def test_disagreeing_tags_are_refused(tree_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tree_copy / PLATFORM_KUSTOMIZATION
    path.write_text(
        path.read_text().replace(
            "net-kourier/releases/download/knative-v1.23.0", "net-kourier/releases/download/knative-v1.22.0"
        )
    )
    code, out = run(tree_copy, FAKE, release_mirror(), capsys)
    assert code == 1
    assert "disagree on the version (knative-v1.22.0, knative-v1.23.0)" in out


@pytest.mark.parametrize(
    ("raw", "expected"), [("1.24.0", "1.24.0"), ("v1.24.1", "1.24.1"), ("knative-v1.25.0", "1.25.0")]
)
def test_version_argument_forms(raw: str, expected: str) -> None:
    assert bump.parse_version(raw) == expected


@pytest.mark.parametrize("raw", ["1.24", "latest", "1.24.0-rc1"])
def test_bad_version_argument(raw: str) -> None:
    with pytest.raises(bump.BumpError):
        bump.parse_version(raw)


# --- Renovate ---------------------------------------------------------------------------------------------------

RENOVATE = REPO_ROOT / "renovate.json"


def _python_regex(js: str) -> re.Pattern[str]:
    return re.compile(js.replace("(?<", "(?P<"))


def _manager() -> dict:
    (manager,) = json.loads(RENOVATE.read_text())["customManagers"]
    return manager


def test_renovate_manager_finds_every_pinned_url_at_the_current_version() -> None:
    manager = _manager()
    (pattern,) = manager["managerFilePatterns"]
    files = (PLATFORM_KUSTOMIZATION, POST_INSTALL_KUSTOMIZATION)
    assert all(_python_regex(pattern.strip("/")).search(str(path)) for path in files)
    text = "".join((REPO_ROOT / path).read_text() for path in files)
    (match_string,) = manager["matchStrings"]
    found = [m["currentValue"] for m in _python_regex(match_string).finditer(text)]
    current, assets = bump.pinned_assets(REPO_ROOT)
    assert found == [current.removeprefix("knative-v")] * len(assets)
    extracted = _python_regex(manager["extractVersionTemplate"]).match("knative-v1.24.0")
    assert extracted is not None and extracted["version"] == "1.24.0"
    assert manager["datasourceTemplate"] == "github-releases" and manager["depNameTemplate"] == "knative/serving"


def test_renovate_update_then_bump_gives_a_consistent_tree(
    tree_copy: Path, fake_mirror: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the Renovate PR does: its regex rewrites the URLs only; the post-upgrade `make bump` re-locks."""
    matcher = _python_regex(_manager()["matchStrings"][0])
    for path in (tree_copy / PLATFORM_KUSTOMIZATION, tree_copy / POST_INSTALL_KUSTOMIZATION):  # every file it matches
        path.write_text(matcher.sub(lambda m: m[0].replace(m["currentValue"], FAKE), path.read_text()))
    code, out = run(tree_copy, FAKE, fake_mirror, capsys)
    assert code == (bump.EXIT_UNAVAILABLE if null_entries(tree_copy) else 0), out
    assert set(releases.load_lock(tree_copy)) == set(releases.referenced_urls(tree_copy))
    assert render_env("dev", root=tree_copy, mirror=fake_mirror).objects


def _validator() -> str | None:
    local = REPO_ROOT / ".cache/renovate-npm/node_modules/.bin/renovate-config-validator"
    return str(local) if local.is_file() else shutil.which("renovate-config-validator")


def test_renovate_config_passes_the_official_validator(tmp_path: Path) -> None:
    validator = _validator()
    if validator is None:
        pytest.skip(
            "renovate-config-validator not installed (npm install --prefix .cache/renovate-npm renovate); "
            "renovate.json was only checked as JSON and by the regex tests above"
        )
    shutil.copy(RENOVATE, tmp_path / "renovate.json")
    proc = subprocess.run([validator, "--strict"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Config validated successfully" in proc.stdout + proc.stderr


def test_bump_refuses_when_the_go_modules_cannot_move(
    tree_copy: Path, fake_mirror: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """URLs, lock and the admission stage's go.mod/go.sum change together or not at all."""
    module = tree_copy / "hack" / "knative-admission"
    shutil.copytree(REPO_ROOT / "hack" / "knative-admission", module)
    before = {**snapshot(tree_copy), **{p: p.read_text() for p in module.iterdir()}}
    monkeypatch.setenv("GOPROXY", "off")
    code, out = run(tree_copy, FAKE, fake_mirror, capsys)
    assert code == 1
    assert {**snapshot(tree_copy), **{p: p.read_text() for p in module.iterdir()}} == before
    assert f"the admission stage's Go modules cannot move to Knative {FAKE}" in out
    assert "NOTHING was changed" in out and "where Go and the Go module proxy" in out
