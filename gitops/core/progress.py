"""Progress of a long verb: what it is doing, and each stage's time as it ends."""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


def progress(message: str, stream: TextIO | None = None, verb: str = "validate") -> None:
    """One line per stage, only when stderr is a terminal: a person sees it is working; logs and CI stay clean."""
    stream = stream or sys.stderr
    if stream.isatty():
        print(f"{verb}: {message}", file=stream, flush=True)


@contextmanager
def timed(verb: str, what: str, stream: TextIO | None = None) -> Iterator[None]:
    """`<verb>: <what> 12.3s` on stderr when the stage ends (a person and a CI log both see where the time goes, and
    that the verb is moving); on a terminal, `<verb>: <what> ...` when it starts too."""
    stream = stream or sys.stderr
    progress(f"{what} ...", stream, verb)
    started = time.monotonic()
    yield
    print(f"{verb}: {what} {time.monotonic() - started:.1f}s", file=stream, flush=True)
