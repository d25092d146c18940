"""`gitops <verb>`: the one entry point for people, make and CI; each verb is a thin wrapper over one module.

    gitops validate                 # what `make validate` runs
    gitops --debug render dev       # a traceback too, when something unexpected breaks

The table VERBS maps each verb to the module whose `main(argv) -> int` does the work, so adding a verb is one
line. This module is the error boundary: a verb's bad input (gitops.core.errors.UserError: a missing file, bad YAML,
an unknown environment or topic, no mirror, no `make setup`) becomes one line on stderr and exit 2; anything
else is a bug, reported in one line with exit 70 and a traceback only with --debug. Exit codes are kept as the
verb returns them (`make` turns every failure into 2, so scripts and CI call this CLI). docs/cli.md is generated
from these parsers: `gitops docs > docs/cli.md`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import importlib.util
import io
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from gitops.core import paths
from gitops.core.errors import EXIT_USAGE, UserError
from gitops.core.paths import cache_dir
from gitops.core.signals import interrupt_on_sigterm

EXIT_OK = 0
EXIT_FAILED = 1  # the verb ran and found a problem (findings, a failed delivery, a refused promotion)
EXIT_DANGEROUS = 3  # diff: changes production cannot take
EXIT_UNAVAILABLE = 4  # bump: an asset could not be fetched and hashed
EXIT_BUG = 70  # EX_SOFTWARE: an unexpected exception, i.e. a bug in this repository
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILED: "the verb ran and failed: validate findings, an undelivered event, a refused promotion...",
    EXIT_USAGE: "bad input or set-up: unknown argument, environment or topic, bad YAML, missing file or mirror, "
    "`make setup` not run (one line says where and how to fix it)",
    EXIT_DANGEROUS: "diff: a change production cannot take (DANGEROUS)",
    EXIT_UNAVAILABLE: "bump: a release asset could not be fetched and hashed: nothing was written, or (an entry "
    "that was already null) the lock still has a null entry, which cannot deploy",
    EXIT_BUG: "an unexpected error (a bug): one line, and the traceback with --debug",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


@dataclass(frozen=True)
class Verb:
    target: str  # "package.module" (its main(argv)) or a repo-relative script path run as __main__
    help: str


VERBS: dict[str, Verb] = {
    "render": Verb("gitops.core.render", "print the manifests Argo CD would apply for one environment"),
    "hydrate": Verb(
        "gitops.delivery.hydrate", "write an environment's render as one file per object (what Argo CD syncs)"
    ),
    "environments": Verb(
        "gitops.core.environments", "list the environments of environments.yaml (--github-matrix: the CI matrix)"
    ),
    "validate": Verb("gitops.validate.run", "render every environment, schema-check it and run the semantic checks"),
    "diff": Verb("gitops.diff.report", "per-environment resource diff between a git ref and the working tree"),
    "bump": Verb("gitops.upstream.bump", "move every pinned Knative release URL to a version and re-lock the digests"),
    "promote": Verb("gitops.delivery.promote", "copy the image reference from one environment to another"),
    "preflight": Verb(
        "gitops.delivery.preflight", "check in deploy order what a first deploy of an environment needs; a checklist"
    ),
    "rollback": Verb(
        "gitops.delivery.rollback", "list the images and deploy commits an environment ran; write the change back"
    ),
    "deployer-rbac": Verb(
        "gitops.delivery.deployer_rbac", "check or --write argocd/deployers/<env>.yaml from each render"
    ),
    "pin-image": Verb("gitops.delivery.pin_image", "pin an environment's image to a pushed digest (CI after a build)"),
    "produce": Verb("gitops.events.produce", "send test events to the Kafka topics the KafkaSource reads"),
    "send-event": Verb("notifications.send_event", "post a KafkaSource-shaped CloudEvent to a running subscriber"),
    "serve": Verb("notifications.serve", "run the notifications subscriber with its production server"),
    "bench": Verb("notifications.bench", "load-test the subscriber; prints events/s, p50/p99, peak RSS"),
    "soak": Verb(
        "notifications.soak", "unique then hostile ids against the subscriber; fails if peak RSS passes its bound"
    ),
    "kafka": Verb("gitops.events.kafka_local", "run a throwaway single-node Kafka on loopback until Ctrl-C"),
    "e2e": Verb(
        "gitops.e2e.run", "run an environment's event path through Knative's Kafka data plane; a ledger per scenario"
    ),
    "bench-e2e": Verb(
        "gitops.e2e.bench", "events/s and p50/p99 through Knative's data plane, beside make bench's subscriber figure"
    ),
    "replay": Verb("gitops.e2e.replay", "list dead-lettered events, why each failed, and re-send chosen ones"),
}


# Verbs that run the subscriber's code and read no tree: they also run outside any checkout.
CODE_ONLY_VERBS = frozenset({"send-event", "serve", "bench", "soak", "docs"})
# Set in the environment of a re-run in a copy's own code, so a copy whose code still is not its own stops.
REEXEC_GUARD = "GITOPS_REEXEC_FROM"


def _app_tree() -> Path | None:
    """The tree the subscriber's code (`notifications`, which checks read its routes and topics from) is imported
    from, when it is a tree's apps/notifications/src; `make <verb>` in a copy imports the copy's gitops/ (python -m
    puts the working directory first) but still the original's app through the venv's editable install."""
    spec = importlib.util.find_spec("notifications")
    if spec is None or spec.origin is None:
        return None
    src = Path(spec.origin).resolve().parent.parent
    return src.parents[2] if src.name == "src" and src.parent.name == "notifications" else None


def _run_in_tree(name: str, args_in: list[str]) -> None:
    """Make the verb act on the tree it is run in, with that tree's own code, or refuse in one line.

    An editable install keeps importing the gitops/ of the tree the venv was made in, also from a copy of that
    tree (`cp -r` takes .venv along): `pin-image` in the copy rewrote the original. So, like git and kustomize,
    the tree is the one around the working directory (gitops/core/paths.py); when that is not the tree this code
    comes from, the verb runs again as `python -m gitops.cli` with that tree's gitops/ and app first on the path
    (what `make <verb>` does there). A tree without its own gitops/ is refused: its code may differ from ours."""
    work, code = paths.WORK_TREE, paths.CODE_ROOT
    if work is None:
        if name in CODE_ONLY_VERBS:
            return
        raise UserError(
            f"{Path.cwd()} is not inside a tree of this repository (no {paths.TREE_MARKER} at or above it, up to "
            "the git top level)",
            fix="cd into your checkout or fork and run the verb there",
        )
    if work == code and _app_tree() in (None, work):
        return
    if not (work / "gitops" / "cli.py").is_file() or os.environ.get(REEXEC_GUARD):
        raise UserError(
            f"this tree is {work}, but the gitops code running is {code}'s (its venv's editable install); refusing "
            "to act on one tree with another's code",
            fix=f"run `make setup` in {work} and then `make {name}` or `.venv/bin/gitops {name}` there",
        )
    env = {
        **os.environ,
        REEXEC_GUARD: str(code),
        "PYTHONPATH": os.pathsep.join(
            [str(work), str(work / "apps" / "notifications" / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "gitops.cli", *args_in], env)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gitops",
        description="Render, validate, diff and promote the Knative + Kafka GitOps tree; run the subscriber.",
        epilog="exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    verbs = p.add_subparsers(dest="verb", metavar="<verb>", required=True)
    for name, verb in VERBS.items():
        verbs.add_parser(name, help=verb.help, add_help=False)
    verbs.add_parser(
        "docs",
        help="print docs/cli.md (every verb's --help and the exit codes); `docs --verbs [NAME...]` reruns the "
        "transcripts in docs/verbs.md",
        add_help=False,
    )
    return p


def _entry(verb: Verb) -> Callable[[list[str]], int | None]:
    try:
        module = importlib.import_module(verb.target)
    except ImportError as error:
        raise UserError(f"cannot import {verb.target} ({error})", fix="run `make setup`") from error
    return module.main


@contextlib.contextmanager
def _prog(name: str) -> Iterator[None]:
    """argparse names the program after sys.argv[0]: make each verb's usage say `gitops <verb>`."""
    saved = list(sys.argv)
    sys.argv[:] = [f"gitops {name}"]
    try:
        yield
    finally:
        sys.argv[:] = saved


