"""Argo CD custom health checks: run them in Lua 5.1 and render them into the argocd-cm we ship.

One source: `argocd/resource_customizations/<group>/<Kind>/health.lua` (upstream's layout, with `health_test.yaml`
and `testdata/`). `argocd/argocd-cm.yaml` is generated from those files (`python -m gitops.model.argocd_health --write`)
and `--check` (run by tests and `make validate`) fails when the two drift.

Argo CD runs these scripts with gopher-lua, a Lua 5.1 implementation, and for argocd-cm scripts (unless
`resource.customizations.useOpenLibs.<group>_<Kind>` is set) without the string/math/io/os libraries
(util/lua/lua.go). `run` mirrors that: lupa's bundled Lua 5.1 runtime with only the base and table libraries.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import yaml

from gitops.core.paths import REPO_ROOT

CUSTOMIZATIONS_DIR = Path("argocd/resource_customizations")
ARGOCD_CM = Path("argocd/argocd-cm.yaml")
KEY_PREFIX = "resource.customizations.health."
# Argo CD settings this repo relies on, with why (argocd-cm keys; each checked by `make validate`).
SETTINGS = {
    "application.sync.impersonation.enabled": (
        "true",
        [
            "Sync impersonation (beta since v3.5, docs/operator-manual/app-sync-using-impersonation.md): each sync",
            "runs as the ServiceAccount its AppProject names in destinationServiceAccounts (argocd/deployers/), not",
            "as the Argo CD controller. System-wide: every Application's project then needs such a mapping.",
        ],
    ),
}
# Libraries Argo CD does not load for argocd-cm scripts; a script that needs them would fail only in the cluster.
_UNSAFE_GLOBALS = ("string", "math", "io", "os", "debug", "coroutine", "package", "require", "dofile", "loadfile")


@dataclass(frozen=True)
class HealthCheck:
    group: str
    kind: str
    directory: Path

    @property
    def key(self) -> str:
        """The exact argocd-cm key (util/lua/lua.go: `<group>_<kind>`, core kinds without a group)."""
        return f"{KEY_PREFIX}{self.group}_{self.kind}" if self.group else f"{KEY_PREFIX}{self.kind}"

    @property
    def script(self) -> str:
        return (self.directory / "health.lua").read_text()


@dataclass(frozen=True)
class HealthCase:
    check: HealthCheck
    input_path: str
    status: str
    message: str

    @property
    def fixture(self) -> dict[str, Any]:
        return yaml.safe_load((self.check.directory / self.input_path).read_text())

    def __str__(self) -> str:
        return f"{self.check.group}/{self.check.kind}:{self.input_path}"


@dataclass(frozen=True)
class HealthStatus:
    status: str
    message: str


def discover(root: Path = REPO_ROOT) -> list[HealthCheck]:
    base = root / CUSTOMIZATIONS_DIR
    return [
        HealthCheck(group=script.parent.parent.name, kind=script.parent.name, directory=script.parent)
        for script in sorted(base.glob("*/*/health.lua"))
    ]


def cases(check: HealthCheck) -> list[HealthCase]:
    spec = yaml.safe_load((check.directory / "health_test.yaml").read_text())
    return [
        HealthCase(check, t["inputPath"], t["healthStatus"]["status"], t["healthStatus"].get("message", ""))
        for t in spec["tests"]
    ]


def lua_version() -> str:
    return str(lua51.LuaRuntime().eval("_VERSION"))


def run(script: str, obj: dict[str, Any]) -> HealthStatus:
    """Evaluate a health script against one object, in a Lua 5.1 sandbox shaped like Argo CD's."""
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    lua_globals = runtime.globals()
    for name in _UNSAFE_GLOBALS:
        lua_globals[name] = None
    lua_globals["obj"] = runtime.table_from(obj, recursive=True)
    result = runtime.execute(script)
    if result is None:
        raise ValueError("health script returned nothing (it must return {status=..., message=...})")
    return HealthStatus(status=str(result["status"]), message=str(result["message"] or ""))


def render_argocd_cm(checks: list[HealthCheck]) -> str:
    """The argocd-cm fragment carrying every health check under its exact key (keys sorted, scripts verbatim)."""
    lines = [
        "# GENERATED from argocd/resource_customizations/<group>/<Kind>/health.lua by",
        "# `.venv/bin/python -m gitops.model.argocd_health --write`. Do not edit: tests fail when this drifts from the .lua files.",
        "# Only the keys below: Argo CD's other settings stay with whoever installed Argo CD. Applied by an Argo CD",
        "# admin, never synced by Argo CD (a commit must not be able to change Argo CD's settings):",
        "#   kubectl apply --server-side --field-manager=knative-kafka-gitops -f argocd/argocd-cm.yaml",
        "# Server-side, so this field manager owns exactly these keys and never removes anyone else's.",
        "# Managing argocd-cm elsewhere (Helm values, another repo)? Copy these keys there (docs/argocd.md).",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: argocd-cm",
        "  namespace: argocd",
        "  labels:",
        "    app.kubernetes.io/name: argocd-cm",
        "    app.kubernetes.io/part-of: argocd",
        "data:",
    ]
    for key, (value, why) in SETTINGS.items():
        lines += [f"  # {line}" for line in why] + [f'  {key}: "{value}"']
    for check in sorted(checks, key=lambda c: c.key):
        lines.append(f"  {check.key}: |")
        lines += [f"    {line}" if line else "" for line in check.script.rstrip("\n").split("\n")]
    return "\n".join(lines) + "\n"


def drift(root: Path = REPO_ROOT) -> list[str]:
    """Differences between the shipped argocd-cm and the health.lua files (empty when they agree)."""
    path = root / ARGOCD_CM
    if not path.is_file():
        return [f"{ARGOCD_CM} is missing (generate it with `python -m gitops.model.argocd_health --write`)"]
    shipped = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
    wanted = {c.key: c.script for c in discover(root)}
    problems = [
        f"{ARGOCD_CM}: key {key} has no health.lua under {CUSTOMIZATIONS_DIR}"
        for key in sorted(set(shipped) - set(wanted) - set(SETTINGS))
    ]
    for key, script in sorted(wanted.items()):
        if key not in shipped:
            problems.append(f"{ARGOCD_CM}: key {key} is missing")
        elif shipped[key] != script:
            problems.append(f"{ARGOCD_CM}: key {key} differs from its health.lua")
    if not problems and path.read_text() != render_argocd_cm(discover(root)):
        problems.append(f"{ARGOCD_CM} is not the generator's output (header or metadata edited by hand)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help=f"regenerate {ARGOCD_CM}")
    mode.add_argument("--check", action="store_true", help=f"fail if {ARGOCD_CM} drifted from the .lua files")
    mode.add_argument("--test", action="store_true", help="run every health_test.yaml case")
    args = parser.parse_args(argv)
    if args.write:
        (REPO_ROOT / ARGOCD_CM).write_text(render_argocd_cm(discover()))
        return 0
    if args.check:
        problems = drift()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    failed = 0
    for check in discover():
        for case in cases(check):
            got = run(check.script, case.fixture)
            ok = (got.status, got.message) == (case.status, case.message)
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {case}: {got.status} {got.message!r}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
