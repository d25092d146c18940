"""The admission stage's Go module pins follow the Knative release: mapping, what moves, and refusing offline."""

import shutil
from pathlib import Path

import pytest

from gitops.core.paths import ADMISSION_MODULE_DIR, REPO_ROOT
from gitops.upstream import go_modules

PINNED_1_23 = {
    "knative.dev/serving": "v0.50.0",
    "knative.dev/eventing": "v0.50.0",
    "knative.dev/eventing-kafka-broker": "v0.50.1",
}


@pytest.mark.parametrize(("knative", "module"), [("1.23.0", "v0.50.0"), ("1.24.2", "v0.51.2"), ("1.3.0", "v0.30.0")])
def test_release_to_module_version(knative, module):
    assert go_modules.module_version(knative) == module


def test_no_mapping_beyond_1x():
    with pytest.raises(go_modules.ModuleUpdateError, match=r"only 1\.x maps to v0\.x"):
        go_modules.module_version("2.0.0")


def test_the_repository_pins_knative_1_23():
    assert go_modules.pinned(REPO_ROOT) == PINNED_1_23


def test_same_release_keeps_the_newer_kafka_patch_and_a_new_release_moves_all():
    assert go_modules.targets(PINNED_1_23, "1.23.0") == PINNED_1_23
    assert go_modules.targets(PINNED_1_23, "1.24.0") == dict.fromkeys(PINNED_1_23, "v0.51.0")
    assert go_modules.targets(PINNED_1_23, "1.23.2")["knative.dev/eventing-kafka-broker"] == "v0.50.2"


def test_same_release_changes_no_file(tmp_path: Path):
    shutil.copytree(REPO_ROOT / ADMISSION_MODULE_DIR, tmp_path / ADMISSION_MODULE_DIR)
    assert go_modules.update(tmp_path, "1.23.0").files == {}


def test_without_the_proxy_the_update_fails_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shutil.copytree(REPO_ROOT / ADMISSION_MODULE_DIR, tmp_path / ADMISSION_MODULE_DIR)
    before = {p.name: p.read_text() for p in (tmp_path / ADMISSION_MODULE_DIR).iterdir()}
    monkeypatch.setenv("GOPROXY", "off")
    with pytest.raises(go_modules.ModuleUpdateError) as error:
        go_modules.update(tmp_path, "1.99.0")
    assert "`go get knative.dev/serving@v0.126.0" in str(error.value) and "\n" not in str(error.value)
    assert "GOPROXY=off" in str(error.value)
    assert {p.name: p.read_text() for p in (tmp_path / ADMISSION_MODULE_DIR).iterdir()} == before


def test_bump_moves_the_e2e_control_plane_with_the_admission_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Both modules that pin Knative get the same versions (each only the Knative modules it requires), or, when
    one cannot move, nothing is written at all."""
    for module in go_modules.MODULE_DIRS:
        shutil.copytree(REPO_ROOT / module, tmp_path / module)
    assert go_modules.update(tmp_path, "1.23.0").files == {}  # the same release: no file for either
    asked: list[tuple[str, list[str]]] = []

    def fake_go(args: list[str], cwd: Path) -> str:
        module = "cluster" if (cwd / "tools.go").is_file() else "admission"
        asked.append((module, args))
        if args[0] == "get" and module == "cluster":
            raise go_modules.ModuleUpdateError("`go get` failed: offline")
        return "{}"

    monkeypatch.setattr(go_modules.shutil, "which", lambda name: "/usr/bin/go")
    monkeypatch.setattr(go_modules, "_go", fake_go)
    monkeypatch.setattr(go_modules, "_eventing_requirement", lambda work, version: None)
    with pytest.raises(go_modules.ModuleUpdateError, match="offline"):
        go_modules.update(tmp_path, "1.24.0")
    gets = {module: args for module, args in asked if args[0] == "get"}
    assert gets["admission"][1:] == [f"{m}@v0.51.0" for m in PINNED_1_23]
    # The control plane requires eventing and eventing-kafka-broker, not serving.
    assert gets["cluster"][1:] == ["knative.dev/eventing@v0.51.0", "knative.dev/eventing-kafka-broker@v0.51.0"]
    for module in go_modules.MODULE_DIRS:  # nothing written
        assert (tmp_path / module / "go.mod").read_text() == (REPO_ROOT / module / "go.mod").read_text()
