"""One progress line per stage of a long verb, for a person at a terminal; logs and CI stay clean."""

import sys
from typing import TextIO


def progress(message: str, stream: TextIO | None = None, verb: str = "validate") -> None:
    """One line per stage, only when stderr is a terminal: a person sees it is working; logs and CI stay clean."""
    stream = stream or sys.stderr
    if stream.isatty():
        print(f"{verb}: {message}", file=stream, flush=True)
