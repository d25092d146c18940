"""`make hydrate ENV=<env> OUT=<dir>`: write what Argo CD syncs for ENV as plain YAML files.

Argo CD no longer runs kustomize at sync time (it would fetch the upstream release URLs with no digest check).
CI runs this module instead: the lock-verified render of `make render`, split into one file per object, plus a
provenance file naming the source commit and the releases lock it came from. CI then runs `make validate` on
exactly these files and commits them to the environment's deploy branch, which Argo CD syncs as a directory.

Strict where `make render` is lenient: an asset left out of the render (a null digest in the lock, not mirrored
and not downloadable) fails the hydrate, because deploying a partial install is worse than not deploying.
Deterministic: the same tree gives byte-identical files with the same names.
"""

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gitops.core import manifests, releases
from gitops.core.errors import UserError
from gitops.core.paths import RELEASES_LOCK, REPO_ROOT, overlay_names
from gitops.core.render import RenderError, RenderResult, render_env

# The branch Argo CD syncs for each environment: deploy/<env> (argocd-app.yaml, docs/shipping.md).
DEPLOY_BRANCH_PREFIX = "deploy/"
PROVENANCE = "provenance.txt"  # not *.yaml/*.yml/*.json: an Argo CD directory source never applies it
MANIFEST_SUFFIX = ".yaml"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class HydrateError(RuntimeError):
    """Nothing was written; the message says what to fix."""


@dataclass(frozen=True)
class Hydrated:
    env: str
    out: Path
    files: list[str]
    source_commit: str
    lock_sha256: str


def deploy_branch(env: str) -> str:
    return f"{DEPLOY_BRANCH_PREFIX}{env}"


def split_documents(text: str) -> list[str]:
    """kustomize's output split at its `---` separators, each document's bytes unchanged.

    A separator is a line that is exactly `---`: kustomize indents block scalars, so no document content can be
    such a line."""
    docs: list[str] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.rstrip("\n") == "---":
            docs.append("".join(current))
            current = []
        else:
            current.append(line)
    docs.append("".join(current))
    return [d for d in docs if d.strip()]


def file_name(obj: manifests.Obj) -> str:
    """<namespace or _cluster>--<kind>.<group>--<name>.yaml: stable across renders, unique per object, and a
    deploy-branch diff reads as "which objects changed"."""
    key = manifests.ObjKey.of(obj)
    kind = f"{key.kind}.{key.group}" if key.group else key.kind
    parts = (key.namespace or "_cluster", kind, key.name)
    return "--".join(_UNSAFE.sub("_", part) for part in parts).lower() + MANIFEST_SUFFIX


def source_commit(root: Path) -> str:
    """HEAD of the checkout, with `+dirty` when tracked files differ from it; `unknown` outside git."""
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def manifests_sha256(files: dict[str, str]) -> str:
    """One digest over every file's name and bytes: a changed, added, removed or renamed file changes it."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()


def provenance_text(env: str, commit: str, lock_sha256: str, files: dict[str, str]) -> str:
    return (
        "# Written by `make hydrate`; Argo CD syncs only the *.yaml files beside this one.\n"
        f"environment: {env}\n"
        f"source-commit: {commit}\n"
        f"releases-lock: {RELEASES_LOCK.as_posix()}\n"
        f"releases-lock-sha256: {lock_sha256}\n"
        f"objects: {len(files)}\n"
        f"manifests-sha256: {manifests_sha256(files)}\n"
    )


def _provenance_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep and not line.startswith("#"):
            fields[key] = value
    return fields


def provenance_problems(directory: Path, env: str, root: Path = REPO_ROOT) -> list[tuple[str, str]]:
    """(file, what is wrong) for each way DIR is not exactly what `make hydrate --env ENV` of ROOT writes.

    Recomputes what hydrate records: the digest over the *.yaml files as they are now (a changed, added, removed
    or renamed file breaks it), the environment, ROOT's source commit (HEAD, +dirty) and the sha256 of ROOT's
    releases lock; then provenance.txt itself must be byte for byte the text hydrate writes from those values, so
    an edited provenance line is caught even where the fields still agree. Anything else in DIR is foreign: a file
    Argo CD's directory source could apply (*.yml, *.json) or that hides what was reviewed."""
    problems: list[tuple[str, str]] = []
    for entry in sorted(directory.iterdir()):
        if not entry.is_file() or not (entry.name == PROVENANCE or entry.name.endswith(MANIFEST_SUFFIX)):
            problems.append(
                (entry.name, f"is not a file `make hydrate` writes (only *{MANIFEST_SUFFIX} and {PROVENANCE})")
            )
    provenance = directory / PROVENANCE
    if not provenance.is_file():
        return [*problems, (PROVENANCE, "is missing: these files cannot be traced to a source commit and lock")]
    files = {p.name: p.read_text() for p in sorted(directory.glob(f"*{MANIFEST_SUFFIX}")) if p.is_file()}
    recorded_text = provenance.read_text()
    recorded = _provenance_fields(recorded_text)
    expected_lock = releases.sha256_of(root / RELEASES_LOCK)
    expected = {
        "environment": env,
        "source-commit": source_commit(root),
        "releases-lock": RELEASES_LOCK.as_posix(),
        "releases-lock-sha256": expected_lock,
        "objects": str(len(files)),
        "manifests-sha256": manifests_sha256(files),
    }
    why = {
        "environment": "the files were hydrated for another environment",
        "source-commit": "the files were not hydrated from the commit being validated (`git rev-parse HEAD`)",
        "releases-lock": "hydrate records this path",
        "releases-lock-sha256": f"not the sha256 of this tree's {RELEASES_LOCK.as_posix()}",
        "objects": f"the directory holds {len(files)} *{MANIFEST_SUFFIX} files",
        "manifests-sha256": "a file was changed, added, removed or renamed after hydrate wrote the digest",
    }
    for key, value in expected.items():
        if recorded.get(key) != value:
            got = recorded.get(key, "(missing)")
            problems.append((PROVENANCE, f"{key}: {got} but this tree gives {value}: {why[key]}"))
    if not any(name == PROVENANCE for name, _ in problems) and recorded_text != provenance_text(
        env, expected["source-commit"], expected_lock, files
    ):
        problems.append((PROVENANCE, "differs from the text `make hydrate` writes for these files (edited by hand)"))
    return problems


