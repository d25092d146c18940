"""`gitops e2e` for real: Knative's data plane, the test Kafka and the subscriber on loopback (marked `e2e`).

Deselected by default (pyproject addopts `-m "not e2e"`): `make e2e` is the run CI makes (.ci/run), and these
tests are for working on the e2e itself: `.venv/bin/python -m pytest tests/e2e -m e2e`.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitops.core.paths import REPO_ROOT
from gitops.e2e.processes import group_alive

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


def gitops_e2e(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gitops.cli", "e2e", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def leftovers(output: str) -> list[int]:
    workdir = Path(output.rsplit("logs in ", 1)[-1].split()[0]) if "logs in " in output else None
    assert workdir is not None and (workdir / "pids").exists(), output
    pids = [int(p) for p in (workdir / "pids").read_text().split()]
    assert pids
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(group_alive(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if group_alive(p)]


def test_routing_and_a_dead_letter_are_accounted_for_and_nothing_is_left_running():
    proc = gitops_e2e("--scenario", "routing", "--scenario", "invalid-payload", "--keep")
    output, _ = proc.communicate(timeout=1500)
    assert proc.returncode == 0, output
    assert "e2e: 2 scenarios, lost 0" in output
    assert "invalid-payload: produced 3, processed 0, dead-lettered 3, lost 0" in output
    assert leftovers(output) == []


def test_sigterm_mid_run_stops_every_process():
    proc = gitops_e2e("--scenario", "dispatcher-sigkill", "--keep")
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "dispatchers up in" in line or "control plane and data plane up in" in line:
            break
    time.sleep(3)
    os.kill(proc.pid, signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    assert proc.returncode == 130, output
    # --keep is honoured on interruption too; the pids file names every group the run started.
    workdirs = sorted((REPO_ROOT / ".cache" / "e2e" / "runs").glob("dev-*"), key=lambda p: p.stat().st_mtime)
    pids = [int(p) for p in (workdirs[-1] / "pids").read_text().split()]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(group_alive(p) for p in pids):
        time.sleep(0.2)
    assert [p for p in pids if group_alive(p)] == []
