"""Pin a pushed image into an environment: the image workflow's last step before it commits.

`--print-target` tells the workflow where to push (the overlay's `newName`, so the registry is configured in the
overlay and nowhere else); `--image <repository>@sha256:...` then records what was pushed. A tag is refused: the
commit must name the exact bytes CI built and tested, or Argo CD could roll to something else later.
"""

import argparse
import difflib
import sys
from pathlib import Path

from gitops.core.paths import ENVIRONMENTS_DIR, REPO_ROOT
from gitops.delivery import image_ref


class PinRefused(Exception):
    pass


def pin(root: Path, env: str, ref: str) -> tuple[str, str]:
    wanted = image_ref.parse(ref)
    if not wanted.is_digest:
        raise PinRefused(f"{ref}: not a digest. Pin the sha256 digest the push returned, never a tag.")
    current = image_ref.read_image(root, env)
    if wanted.repository != current.repository:
        raise PinRefused(
            f"{ref}: pushed to {wanted.repository}, but overlays/{env} runs images from {current.repository}. "
            f"The overlay's newName is where images are pushed; change it there first if the registry moved."
        )
    return image_ref.set_image(root, env, wanted)


def main(argv: list[str] | None = None, root: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="dev")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--image", help="the pushed reference, <repository>@sha256:<64 hex>")
    action.add_argument(
        "--print-target", action="store_true", help="print repository=... and registry=... (GITHUB_OUTPUT lines)"
    )
    args = parser.parse_args(argv)
    try:
        if args.print_target:
            current = image_ref.read_image(root, args.env)
            print(f"repository={current.repository}\nregistry={current.registry}")
            return 0
        old, new = pin(root, args.env, args.image)
    except (image_ref.ImageRefError, PinRefused) as error:
        print(f"pin_image: {error}", file=sys.stderr)
        return 1
    if old == new:
        print(f"{args.env} already runs {args.image}")
        return 0
    name = f"{ENVIRONMENTS_DIR}/{args.env}/kustomization.yaml"
    sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{name}", f"b/{name}"))
    print(f"pin-image: wrote {root / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