def run_verb(name: str, argv: list[str], debug: bool = False) -> int:
    try:
        with _prog(name):
            result = _entry(VERBS[name])(argv)
        return int(result or 0)
    except UserError as error:
        if debug:
            traceback.print_exc()
        print(f"gitops {name}: {error}", file=sys.stderr)
        return error.exit_code
    except SystemExit as done:  # argparse (2) and verbs that call sys.exit themselves
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
            return EXIT_FAILED
        return int(done.code or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader stopped reading (`gitops promote ... | head -5`): its choice, not a failure of the verb. Point
        # stdout at /dev/null so the interpreter's final flush does not raise again, and say nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        line = unwritable_line(error)
        if line is None:
            return _bug(name, error, debug)
        if debug:
            traceback.print_exc()
        print(f"gitops {name}: {line}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        return _bug(name, error, debug)


# errno values that mean "this path cannot be written here": a read-only checkout or file system, no permission,
# or a file where a directory must go.
UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST}
CACHE_ENV = "GITOPS_CACHE_DIR"  # what gitops.core.paths.cache_dir() reads


def unwritable_line(error: OSError) -> str | None:
    """A path a verb could not write, as the one line that says which and what to set; None for other errors."""
    if error.errno not in UNWRITABLE or not error.filename:
        return None
    path = Path(os.fsdecode(error.filename))
    cache = cache_dir()
    reason = error.strerror or type(error).__name__
    if path.is_relative_to(cache) or cache.is_relative_to(path):
        return (
            f"{cache}: cannot write the local cache ({reason}: {path}); set {CACHE_ENV} to a writable directory, "
            f"e.g. {CACHE_ENV}=/tmp/gitops-cache (a read-only checkout cannot hold .cache/)"
        )
    return f"{path}: cannot write it ({reason}); make it writable, or run from a writable copy of the repository"


def _bug(name: str, error: Exception, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    where = traceback.extract_tb(error.__traceback__)[-1]
    first_line = (str(error).strip().splitlines() or [""])[0]
    print(
        f"gitops {name}: unexpected {type(error).__name__}: {first_line} (at {os.path.basename(where.filename)}:"
        f"{where.lineno}); this is a bug: rerun with `gitops --debug {name} ...` and report the traceback",
        file=sys.stderr,
    )
    return EXIT_BUG


def docs() -> str:
    """docs/cli.md: the verbs, each verb's own --help, and the exit codes (generated; a test keeps it current)."""
    out = [
        "# The `gitops` CLI",
        "",
        "<!-- generated by `gitops docs > docs/cli.md`; tests/test_cli.py fails when it is stale -->",
        "",
        "`make <verb>` runs `.venv/bin/gitops <verb>`. GNU make reports every failing recipe as exit 2, so",
        "scripts and CI call the CLI directly to see the codes below. `gitops --debug <verb> ...` adds the",
        "traceback of an unexpected error.",
        "",
        "## Exit codes",
        "",
        "| code | meaning |",
        "|---|---|",
        *(f"| {code} | {text} |" for code, text in EXIT_CODES.items()),
        "",
        "## Verbs",
        "",
    ]
    for name, verb in VERBS.items():
        help_text = io.StringIO()
        with contextlib.redirect_stdout(help_text), contextlib.suppress(SystemExit):
            run_verb(name, ["--help"])
        out += [f"### `gitops {name}`", "", verb.help, "", "```text", help_text.getvalue().rstrip(), "```", ""]
    return "\n".join(out)


def _one_line_usage_error(self: argparse.ArgumentParser, message: str) -> NoReturn:
    """argparse's error(), without the multi-line usage block: what is wrong and where to read more."""
    self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def main(argv: Sequence[str] | None = None) -> int:
    interrupt_on_sigterm()
    # Every parser (the verbs' own too) reports a bad argument in one line while the CLI runs.
    saved = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = _one_line_usage_error  # type: ignore[method-assign]
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    finally:
        argparse.ArgumentParser.error = saved  # type: ignore[method-assign]


def _main(args_in: list[str]) -> int:
    # Everything after the verb belongs to the verb's own parser (including its --help).
    split = next((i for i, arg in enumerate(args_in) if arg in VERBS or arg == "docs"), len(args_in))
    args = parser().parse_args(args_in[: split + 1])
    try:
        _run_in_tree(args.verb, args_in)
    except UserError as error:
        print(f"gitops {args.verb}: {error}", file=sys.stderr)
        return error.exit_code
    if args.verb == "docs":
        rest = args_in[split + 1 :]
        if rest[:1] == ["--verbs"]:  # docs/verbs.md's transcripts, rerun (gitops/transcripts.py)
            from gitops import transcripts

            return transcripts.main(rest[1:])
        os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; the committed file must not depend on it
        sys.stdout.write(docs())
        return EXIT_OK
    return run_verb(args.verb, args_in[split + 1 :], args.debug)


if __name__ == "__main__":
    sys.exit(main())
