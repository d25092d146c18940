"""Process cleanup: whatever ends the run (return, exception, SIGTERM, Ctrl-C), no process group is left."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitops.e2e.processes import group_alive, supervised

# A leader with a child of its own: the child must die with the group, not be re-parented and left running.
FAMILY = [
    sys.executable,
    "-c",
    "import subprocess,sys,time; subprocess.Popen([sys.executable,'-c','import time; time.sleep(300)']); time.sleep(300)",
]


def wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if group_alive(pid)]
        if not left:
            return []
        time.sleep(0.1)
    return left


def test_every_group_is_stopped_when_the_block_raises(tmp_path: Path):
    with pytest.raises(RuntimeError), supervised(tmp_path) as supervisor:
        supervisor.grace_s = 1.0
        supervisor.start("a", FAMILY)
        supervisor.start(
            "b",
            [
                sys.executable,
                "-c",
                "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)",
            ],
        )
        time.sleep(0.5)
        pids = list(supervisor.started)
        raise RuntimeError("a scenario failed")
    assert wait_gone(pids) == []


def test_sigkill_then_restart_keeps_one_live_process(tmp_path: Path):
    with supervised(tmp_path) as supervisor:
        first = supervisor.start("d", FAMILY).pid
        supervisor.kill("d")
        assert wait_gone([first]) == []
        second = supervisor.restart("d").pid
        assert supervisor.procs["d"].alive() and second != first
    assert wait_gone([second]) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_runner_leaves_no_process(tmp_path: Path, sig: int):
    runner = tmp_path / "runner.py"
    runner.write_text(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from gitops.e2e.processes import supervised\n"
        f"FAMILY = {FAMILY!r}\n"
        "with supervised(Path(sys.argv[1])) as s:\n"
        "    s.start('x', FAMILY); s.start('y', FAMILY)\n"
        "    print(' '.join(str(p) for p in s.started), flush=True)\n"
        "    time.sleep(300)\n"
    )
    proc = subprocess.Popen([sys.executable, str(runner), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2 and all(group_alive(p) for p in pids)
    time.sleep(0.5)
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    assert wait_gone(pids) == []
