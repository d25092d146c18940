"""Errors a user can fix, and how each becomes the one line the CLI prints.

Every verb raises `UserError` (or a subclass) for bad input: a missing file, a YAML syntax error, an unknown
environment or topic, an absent mirror. The CLI (gitops/cli.py) prints `str(error)` and exits with `exit_code`;
anything else escaping a verb is a bug, reported in one line too, with the traceback only under `--debug`.
The line reads "<where>: <what is wrong>; <how to fix it>" so a reader never has to open a stack trace.
"""

from __future__ import annotations

from pathlib import Path

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input or set-up: one line naming the file (and line), what is wrong and how to fix it."""

    exit_code = EXIT_USAGE

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what, self.where, self.fix = what, where, fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text}; {self.fix}" if self.fix else text


def display_path(path: Path, root: Path) -> str:
    """`path` relative to `root` when it lies inside it (findings name repo files, never machine paths)."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def yaml_error(path: Path, root: Path, error: Exception, cls: type[UserError] = UserError) -> UserError:
    """A ruamel/PyYAML parse error as one line: file:line:column and the parser's own problem text."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = display_path(path, root)
    if mark is not None:
        where += f":{mark.line + 1}:{mark.column + 1}"
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return cls(f"invalid YAML: {problem}", where=where, fix="fix the syntax (indentation, quoting, colons)")