def hydrated_files(render: RenderResult) -> dict[str, str]:
    """file name -> the object's bytes from the render, in render order. Raises on an asset left out."""
    if render.omitted:
        # Every left-out asset, and the one command that records their digests (README, "Before the first push").
        names = ", ".join(gap.url for gap in render.omitted)
        reasons = "; ".join(dict.fromkeys(gap.reason for gap in render.omitted))
        tags = sorted({releases.ReleaseAsset.parse(gap.url).tag.removeprefix("knative-v") for gap in render.omitted})
        raise HydrateError(
            f"{len(render.omitted)} release asset(s) not in the render: {names} ({reasons}); run "
            f"`make bump VERSION={tags[0] if len(tags) == 1 else '<version>'}` where github.com is reachable, then "
            f"commit {RELEASES_LOCK.as_posix()}"
        )
    files: dict[str, str] = {}
    for doc in split_documents(render.text):
        objects = manifests.load_stream(doc)
        if len(objects) != 1:
            raise HydrateError(f"a rendered document holds {len(objects)} objects; expected one:\n{doc[:200]}")
        name = file_name(objects[0])
        if name in files:
            raise HydrateError(f"two rendered objects map to the file name {name} ({manifests.ObjKey.of(objects[0])})")
        files[name] = doc
    return files


def _check_out_dir(out: Path) -> None:
    """OUT may only hold what a previous hydrate wrote: it is replaced, never merged into."""
    if not out.exists():
        return
    if not out.is_dir():
        raise HydrateError(f"{out} exists and is not a directory")
    foreign = sorted(
        p.name
        for p in out.iterdir()
        if not (p.is_file() and (p.name == PROVENANCE or p.name.endswith(MANIFEST_SUFFIX)))
    )
    if foreign or (any(out.iterdir()) and not (out / PROVENANCE).is_file()):
        raise HydrateError(
            f"{out} holds files a hydrate did not write ({', '.join(foreign[:3]) or 'no ' + PROVENANCE}); "
            "pass an empty or new directory"
        )


def hydrate(env: str, out: Path, root: Path = REPO_ROOT, *, mirror: Path | None = None) -> Hydrated:
    """Render ENV (lock-verified), then replace OUT with one file per object and the provenance file.

    All or nothing: files are written to a sibling scratch directory that replaces OUT only once complete.
    An unknown ENV is bad input (UserError, exit 2 as docs/cli.md says), not a failed hydrate."""
    known = overlay_names(root)
    if env not in known:
        raise UserError(
            f"unknown environment {env!r} (known: {', '.join(known) or 'none'})",
            where=f"overlays/{env}/kustomization.yaml",
            fix="see docs/forking.md, 'Add an environment'",
        )
    _check_out_dir(out)
    try:
        render = render_env(env, root, mirror=mirror)
    except (RenderError, releases.DigestMismatch) as error:
        raise HydrateError(str(error).splitlines()[0]) from error
    files = hydrated_files(render)
    lock_sha256 = releases.sha256_of(root / RELEASES_LOCK)
    commit = source_commit(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.hydrate-", dir=out.parent))
    try:
        for name, text in files.items():
            (scratch / name).write_text(text)
        (scratch / PROVENANCE).write_text(provenance_text(env, commit, lock_sha256, files))
        if out.exists():
            shutil.rmtree(out)
        scratch.replace(out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return Hydrated(env, out, list(files), commit, lock_sha256)


def load_hydrated(out: Path) -> str:
    """The manifest stream of a hydrated directory, in file-name order (what Argo CD's directory source reads)."""
    files = sorted(p for p in out.glob(f"*{MANIFEST_SUFFIX}") if p.is_file())
    if not (out / PROVENANCE).is_file() or not files:
        raise HydrateError(f"{out} is not a hydrated directory (no {PROVENANCE} or no *{MANIFEST_SUFFIX} files)")
    return "".join(f"---\n{p.read_text()}" for p in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="an overlay under overlays/")
    parser.add_argument("--out", required=True, type=Path, help="directory to (re)write; created if missing")
    args = parser.parse_args(argv)
    try:
        result = hydrate(args.env, args.out)
    except UserError as error:
        print(f"hydrate {args.env}: nothing written: {error}", file=sys.stderr)
        return error.exit_code
    except HydrateError as error:
        print(f"hydrate {args.env}: FAILED, nothing written: {error}", file=sys.stderr)
        return 1
    print(
        f"hydrate {args.env}: wrote {len(result.files)} objects and {PROVENANCE} to {result.out.resolve()} "
        f"(source {result.source_commit}, lock sha256 {result.lock_sha256[:12]})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
