"""PrometheusRules judged by Prometheus' own promtool (`check rules`, `test rules`), never by a re-implementation.

prometheus-operator hands a PrometheusRule's `spec` to Prometheus as a rule file (`groups:`), so that is what
promtool reads here: the rendered object of an environment (its severity included), written out as the file the
operator would generate. `make test` runs the unit tests in tests/monitoring/ through `test_rules`; `make e2e`
(gitops/e2e/alerts.py) asks which alerts fire over the series the real components exported.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from gitops.core import manifests
from gitops.core.errors import UserError
from gitops.core.manifests import Obj
from gitops.core.tools import tool

PROMTOOL = "promtool"


class PromtoolFailed(UserError):
    """promtool refused the rules or a unit test failed."""


def rule_objects(objects: list[Obj]) -> list[Obj]:
    return list(manifests.of_kind(objects, "monitoring.coreos.com", "PrometheusRule"))


def rule_file_text(rules: list[Obj]) -> str:
    """The Prometheus rule file the operator generates from these PrometheusRules: their groups, in order."""
    groups = [g for rule in rules for g in (rule.get("spec") or {}).get("groups") or []]
    return yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000)


def write_rule_file(objects: list[Obj], path: Path) -> Path:
    path.write_text(rule_file_text(rule_objects(objects)))
    return path


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool(PROMTOOL), *args], cwd=cwd, capture_output=True, text=True)


def check_rules(path: Path) -> str:
    """`promtool check rules`: its output; PromtoolFailed with promtool's own words when it refuses."""
    proc = run("check", "rules", str(path))
    if proc.returncode != 0:
        # One line: promtool's own reason, without its "Checking"/"FAILED:" framing.
        lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines()]
        reason = "; ".join(line for line in lines if line and not line.startswith(("Checking", "FAILED")))
        raise PromtoolFailed(f"promtool check rules {path.name}: {reason}", fix="fix the rule promtool names")
    return proc.stdout


def test_rules(test_file: Path) -> subprocess.CompletedProcess[str]:
    """`promtool test rules <file>` in the file's directory (its rule_files are relative to it)."""
    return run("test", "rules", test_file.name, cwd=test_file.parent)


_FAILED_GROUP = re.compile(r"^\s*name:\s*(.+?),\s*$", re.MULTILINE)


def failed_groups(output: str) -> set[str]:
    """The test group names promtool reports as FAILED (each failure prints `name: <group>,`)."""
    return {m.group(1) for m in _FAILED_GROUP.finditer(output)}
