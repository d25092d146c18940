"""`make promote FROM=dev TO=prod`: copy one environment's image version (its digest) to the next, and nothing else.

The result is a one-line change to overlays/<TO>/kustomization.yaml for a reviewer to approve in a pull request.
A production-like target only takes a sha256 digest: a tag can be re-pushed, so prod would not run what was tested.
Each environment keeps its own registry (the overlay's `newName`, docs/forking.md): only the digest moves, and when
the two repositories differ the report says in one line that the digest must exist in TO's before it can sync.
"""

import argparse
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path

from gitops.core import environments
from gitops.core.errors import UserError
from gitops.core.paths import ENVIRONMENTS_DIR, REPO_ROOT
from gitops.delivery import image_ref
from gitops.delivery.hydrate import deploy_branch


class PromotionRefused(Exception):
    pass


@dataclass(frozen=True)
class Promotion:
    source: str
    target: str
    before: image_ref.ImageRef
    after: image_ref.ImageRef
    old_text: str
    new_text: str
    copied_from: image_ref.ImageRef | None = None  # the source's reference, when its repository is not TO's

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text


def promote(root: Path, source: str, target: str) -> Promotion:
    if source == target:
        raise PromotionRefused(f"FROM and TO are both {source!r}")
    facts = environments.load(root)
    facts.get(source), facts.get(target)  # an unknown name fails here, in one line naming environments.yaml
    ref = image_ref.read_image(root, source)
    before = image_ref.read_image(root, target)
    if facts.is_production(target) and not ref.is_digest:
        raise PromotionRefused(
            f"refusing to promote {ref} to {target}: {target} only runs images pinned by sha256 digest. "
            f"A tag is mutable (it can be re-pushed to different bytes), so {target} might not run what {source} "
            f"tested, and `make validate` rejects it. Pin {source} to the digest its build pushed "
            f"(gitops pin-image --env {source} --image <repository>@sha256:...), then promote."
        )
    # Only the version moves: TO keeps its repository (its registry), whatever FROM pulls from.
    moved = image_ref.ImageRef(before.repository, ref.digest, ref.tag)
    old, new = image_ref.set_image(root, target, moved)
    return Promotion(source, target, before, moved, old, new, ref if ref.repository != before.repository else None)


def _short(ref: image_ref.ImageRef) -> str:
    return ref.digest.removeprefix("sha256:")[:12] if ref.digest else str(ref.tag)


def report(p: Promotion) -> str:
    if not p.changed:
        return f"{p.target} already runs {p.after} ({p.source}'s version): already promoted, nothing to do\n"
    name = f"{ENVIRONMENTS_DIR}/{p.target}/kustomization.yaml"
    diff = "".join(
        difflib.unified_diff(p.old_text.splitlines(True), p.new_text.splitlines(True), f"a/{name}", f"b/{name}")
    )
    branch = f"promote-{p.target}-{_short(p.after)}"
    registry = (
        f"  {p.target} keeps its registry: {p.copied_from} must exist as {p.after} before {p.target} syncs "
        f"(copy it there; a copy keeps the digest)\n"
        if p.copied_from
        else ""
    )
    return (
        f"promote {image_ref.IMAGE}: {p.source} -> {p.target}\n"
        f"  {p.target} was: {p.before}\n"
        f"  {p.target} now: {p.after}\n{registry}\n"
        f"{diff}\n"
        "Next: review it as a pull request (make diff shows what it does to each environment)\n"
        f"  git switch -c {branch}\n"
        f"  make validate\n"
        f"  git commit -m 'Promote {image_ref.IMAGE} {_short(p.after)} from {p.source} to {p.target}' -- {name}\n"
        f"  git push -u origin {branch}   # then open a pull request against main\n"
        f"Once merged, CI hydrates {deploy_branch(p.target)} from main; the new digest becomes a new Revision once\n"
        f"Argo CD syncs that branch (prod: after a reviewed pull request into it and a manual sync).\n"
    )


def main(argv: list[str] | None = None, root: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", required=True, help="environment to copy the image from")
    parser.add_argument("--to", dest="target", required=True, help="environment to point at it")
    args = parser.parse_args(argv)
    try:
        result = promote(root, args.source, args.target)
    except UserError as error:  # bad input (an unknown environment): exit 2, as docs/cli.md says
        print(f"promote: {error}", file=sys.stderr)
        return error.exit_code
    except (image_ref.ImageRefError, PromotionRefused) as error:
        print(f"promote: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(report(result))
    if result.changed:
        print(f"promote: wrote {root / ENVIRONMENTS_DIR / result.target / 'kustomization.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
