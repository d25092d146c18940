"""SIGTERM unwinds like Ctrl-C, so scratch directories are removed rather than left in $TMPDIR.

Python's default SIGTERM ends the process at once: no `finally`, no `with` exit, so a render or diff killed by a
cancelled CI job (or `make test` stopped) would leave its `render-*`/`diff-base-*` copy of the tree behind.
"""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def _terminate(_signum: int, _frame: object) -> None:
    # Once: make forwards its own SIGTERM to the child the process-group kill already reached, and a second
    # KeyboardInterrupt inside the unwinding (a scratch directory's rmtree) would leave half of it behind.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """For the whole process (the CLI, the test session). A server that handles SIGTERM itself (uvicorn's
    draining) installs its own handler over this one."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While the block runs, SIGTERM raises KeyboardInterrupt, unless the process already handles SIGTERM its own
    way (then that handler stays). For scratch directories made by code run as `python -m <module>` too."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not (
        signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
