"""Pin a pushed image into an environment: the image workflow's last step before it commits.

`--print-target` tells the workflow where to push (the overlay's `newName`, so the registry is configured in the
overlay and nowhere else); `--image <repository>@sha256:...` then records what was pushed. A tag is refused: the
commit must name the exact bytes CI built and tested, or Argo CD could roll to something else later.

`--print-code` (run on the commit that is built) prints what the checks need from the app's code, its routes and
settings names, as one `code=<json>` line; `--code <json>` with `--image` writes it as the image's record,
`images/<app>/sha256-<hex>.json` (gitops/model/app_code.py), so `make validate` judges every environment's Trigger
paths and env vars against the code of the image it runs, wherever that digest is promoted.
"""

import argparse
import difflib
import json
import sys
from pathlib import Path

from gitops.core.paths import ENVIRONMENTS_DIR, REPO_ROOT
from gitops.delivery import image_ref
from gitops.model import app_code


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
    parser.add_argument("--app", default="notifications", help="the app under apps/ the image is built from")
    parser.add_argument(
        "--code", help="with --image: the app's routes and settings (`--print-code` on the built commit), as JSON"
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--image", help="the pushed reference, <repository>@sha256:<64 hex>")
    action.add_argument(
        "--print-target", action="store_true", help="print repository=... and registry=... (GITHUB_OUTPUT lines)"
    )
    action.add_argument(
        "--print-code",
        action="store_true",
        help="print code=<the app's routes and settings as JSON> (a GITHUB_OUTPUT line)",
    )
    args = parser.parse_args(argv)
    try:
        if args.print_target:
            current = image_ref.read_image(root, args.env)
            print(f"repository={current.repository}\nregistry={current.registry}")
            return 0
        if args.print_code:
            print("code=" + json.dumps(app_code.code_of_tree(args.app), separators=(",", ":"), sort_keys=True))
            return 0
        code = None
        if args.code is not None:
            try:
                code = json.loads(args.code)
            except ValueError as error:
                raise PinRefused(f"--code is not JSON ({error})") from None
        old, new = pin(root, args.env, args.image)
        if code is not None:
            written = app_code.write_record(root, args.app, args.image, code)
            print(f"pin-image: recorded the code of {args.image} in {written.relative_to(root)}")
    except (image_ref.ImageRefError, PinRefused, app_code.RecordError) as error:
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
