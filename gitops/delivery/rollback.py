"""`make rollback ENV=<env>`: what ENV ran before, from git, and the one-line change back to one of those images.

Two histories say what an environment ran, and both live in git:
- the image: every commit that changed the `images` entry of overlays/<env>/kustomization.yaml (CI's pin, a
  promotion, a rollback), newest first, each with the reference it set;
- the deploy branch: every commit on deploy/<env> (what Argo CD was told to apply), with the source commit each
  was hydrated from (its `Source-Commit:` trailer, else provenance.txt).

`--to <digest>` (a full `sha256:...` or at least 12 hex of one listed) writes that reference back into the overlay,
touching nothing else, and prints the commands that put it up for review, exactly like `make promote`: a
rollback is a reviewed change too, and CI hydrates and validates it on its way to the deploy branch. Only a
reference the environment ran is accepted, so a typo cannot deploy an image nobody tested there.
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gitops.core import environments
from gitops.core.errors import UserError
from gitops.core.paths import ENVIRONMENTS_DIR, REPO_ROOT
from gitops.delivery import image_ref
from gitops.delivery.hydrate import PROVENANCE, deploy_branch

LIMIT = 20  # history lines shown per list; `git log` has the rest
SEP = "\x1f"


class RollbackRefused(Exception):
    pass


@dataclass(frozen=True)
class Ran:
    """One image reference the environment's overlay set, and the commit that set it."""

    ref: image_ref.ImageRef
    commit: str
    date: str
    subject: str


@dataclass(frozen=True)
class DeployCommit:
    commit: str
    date: str
    subject: str
    source: str


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(
            f"`git {' '.join(args[:2])}` failed: {(proc.stderr.strip().splitlines() or ['?'])[0]}",
            where=str(root),
            fix="run it in a git clone of the repository (the history is the record of what ran)",
        )
    return proc.stdout


def image_history(root: Path, env: str) -> list[Ran]:
    """Newest first: each commit that changed ENV's image reference, with the reference it set."""
    path = f"{ENVIRONMENTS_DIR}/{env}/kustomization.yaml"
    log = _git(root, "log", f"--format=%H{SEP}%cs{SEP}%s", "--", path)
    history: list[Ran] = []
    for line in log.splitlines():
        commit, date, subject = line.split(SEP, 2)
        try:
            ref = image_ref.image_in(_git(root, "show", f"{commit}:{path}"), f"{path}@{commit[:12]}")
        except (UserError, image_ref.ImageRefError):
            continue  # the file was deleted or had no image entry at that commit
        if history and history[-1].ref == ref:
            history[-1] = Ran(ref, commit, date, subject)  # the older commit is the one that set it
        else:
            history.append(Ran(ref, commit, date, subject))
    return history


def deploy_history(root: Path, env: str) -> tuple[str | None, list[DeployCommit]]:
    """The deploy branch ref found in this clone (origin's first) and its newest commits."""
    branch = deploy_branch(env)
    for ref in (f"origin/{branch}", branch):
        proc = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], capture_output=True
        )
        if proc.returncode == 0:
            break
    else:
        return None, []
    fmt = f"%H{SEP}%cs{SEP}%s{SEP}%(trailers:key=Source-Commit,valueonly,separator=%x2C)"
    commits = []
    for line in _git(root, "log", f"-n{LIMIT}", f"--format={fmt}", ref).splitlines():
        commit, date, subject, source = line.split(SEP, 3)
        if not source.strip():
            show = subprocess.run(
                ["git", "-C", str(root), "show", f"{commit}:{PROVENANCE}"], capture_output=True, text=True
            )
            source = next(
                (x.partition(": ")[2] for x in show.stdout.splitlines() if x.startswith("source-commit: ")), "?"
            )
        commits.append(DeployCommit(commit, date, subject, source.strip()))
    return ref, commits


def _short(ref: image_ref.ImageRef) -> str:
    return ref.digest.removeprefix("sha256:")[:12] if ref.digest else str(ref.tag)


