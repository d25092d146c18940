"""The Makefile as people type it: a mistyped variable is refused, arguments stay one word, the subscriber stays on
loopback unless HOST says otherwise, and a missing VERSION names the make variable."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from gitops.core.paths import REPO_ROOT


def make(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def first_line(proc: subprocess.CompletedProcess[str]) -> str:
    """Our line; make adds its own "make: *** [Makefile:NN: <verb>] Error 2" after it."""
    lines = proc.stderr.strip().splitlines()
    assert lines and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_lower_case_variable_is_refused_with_the_upper_case_hint() -> None:
    proc = make("render", "env=prod")
    assert proc.returncode == 2
    assert proc.stdout == ""  # nothing rendered (today: dev, silently)
    assert first_line(proc).startswith("make render: unknown variable env= (did you mean ENV=?)")
    assert "nothing was run" in first_line(proc)


def test_unknown_variable_is_refused() -> None:
    proc = make("validate", "ENVV=prod")
    assert proc.returncode == 2 and proc.stdout == ""
    assert first_line(proc).startswith("make validate: unknown variable ENVV=: this Makefile does not read it")


def test_known_and_passed_through_variables_are_accepted() -> None:
    # GITOPS_CACHE_DIR is read by the CLI, not the Makefile: passing it on make's command line is legitimate.
    proc = make("-n", "render", "ENV=prod", f"GITOPS_CACHE_DIR={REPO_ROOT / '.cache'}")
    assert proc.returncode == 0, proc.stderr


def test_validate_honours_env_or_refuses_it() -> None:
    """`make validate ENV=prd` validated every environment and said OK: ENV was ignored."""
    proc = make("validate", "ENV=prd")
    assert proc.returncode == 2 and "validate: OK" not in proc.stdout
    assert first_line(proc).startswith("gitops validate: environments.yaml: unknown environment 'prd'"), proc.stderr
    assert make("-n", "validate", "ENV=prod").stdout.rstrip().endswith("validate 'prod'")
    # Without ENV, every environment (ENV's default, dev, is not a choice the person made).
    assert make("-n", "validate").stdout.rstrip().endswith("gitops.cli validate")
    assert make("-n", "validate", env={"ENV": "prod"}).stdout.rstrip().endswith("validate 'prod'")


def test_hydrate_out_with_a_space_stays_one_path(tmp_path: Path) -> None:
    out = tmp_path / "dir with space"
    proc = make("hydrate", "ENV=dev", f"OUT={out}")
    # The real tree cannot hydrate offline (no data-plane digest): what matters is that hydrate itself says so,
    # about this one path, rather than argparse refusing "with space" as two extra arguments.
    assert "unrecognized arguments" not in proc.stderr, proc.stderr
    assert first_line(proc).startswith("hydrate dev: FAILED, nothing written: "), proc.stderr
    assert not out.exists()


def test_bump_without_version_names_the_make_variable() -> None:
    proc = make("bump")
    assert proc.returncode == 2
    assert first_line(proc).startswith("make bump: set VERSION=<x.y.z>")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_banner(env: dict[str, str]) -> str:
    """Start `make serve`, return uvicorn's "running on" line, stop it (the whole process group it started)."""
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT), "serve"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "running on" in line.lower() or not line:
                return line
        raise AssertionError("make serve printed no banner within 60 s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_serve_binds_loopback_by_default() -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "HOST"}
    banner = _serve_banner({**env, "PORT": str(port)})
    assert f"http://127.0.0.1:{port}" in banner, banner


def _scratch_dirs(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(("render-", "diff-base-")))


def test_sigterm_during_make_test_leaves_no_render_directories(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT), "test", "PYTEST_ARGS=tests/core/test_render.py -x -q"],
        env={**os.environ, "TMPDIR": str(tmp)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not _scratch_dirs(tmp) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert _scratch_dirs(tmp), "no render started within 240 s"
        os.killpg(proc.pid, signal.SIGTERM)  # what a cancelled CI job sends the job's process group
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert _scratch_dirs(tmp) == []
