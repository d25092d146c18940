"""The image each environment runs: one kustomize `images` entry in overlays/<env>/kustomization.yaml.

That entry is the only place the fact lives (repository in `newName`, version in `digest` or `newTag`), so CI's
pin, `make promote` and the image workflow's choice of registry all read and write it here.
"""

import io
import re
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from gitops.core.paths import ENVIRONMENTS_DIR

# The placeholder image name in apps/notifications/deploy/service.yaml that every overlay's `images` replaces.
IMAGE = "notifications"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# A repository path component (lowercase, separators) and a tag, as the OCI distribution spec allows them.
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]+)?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ImageRefError(ValueError):
    pass


@dataclass(frozen=True)
class ImageRef:
    """An image reference: `repository@sha256:...` (immutable) or `repository:tag` (mutable)."""

    repository: str
    digest: str | None = None
    tag: str | None = None

    @property
    def is_digest(self) -> bool:
        return self.digest is not None and bool(DIGEST.match(self.digest))

    @property
    def registry(self) -> str:
        """The host to log in to: the first path component when it looks like a host (docker's own rule)."""
        return _split_host(self.repository)[0] or "docker.io"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}" if self.tag else self.repository


def parse(ref: str) -> ImageRef:
    """Parse `repo@sha256:<64 hex>` or `repo:tag`; a digest wins over a tag written beside it (`repo:tag@sha256:`)."""
    ref = ref.strip()
    repository, digest, tag = ref, None, None
    if "@" in ref:
        repository, _, digest = ref.partition("@")
        if not DIGEST.match(digest):
            raise ImageRefError(f"{ref!r}: digest {digest!r} is not sha256:<64 lowercase hex>")
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = repository.rpartition(":")
        if not _TAG.match(tag):
            raise ImageRefError(f"{ref!r}: {tag!r} is not a valid tag")
        if digest:
            tag = None
    _check_repository(repository, ref)
    return ImageRef(repository, digest, tag)


def _split_host(repository: str) -> tuple[str | None, str]:
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, repository


def _check_repository(repository: str, ref: str) -> None:
    host, path = _split_host(repository)
    if not ((host is None or _REGISTRY.match(host)) and _REPOSITORY.match(path)):
        raise ImageRefError(f"{ref!r}: {repository!r} is not a valid image repository")


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments, key order and quoting survive a rewrite
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def overlay_file(root: Path, env: str) -> Path:
    path = root / ENVIRONMENTS_DIR / env / "kustomization.yaml"
    if not path.is_file():
        known = sorted(p.parent.name for p in (root / ENVIRONMENTS_DIR).glob("*/kustomization.yaml"))
        raise ImageRefError(f"no environment {env!r}: {path} does not exist (environments: {', '.join(known)})")
    return path


def _entry(doc: CommentedMap, name: str) -> CommentedMap | None:
    for item in doc.get("images") or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    return None


def read_image(root: Path, env: str, name: str = IMAGE) -> ImageRef:
    """The reference overlays/<env> gives the `name` image: newName (else name) plus digest or newTag."""
    path = overlay_file(root, env)
    return image_in(path.read_text(), str(path), name)


def image_in(text: str, where: str, name: str = IMAGE) -> ImageRef:
    """The `name` image of one kustomization's text (the working tree's, or an old commit's: `make rollback`)."""
    doc = _yaml().load(text)
    entry = _entry(doc, name) if isinstance(doc, dict) else None
    if entry is None:
        raise ImageRefError(f"{where}: no `images` entry with name: {name}")
    repository = str(entry.get("newName") or name)
    digest, tag = entry.get("digest"), entry.get("newTag")
    if digest is not None and not DIGEST.match(str(digest)):
        raise ImageRefError(f"{where}: images[{name}].digest {digest!r} is not sha256:<64 lowercase hex>")
    return ImageRef(repository, str(digest) if digest else None, None if digest or tag is None else str(tag))


def set_image(root: Path, env: str, ref: ImageRef, name: str = IMAGE) -> tuple[str, str]:
    """Point overlays/<env>'s `name` entry at ref, touching nothing else in the file. Returns (old, new) text."""
    if not (ref.digest or ref.tag):
        raise ImageRefError(f"{ref}: neither a digest nor a tag; kustomize would keep whatever the base says")
    path = overlay_file(root, env)
    old = path.read_text()
    yaml = _yaml()
    doc = yaml.load(old)
    entry = _entry(doc, name)
    if entry is None:
        images = doc.get("images")
        if images is None:
            images = doc["images"] = CommentedSeq()
        entry = CommentedMap(name=name)
        images.append(entry)
    entry["newName"] = ref.repository
    # kustomize renders `newTag` and `digest` together as name:tag@digest; keep exactly one version field.
    if ref.digest:
        entry.pop("newTag", None)
        entry["digest"] = ref.digest
    else:
        entry.pop("digest", None)
        entry["newTag"] = ref.tag
    out = io.StringIO()
    yaml.dump(doc, out)
    new = out.getvalue()
    if new != old:
        path.write_text(new)
    return old, new
