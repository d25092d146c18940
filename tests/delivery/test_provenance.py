"""Hydration provenance is verified (issue 22 item 4): validate recomputes provenance.txt's digest over the files
and checks the environment, the source commit and the releases lock it names against the tree being validated.

The tree here is a copy whose mirror holds the Kafka Broker data plane rebuilt from its 1.23 sources (the release
asset has no offline copy; the lock gets that file's sha256), with its deployer RBAC regenerated, so that
`make validate ENV=<env> HYDRATED=<dir>` passes on an untampered directory of either environment. Then every kind
of change (a file changed, added, removed, renamed; provenance.txt edited or removed; the tree's lock or commit
moved on) fails with the environment, the file and the directory named.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gitops.core.paths import RELEASES_LOCK, REPO_ROOT, UPSTREAM_SOURCE_ENV, environments, upstream_source_dir
from gitops.core.render import render_env
from gitops.delivery import deployer_rbac, hydrate
from tests.support import TREE, UNLOCKED_ASSETS, data_plane_asset, lock_unlocked_assets, mirror_with_unlocked_assets

ENVS = tuple(environments())
KSVC_FILE = "notifications--service.serving.knative.dev--notifications.yaml"


@pytest.fixture(scope="module")
def hydrated(tmp_path_factory) -> tuple[Path, Path, dict[str, Path]]:
    """(tree, mirror, env -> an untampered hydrated directory). Tests copy a directory before tampering."""
    base = tmp_path_factory.mktemp("provenance")
    root = base / "tree"
    root.mkdir()
    for name in TREE:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, root / name)
    mirror = mirror_with_unlocked_assets(base, {url: data_plane_asset(url) for url in UNLOCKED_ASSETS})
    lock_unlocked_assets(root, mirror)
    out: dict[str, Path] = {}
    for env in ENVS:
        render = render_env(env, root, mirror=mirror)
        assert render.omitted == []
        (root / deployer_rbac.deployer_file(env)).write_text(deployer_rbac.render_file(render))
        out[env] = base / "hydrated" / env
        hydrate.hydrate(env, out[env], root, mirror=mirror)
    return root, mirror, out


def tampered_copy(source: Path, tmp_path: Path) -> Path:
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    return copy


def problems(directory: Path, env: str, root: Path) -> list[str]:
    return [f"{name}: {message}" for name, message in hydrate.provenance_problems(directory, env, root)]


def has(found: list[str], *parts: str) -> bool:
    return any(all(p in f for p in parts) for f in found)


# --- provenance_problems: each kind of change ------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_untampered_directory_has_no_problems(hydrated, env) -> None:
    root, _, out = hydrated
    assert problems(out[env], env, root) == []


def _change(d: Path) -> None:
    (d / KSVC_FILE).write_text((d / KSVC_FILE).read_text() + "# reviewed\n")


def _change_value(d: Path) -> None:
    (d / KSVC_FILE).write_text((d / KSVC_FILE).read_text().replace("notifications", "notification", 1))


def _add(d: Path) -> None:
    (d / "_cluster--namespace--extra.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: extra\n")


def _remove(d: Path) -> None:
    (d / KSVC_FILE).unlink()


def _rename(d: Path) -> None:
    (d / KSVC_FILE).rename(d / ("z-" + KSVC_FILE))


def _add_foreign(d: Path) -> None:
    (d / "extra.json").write_text('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra"}}\n')


def _add_directory(d: Path) -> None:
    (d / "nested").mkdir()
    (d / "nested" / "x.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: nested\n")


def _edit_provenance(old: str, new: str):
    def edit(d: Path) -> None:
        text = (d / hydrate.PROVENANCE).read_text()
        assert old in text
        (d / hydrate.PROVENANCE).write_text(text.replace(old, new, 1))

    return edit


def _drop_provenance(d: Path) -> None:
    (d / hydrate.PROVENANCE).unlink()


def _append_provenance(d: Path) -> None:
    (d / hydrate.PROVENANCE).write_text((d / hydrate.PROVENANCE).read_text() + "reviewed-by: nobody\n")


def _forge_digest(d: Path) -> None:
    """Recompute the digest line over the files as they are now (what a careful forger would do)."""
    files = {p.name: p.read_text() for p in sorted(d.glob("*.yaml"))}
    text = (d / hydrate.PROVENANCE).read_text()
    lines = [
        f"manifests-sha256: {hydrate.manifests_sha256(files)}" if line.startswith("manifests-sha256: ") else line
        for line in text.splitlines()
    ]
    (d / hydrate.PROVENANCE).write_text("\n".join(lines) + "\n")


TAMPERINGS = {
    "file changed (a comment)": (_change, "provenance.txt: manifests-sha256"),
    "file changed (a value)": (_change_value, "provenance.txt: manifests-sha256"),
    "file added": (_add, "provenance.txt: objects"),
    "file removed": (_remove, "provenance.txt: manifests-sha256"),
    "file renamed": (_rename, "provenance.txt: manifests-sha256"),
    "non-yaml file added": (_add_foreign, "extra.json: is not a file `make hydrate` writes"),
    "directory added": (_add_directory, "nested: is not a file `make hydrate` writes"),
    "provenance removed": (_drop_provenance, "provenance.txt: is missing"),
    "provenance digest edited": (
        lambda d: _edit_provenance("manifests-sha256: ", "manifests-sha256: 0")(d),
        "provenance.txt: manifests-sha256",
    ),
    "provenance environment edited": (
        lambda d: _edit_provenance("environment: ", "environment: x")(d),
        "hydrated for another environment",
    ),
    "provenance commit edited": (
        _edit_provenance("source-commit: unknown (not a git checkout)", "source-commit: 0123abc"),
        "not hydrated from the commit being validated",
    ),
    "provenance lock hash edited": (
        _edit_provenance("releases-lock-sha256: ", "releases-lock-sha256: 00"),
        "not the sha256 of this tree's base/platform/releases.lock.yaml",
    ),
    "provenance comment edited": (
        _edit_provenance("# Written by", "# Hand-written by"),
        "differs from the text `make hydrate` writes",
    ),
    "provenance line added": (_append_provenance, "differs from the text `make hydrate` writes"),
}


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("case", sorted(TAMPERINGS))
def test_any_change_is_a_problem(hydrated, tmp_path, env, case) -> None:
    root, _, out = hydrated
    tamper, needle = TAMPERINGS[case]
    directory = tampered_copy(out[env], tmp_path)
    tamper(directory)
    found = problems(directory, env, root)
    assert has(found, needle), found


def test_a_forged_digest_is_caught_by_the_object_comparison(hydrated, tmp_path, monkeypatch) -> None:
    """Whoever edits a file and recomputes the digest gets consistent provenance, but not the fresh render: a
    changed value is still a `hydrated` finding."""
    from gitops.validate.run import _hydrated_render

    root, mirror, out = hydrated
    monkeypatch.setenv("KNATIVE_RELEASE_MIRROR", str(mirror))
    directory = tampered_copy(out["dev"], tmp_path)
    _change_value(directory)
    _forge_digest(directory)
    assert problems(directory, "dev", root) == []
    found = _hydrated_render(render_env("dev", root, mirror=mirror), directory, root)
    assert isinstance(found, list) and found, found
    assert all(f.check == "hydrated" for f in found), found


def test_the_tree_moving_on_is_a_problem(hydrated, tmp_path) -> None:
    """The lock of the tree being validated, not the one at hydrate time, is what provenance must name."""
    root, _, out = hydrated
    tree = tmp_path / "tree"
    shutil.copytree(root, tree)
    (tree / RELEASES_LOCK).write_text((tree / RELEASES_LOCK).read_text() + "\n# bumped\n")
    assert has(problems(out["dev"], "dev", tree), "releases-lock-sha256", "not the sha256 of this tree's")


def test_a_different_source_commit_is_a_problem(hydrated, tmp_path) -> None:
    root, mirror, _ = hydrated
    tree = tmp_path / "tree"
    shutil.copytree(root, tree)
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "hydrated from here"], check=True)
    out = tmp_path / "dev"
    hydrate.hydrate("dev", out, tree, mirror=mirror)
    assert problems(out, "dev", tree) == []
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "a later commit"], check=True)
    assert has(problems(out, "dev", tree), "source-commit", "not hydrated from the commit being validated")


# --- `make validate ENV=<env> HYDRATED=<dir>` end to end ----------------------------------------------------------


def make_validate(root: Path, mirror: Path, env: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """`make validate` in a runnable copy of the tree: its Makefile and gitops package beside the copied manifests,
    this checkout's venv and tools (bin/, hack/ for the admission binary's stamp)."""
    runnable = root.parent / "runnable"
    if not runnable.exists():
        shutil.copytree(root, runnable, symlinks=True)
        for name in ("Makefile", "pyproject.toml"):
            shutil.copy(REPO_ROOT / name, runnable / name)
        for name in ("gitops", "hack"):
            shutil.copytree(REPO_ROOT / name, runnable / name, ignore=shutil.ignore_patterns("__pycache__"))
        (runnable / "bin").symlink_to(REPO_ROOT / "bin")
        (runnable / ".venv").symlink_to(REPO_ROOT / ".venv")
    environ = {
        **os.environ,
        "KNATIVE_RELEASE_MIRROR": str(mirror),
        UPSTREAM_SOURCE_ENV: str(upstream_source_dir()),
    }
    return subprocess.run(
        ["make", "--no-print-directory", "validate", f"ENV={env}", f"HYDRATED={directory}"],
        cwd=runnable,
        env=environ,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.parametrize("env", ENVS)
def test_make_validate_passes_on_an_untampered_hydrated_dir(hydrated, env) -> None:
    root, mirror, out = hydrated
    proc = make_validate(root, mirror, env, out[env])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "validate: OK" in proc.stdout
    assert f"{env}: " in proc.stdout and f"hydrated ({out[env]})" in proc.stdout


def test_make_validate_fails_on_a_tampered_hydrated_dir(hydrated, tmp_path) -> None:
    root, mirror, out = hydrated
    directory = tampered_copy(out["prod"], tmp_path)
    _edit_provenance("releases-lock-sha256: ", "releases-lock-sha256: 1")(directory)
    proc = make_validate(root, mirror, "prod", directory)
    assert proc.returncode != 0
    assert f"FAIL [prod] provenance.txt ({directory}): releases-lock-sha256: 1" in proc.stdout, proc.stdout[-3000:]
    assert "<provenance>" in proc.stdout
