"""Every process the e2e starts, each in its own process group, and all of them stopped however the run ends.

A normal exit, an exception, Ctrl-C (SIGINT) and SIGTERM all end in `Supervisor.stop_all()`: SIGTERM to each
process group, then SIGKILL to what is left after a grace period. Each child also gets PR_SET_PDEATHSIG, so a
SIGKILLed runner (which can run no cleanup) still takes its children's leaders with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

STOP_GRACE_S = 10.0


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Managed:
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@dataclass
class Supervisor:
    """Starts named processes in new sessions and stops them all; `started` keeps every pid ever started."""

    workdir: Path
    procs: dict[str, Managed] = field(default_factory=dict)
    started: list[int] = field(default_factory=list)
    grace_s: float = STOP_GRACE_S

    def start(
        self, name: str, command: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Managed:
        if name in self.procs and self.procs[name].alive():
            raise RuntimeError(f"{name} is already running")
        log = self.workdir / f"{name}.log"
        managed = Managed(name, list(command), dict(env or os.environ), log, cwd)
        with log.open("ab") as out:
            managed.process = subprocess.Popen(
                managed.command,
                env=managed.env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.procs[name] = managed
        self.adopt(managed.pid)
        return managed

    def adopt(self, pid: int) -> None:
        """Record a process group leader (also one started elsewhere, the test Kafka) in `started` and in
        <workdir>/pids, so a test can prove that none is left."""
        self.started.append(pid)
        with (self.workdir / "pids").open("a") as out:
            out.write(f"{pid}\n")

    def restart(self, name: str) -> Managed:
        old = self.procs[name]
        return self.start(name, old.command, old.env, old.cwd)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a whole process group (SIGKILL = the crash the scenarios inject) and reap it."""
        managed = self.procs[name]
        if managed.process is None:
            return
        _signal_group(managed.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            managed.process.wait(timeout=self.grace_s)
        if managed.process.poll() is None:
            _signal_group(managed.pid, signal.SIGKILL)
            managed.process.wait()

    def stop(self, name: str) -> None:
        self.kill(name, signal.SIGTERM)

    def stop_all(self) -> None:
        running = [m for m in self.procs.values() if m.process is not None and m.process.poll() is None]
        for managed in running:
            _signal_group(managed.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for managed in running:
            assert managed.process is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                managed.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for managed in self.procs.values():
            if managed.process is not None:
                # Group members outlive a leader that exited on SIGTERM: SIGKILL the group in every case.
                _signal_group(managed.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    managed.process.wait(timeout=STOP_GRACE_S)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def supervised(workdir: Path) -> Iterator[Supervisor]:
    """A Supervisor whose processes are stopped when the block ends, SIGTERM and SIGINT included."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, _interrupt)
    supervisor = Supervisor(workdir)
    try:
        yield supervisor
    finally:
        # A second signal during cleanup must not leave children behind.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            supervisor.stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def group_alive(pid: int) -> bool:
    """Whether any process of the group `pid` still exists (signal 0 to the group)."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
