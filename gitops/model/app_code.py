"""What an environment's checks need from the code of the image it runs, recorded with each image the pipeline builds.

Trigger paths, probe paths and env var names are judged against an app's code (app_routes.py, app_settings.py). The
code that answers in a cluster is the image's, not the working tree's: a Trigger added for a new topic must wait for
an image that serves its route. So the image workflow records, for every image it pushes, the routes and settings
names of the commit it built, in `images/<app>/sha256-<hex>.json` keyed by the image's digest (written by
`gitops pin-image --image ... --code ...`, committed with the pin). Checks read the record of the digest each
environment runs; an image without a record (one built before records existed, or this repository's placeholder
digest) is judged against the working tree, and the finding says so.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.core.errors import UserError
from gitops.model.app_routes import Route, served_routes
from gitops.model.app_settings import environment_variables

RECORDS_DIR = "images"
RECORD_VERSION = 1


class RecordError(UserError):
    """A record that cannot be read: bad JSON, or not the shape written here (one line, exit 2)."""


@dataclass(frozen=True)
class AppCode:
    """An app's routes and settings names, and where they come from (for a finding to name)."""

    app: str
    routes: frozenset[Route]
    settings: frozenset[str] | None
    image: str | None  # the image reference whose record this is; None: the working tree
    record: str | None  # the record file, repo-relative

    def describe(self) -> str:
        if self.image is None:
            return f"apps/{self.app}"
        return f"image {self.image} ({self.record})"


def code_of_tree(app: str) -> dict[str, Any]:
    """The record of `app` as the working tree's code has it (what the image workflow writes for a build)."""
    settings = environment_variables(app)
    return {
        "version": RECORD_VERSION,
        "app": app,
        "routes": sorted([r.method, r.path] for r in served_routes(app)),
        "settings": sorted(settings) if settings is not None else None,
    }


def digest_of(image: str) -> str | None:
    """`sha256:<hex>` of an image reference pinned by digest, else None."""
    _, sep, digest = image.partition("@")
    return digest if sep and digest.startswith("sha256:") else None


def record_path(app: str, digest: str) -> str:
    """Repo-relative path of the record of `app`'s image `digest`."""
    return f"{RECORDS_DIR}/{app}/{digest.replace(':', '-')}.json"


def write_record(root: Path, app: str, image: str, code: dict[str, Any]) -> Path:
    digest = digest_of(image)
    if digest is None:
        raise RecordError(f"{image}: not pinned by digest", fix="a record is keyed by the image's sha256 digest")
    parse_record(code, "the code given")
    path = root / record_path(app, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**code, "image": image}, indent=2, sort_keys=True) + "\n")
    return path


def parse_record(doc: Any, where: str) -> tuple[frozenset[Route], frozenset[str] | None]:
    try:
        routes = frozenset(Route(str(m).upper(), str(p)) for m, p in doc["routes"])
        settings = doc.get("settings")
        return routes, (frozenset(str(s) for s in settings) if settings is not None else None)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise RecordError(
            f"{where}: not an image code record", fix="expected routes: [[METHOD, path], ...] and settings: [...]"
        ) from None


def code_for(root: Path, app: str, image: str | None) -> AppCode:
    """The code `image` was built from, from its record; the working tree's when the image has none."""
    digest = digest_of(image) if image else None
    if digest is not None:
        rel = record_path(app, digest)
        path = root / rel
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
            except ValueError as error:
                raise RecordError(f"{rel}: not valid JSON ({error})", fix="re-run the image workflow's pin") from None
            routes, settings = parse_record(doc, rel)
            return AppCode(app, routes, settings, image, rel)
    return AppCode(app, served_routes(app), environment_variables(app), None, None)
