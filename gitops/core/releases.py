"""Pinned upstream release assets: parse their URLs, check them against the lock, serve them offline."""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import httpx
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gitops.core.errors import UserError, yaml_error
from gitops.core.paths import RELEASES_LOCK

RELEASE_URL = re.compile(
    r"^https://github\.com/(?P<org>[^/]+)/(?P<repo>[^/]+)/releases/download/(?P<tag>[^/]+)/(?P<file>[^/]+)$"
)
KUSTOMIZE_DIRS = ("base", "overlays", "components", "apps")


def is_remote(reference: str) -> bool:
    """A kustomization entry (or an object's origin) that names a URL rather than a file of this repository."""
    return reference.startswith(("http://", "https://"))


class DigestMismatch(UserError):
    """An asset's bytes differ from the lock: never render it."""


@dataclass(frozen=True)
class ReleaseAsset:
    url: str
    org: str
    repo: str
    tag: str
    file: str

    @classmethod
    def parse(cls, url: str) -> "ReleaseAsset":
        match = RELEASE_URL.match(url)
        if match is None:
            raise ValueError(f"{url} is not a GitHub release asset URL (…/<org>/<repo>/releases/download/<tag>/<file>)")
        return cls(url=url, **match.groupdict())

    def mirror_path(self, mirror: Path) -> Path:
        # The mirror keeps upstream file names under <tag>/<repo>/ (see ../shared/releases/README.md).
        return mirror / self.tag / self.repo / self.file

    def cache_path(self, cache: Path) -> Path:
        return cache / "releases" / self.tag / self.repo / self.file


@dataclass(frozen=True)
class Unavailable:
    """An asset the render had to leave out, and why."""

    url: str
    reason: str


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_lock(root: Path) -> dict[str, str | None]:
    path = root / RELEASES_LOCK
    try:
        data = YAML(typ="safe").load(path.read_text()) or {}
    except FileNotFoundError:
        raise UserError(
            "missing: it pins the sha256 of every upstream release asset",
            where=str(RELEASES_LOCK),
            fix=f"restore it with `git checkout -- {RELEASES_LOCK}` (or rebuild it with `make bump VERSION=<v>`)",
        ) from None
    except YAMLError as error:
        raise yaml_error(path, root, error) from None
    if not isinstance(data, dict) or not isinstance(data.get("assets") or {}, dict):
        raise UserError("expected `assets: {<url>: <sha256>}`", where=str(RELEASES_LOCK), fix="restore it from git")
    return dict(data.get("assets") or {})


def kustomization_files(root: Path) -> list[Path]:
    found: list[Path] = []
    for top in KUSTOMIZE_DIRS:
        found.extend(sorted((root / top).rglob("kustomization.yaml")))
    return found


def referenced_urls(root: Path) -> dict[str, Path]:
    """Every remote resource URL in the tree's kustomizations, with the kustomization that lists it."""
    urls: dict[str, Path] = {}
    for path in kustomization_files(root):
        try:
            doc = YAML(typ="safe").load(path.read_text()) or {}
        except YAMLError as error:
            raise yaml_error(path, root, error) from None
        for entry in doc.get("resources") or [] if isinstance(doc, dict) else []:
            if isinstance(entry, str) and is_remote(entry):
                urls[entry] = path
    return urls


def verified_copy(asset: ReleaseAsset, expected: str | None, mirror: Path, cache: Path) -> Path | Unavailable:
    """The local file holding `asset`, checked against the lock digest; Unavailable if there is none.

    Raises DigestMismatch when a file exists but its bytes are not the locked ones.
    """
    if expected is None:
        return Unavailable(
            asset.url, "the lock records no sha256 for it (run `make bump` where the release is reachable)"
        )
    for candidate in (asset.mirror_path(mirror), asset.cache_path(cache)):
        if candidate.is_file():
            actual = sha256_of(candidate)
            if actual != expected:
                raise DigestMismatch(f"{candidate}: sha256 {actual} but the lock says {expected} for {asset.url}")
            return candidate
    try:
        downloaded = download(asset.url, asset.cache_path(cache))
    except httpx.HTTPError as error:
        return Unavailable(
            asset.url, f"not in the mirror ({asset.mirror_path(mirror)}) and the download failed: {error}"
        )
    actual = sha256_of(downloaded)
    if actual != expected:
        downloaded.unlink()
        raise DigestMismatch(f"downloaded {asset.url}: sha256 {actual} but the lock says {expected}")
    return downloaded


def download(url: str, dest: Path, timeout: float = 20.0) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    response = httpx.get(url, follow_redirects=True, timeout=timeout)
    response.raise_for_status()
    partial = dest.with_suffix(dest.suffix + ".part")
    partial.write_bytes(response.content)
    partial.replace(dest)
    return dest