def listing(root: Path, env: str) -> str:
    history = image_history(root, env)
    current = image_ref.read_image(root, env)
    path = f"{ENVIRONMENTS_DIR}/{env}/kustomization.yaml"
    lines = [f"rollback {env}: the images {path} set, newest first (git log -- {path})"]
    for ran in history[:LIMIT]:
        mark = "now" if ran.ref == current else "   "
        lines.append(f"  {mark} {ran.ref}  {ran.date} {ran.commit[:12]} {ran.subject}")
    if not history:
        lines.append("  (no commit has set it yet)")
    ref, commits = deploy_history(root, env)
    branch = deploy_branch(env)
    if ref is None:
        lines.append(f"rollback {env}: no {branch} in this clone (`git fetch origin {branch}`), no deploy history")
    else:
        lines.append(f"rollback {env}: what Argo CD was told to apply, newest first (git log {ref})")
        lines += [f"      {c.commit[:12]} {c.date} source {c.source[:12]}  {c.subject}" for c in commits]
    lines += [
        f"Roll back the image for review: make rollback ENV={env} DIGEST=<a digest above>",
        f"Roll back everything a deploy commit changed: git revert <a {branch} commit>, as a pull request into {branch};",
        f"in an emergency: argocd app sync knative-kafka-{env} --revision <an older {branch} commit> (docs/operations.md)",
    ]
    return "\n".join(lines) + "\n"


def choose(history: list[Ran], wanted: str) -> Ran:
    text = wanted.strip().removeprefix("sha256:")
    if len(text) < 12:
        raise RollbackRefused(f"{wanted!r}: give the digest, or at least its first 12 hex characters")
    matches = list(
        dict.fromkeys(r.ref for r in history if r.ref.digest and r.ref.digest.removeprefix("sha256:").startswith(text))
    )
    if len(matches) != 1:
        why = "matches several" if matches else "is not one this environment ran"
        ran = ", ".join(_short(r.ref) for r in history if r.ref.digest) or "none"
        raise RollbackRefused(f"{wanted!r} {why} (the digests it ran: {ran}); pick one from `make rollback`")
    return next(r for r in history if r.ref == matches[0])


def rollback(root: Path, env: str, wanted: str) -> tuple[Ran, image_ref.ImageRef, str, str]:
    environments.load(root).get(env)  # an unknown name: one line naming environments.yaml, exit 2
    target = choose(image_history(root, env), wanted)
    before = image_ref.read_image(root, env)
    old, new = image_ref.set_image(root, env, target.ref)
    return target, before, old, new


def report(env: str, target: Ran, before: image_ref.ImageRef, old: str, new: str) -> str:
    if old == new:
        return f"{env} already runs {target.ref}: nothing to roll back\n"
    name = f"{ENVIRONMENTS_DIR}/{env}/kustomization.yaml"
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{name}", f"b/{name}"))
    branch = f"rollback-{env}-{_short(target.ref)}"
    moved = (
        f"  note: {target.ref.repository} is not the repository {env} uses now ({before.repository}); the digest is\n"
        f"        pulled from where it was pushed then, which must still hold it\n"
        if target.ref.repository != before.repository
        else ""
    )
    return (
        f"rollback {env}: {before} -> {target.ref}\n"
        f"  set by {target.commit[:12]} on {target.date}: {target.subject}\n{moved}\n"
        f"{diff}\n"
        "Next: review it as a pull request (make diff shows what it does)\n"
        f"  git switch -c {branch}\n"
        "  make validate\n"
        f"  git commit -m 'Roll back {env} to {image_ref.IMAGE} {_short(target.ref)}' -- {name}\n"
        f"  git push -u origin {branch}   # then open a pull request against main\n"
        f"Once merged, CI hydrates {deploy_branch(env)}; Argo CD rolls the Knative Service back to that image.\n"
    )


def main(argv: list[str] | None = None, root: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="an environment of environments.yaml")
    parser.add_argument("--to", metavar="DIGEST", help="a digest the environment ran (full, or 12+ hex): write it back")
    args = parser.parse_args(argv)
    environments.load(root).get(args.env)
    if args.to is None:
        sys.stdout.write(listing(root, args.env))
        return 0
    try:
        target, before, old, new = rollback(root, args.env, args.to)
    except (RollbackRefused, image_ref.ImageRefError) as error:
        print(f"rollback: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(report(args.env, target, before, old, new))
    if old != new:
        print(f"rollback: wrote {root / ENVIRONMENTS_DIR / args.env / 'kustomization.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
