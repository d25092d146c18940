"""The Knative Go modules behind the admission stage and the e2e's control plane, moved by `make bump` together
with the release URLs.

Knative tags each release twice; the Go module proxy serves the v0 form: knative-v1.N.P is v0.(N+27).P
(1.23.0 = v0.50.0). Changing the pins needs the proxy (go.sum records every module's hash), so the update runs
`go get` and `go mod tidy` in a scratch copy of hack/knative-admission and hands back the new go.mod and go.sum;
the caller writes them with the URLs and the lock, or nothing at all.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gitops.core.paths import ADMISSION_MODULE_DIR

# Every module of ours that pins Knative: the admission stage (`make validate`) and the e2e's control plane (kube-
# apiserver, etcd, kafka-controller, the EventPolicy reconciler). `make bump` moves them together.
CLUSTER_MODULE_DIR = Path("hack/knative-cluster")
MODULE_DIRS = (ADMISSION_MODULE_DIR, CLUSTER_MODULE_DIR)

# The modules whose version follows the Knative release (the webhook mains the stage mirrors).
KNATIVE_MODULES = ("knative.dev/serving", "knative.dev/eventing", "knative.dev/eventing-kafka-broker")
# eventing builds its webhook with this module at the version its own go.mod requires; ours replaces it to match.
EVENTING_PINNED = "github.com/cloudevents/sdk-go/sql/v2"
MINOR_OFFSET = 27
REQUIRE = re.compile(r"^\s*(?:require\s+)?(?P<module>knative\.dev/[\w.-]+)\s+(?P<version>v\S+)", re.MULTILINE)


class ModuleUpdateError(RuntimeError):
    pass


def module_version(knative_version: str) -> str:
    """'1.23.0' -> 'v0.50.0'."""
    major, minor, patch = (int(p) for p in knative_version.split("."))
    if major != 1:
        raise ModuleUpdateError(f"no known Go module version for Knative {knative_version} (only 1.x maps to v0.x)")
    return f"v0.{minor + MINOR_OFFSET}.{patch}"


def pinned(root: Path) -> dict[str, str]:
    text = (root / ADMISSION_MODULE_DIR / "go.mod").read_text()
    return {m["module"]: m["version"] for m in REQUIRE.finditer(text) if m["module"] in KNATIVE_MODULES}


def _semver(version: str) -> tuple[int, int, int]:
    match = re.match(r"^v(\d+)\.(\d+)\.(\d+)$", version)
    if match is None:
        raise ModuleUpdateError(f"unexpected module version {version!r} in {ADMISSION_MODULE_DIR}/go.mod")
    return int(match[1]), int(match[2]), int(match[3])


def targets(current: dict[str, str], knative_version: str) -> dict[str, str]:
    """The version each module should have; a newer patch of the same minor already pinned is kept (1.23.0 pins
    eventing-kafka-broker v0.50.1 because the proxy refuses v0.50.0)."""
    wanted = module_version(knative_version)
    out = {}
    for module in KNATIVE_MODULES:
        have = current.get(module)
        keep = have is not None and _semver(have)[:2] == _semver(wanted)[:2] and _semver(have) > _semver(wanted)
        out[module] = have if keep else wanted
    return out


@dataclass
class ModuleUpdate:
    versions: dict[str, str]
    files: dict[Path, str]  # path -> new text (empty when nothing changes)


def _go(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off"}
    try:
        proc = subprocess.run(["go", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ModuleUpdateError(f"`go {' '.join(args)}` did not run: {error}") from error
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln and not ln.startswith("go: downloading")]
        raise ModuleUpdateError(f"`go {' '.join(args)}` failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


def _eventing_requirement(module_dir: Path, eventing_version: str) -> str | None:
    info = json.loads(_go(["mod", "download", "-json", f"knative.dev/eventing@{eventing_version}"], module_dir))
    text = Path(info["GoMod"]).read_text()
    match = re.search(rf"^\s*{re.escape(EVENTING_PINNED)}\s+(v\S+)", text, re.MULTILINE)
    return match[1] if match else None


def _module_pins(module_dir: Path) -> dict[str, str]:
    text = (module_dir / "go.mod").read_text()
    return {m["module"]: m["version"] for m in REQUIRE.finditer(text) if m["module"] in KNATIVE_MODULES}


def update(root: Path, knative_version: str) -> ModuleUpdate:
    """New go.mod/go.sum for knative_version, computed in a scratch copy of each module (the admission stage's and
    the e2e control plane's, which must run the same Knative: tests/e2e/test_control_plane.py); the tree is never
    touched here, and one module that cannot move fails the whole update."""
    if not (root / ADMISSION_MODULE_DIR / "go.mod").is_file():
        return ModuleUpdate({}, {})
    current = pinned(root)
    versions = targets(current, knative_version)
    if versions == current:
        return ModuleUpdate(versions, {})
    if shutil.which("go") is None:
        raise ModuleUpdateError("Go is not installed, and moving the module pins needs `go get`")
    files: dict[Path, str] = {}
    for module in MODULE_DIRS:
        module_dir = root / module
        if (module_dir / "go.mod").is_file():
            files |= _moved(module_dir, versions)
    return ModuleUpdate(versions, files)


def _moved(module_dir: Path, versions: dict[str, str]) -> dict[Path, str]:
    """go.mod/go.sum of one module with the Knative modules it requires at `versions` (only the changed files)."""
    have = _module_pins(module_dir)
    wanted = {m: v for m, v in versions.items() if m in have}
    if wanted == {m: have[m] for m in wanted}:
        return {}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / "module"
        shutil.copytree(module_dir, work)
        _go(["get", *(f"{m}@{v}" for m, v in wanted.items())], work)
        replaced = f"{EVENTING_PINNED} =>" in (work / "go.mod").read_text()
        required = _eventing_requirement(work, versions["knative.dev/eventing"]) if replaced else None
        if required:
            _go(["mod", "edit", f"-replace={EVENTING_PINNED}={EVENTING_PINNED}@{required}"], work)
        _go(["mod", "tidy"], work)
        # The admission stage is one main; the control plane's module holds mains of its own (./...) besides the
        # upstream ones it pins through tools.go, which `make setup` builds.
        _go(["build", "-o", os.devnull, "."] if (work / "main.go").is_file() else ["build", "./..."], work)
        files = {}
        for name in ("go.mod", "go.sum"):
            new = (work / name).read_text()
            if new != (module_dir / name).read_text():
                files[module_dir / name] = new
    return files
