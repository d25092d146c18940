"""The Python is ruff-clean (lint and format), so `make test` holds every change to the style the repo states."""

import subprocess
import sys

import pytest

from gitops.core.paths import REPO_ROOT


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff(args):
    proc = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
