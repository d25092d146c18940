"""`make bump VERSION=1.x.y`: move every pinned Knative release URL to a new version and re-lock their digests.

The one source of truth is the `knative-vX.Y.Z` tag in the release URLs of the kustomizations (all must share
it). Every new asset is hashed (the mirror first, else a download into the cache) before anything is written:
either the URLs, the lock and the Go module pins of the admission stage (hack/knative-admission, through
gitops.upstream.go_modules) change together, or nothing changes. A digest that was already unrecorded (null)
may stay null when its asset cannot be fetched; any other asset that cannot be hashed stops the bump.
"""

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
from ruamel.yaml import YAML

from gitops.core import releases
from gitops.core.paths import (
    POST_INSTALL_KUSTOMIZATION,
    RELEASES_LOCK,
    REPO_ROOT,
    cache_dir,
    release_mirror,
)
from gitops.upstream import go_modules

TAG = re.compile(r"^knative-v(?P<version>\d+\.\d+\.\d+)$")
VERSION_ARG = re.compile(r"^(?:knative-)?v?(?P<version>\d+\.\d+\.\d+)$")
LOCK_ENTRY = re.compile(r"^(?P<indent>\s+)(?P<url>https://\S+?):\s*(?P<value>\S+)\s*$")
# Knative's post-install Jobs: in the locked render as Argo CD PostSync hooks (base/platform/post-install/).
POST_INSTALL = (
    ("knative", "serving", "serving-post-install-jobs.yaml"),
    ("knative", "eventing", "eventing-post-install.yaml"),
    ("knative-extensions", "eventing-kafka-broker", "eventing-kafka-post-install.yaml"),
)
EXIT_UNAVAILABLE = 4

AssetId = tuple[str, str, str]  # org, repo, file: an asset across versions


class BumpError(RuntimeError):
    pass


@dataclass
class Hashed:
    asset: releases.ReleaseAsset
    digest: str | None
    source: str  # where the bytes came from, or why there are none


def asset_id(asset: releases.ReleaseAsset) -> AssetId:
    return (asset.org, asset.repo, asset.file)


def parse_version(raw: str) -> str:
    match = VERSION_ARG.match(raw.strip())
    if match is None:
        raise BumpError(f"VERSION must look like 1.24.0 (got {raw!r})")
    return match["version"]


def pinned_assets(root: Path) -> tuple[str, list[releases.ReleaseAsset]]:
    """The shared knative tag and every asset pinned with it; refuses a tree whose URLs disagree."""
    assets = []
    for url in releases.referenced_urls(root):
        try:
            asset = releases.ReleaseAsset.parse(url)
        except ValueError:
            continue
        if TAG.match(asset.tag):
            assets.append(asset)
    tags = sorted({a.tag for a in assets})
    if not tags:
        raise BumpError(f"no knative-vX.Y.Z release URL in the kustomizations under {root}")
    if len(tags) > 1:
        raise BumpError(f"the release URLs disagree on the version ({', '.join(tags)}): make them one tag first")
    return tags[0], assets


def retag(asset: releases.ReleaseAsset, tag: str) -> releases.ReleaseAsset:
    return releases.ReleaseAsset.parse(
        asset.url.replace(f"/releases/download/{asset.tag}/", f"/releases/download/{tag}/")
    )


def hash_asset(asset: releases.ReleaseAsset, mirror: Path, cache: Path) -> Hashed:
    mirrored = asset.mirror_path(mirror)
    if mirrored.is_file():
        return Hashed(asset, releases.sha256_of(mirrored), "mirror")
    try:
        # Always a fresh download (never a cached file): recording a digest must reflect the release itself.
        downloaded = releases.download(asset.url, asset.cache_path(cache))
    except httpx.HTTPError as error:
        return Hashed(asset, None, f"not in the mirror ({mirrored}) and the download failed: {error}")
    return Hashed(asset, releases.sha256_of(downloaded), "downloaded")


def _lock_by_asset(lock: dict[str, str | None]) -> dict[AssetId, tuple[str, str | None]]:
    found: dict[AssetId, tuple[str, str | None]] = {}
    for url, digest in lock.items():
        try:
            asset = releases.ReleaseAsset.parse(url)
        except ValueError:
            continue
        if TAG.match(asset.tag):
            found[asset_id(asset)] = (url, digest)
    return found


def rewrite_lock_text(text: str, new_entries: dict[AssetId, tuple[str, str | None]]) -> str:
    """Replace each knative entry line in place (comments and order kept); append entries the lock lacked."""
    pending = dict(new_entries)
    lines = text.splitlines(keepends=True)
    indent = "  "
    for i, line in enumerate(lines):
        match = LOCK_ENTRY.match(line.rstrip("\n"))
        if match is None:
            continue
        try:
            asset = releases.ReleaseAsset.parse(match["url"])
        except ValueError:
            continue
        indent = match["indent"]
        if asset_id(asset) in pending:
            url, digest = pending.pop(asset_id(asset))
            lines[i] = f"{indent}{url}: {digest or 'null'}\n"
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines += [f"{indent}{url}: {digest or 'null'}\n" for url, digest in pending.values()]
    return "".join(lines)


@dataclass
class Outcome:
    current: str
    target: str
    hashed: list[Hashed]
    blocking: list[str]  # why the lock cannot be written
    notes: list[str]
    written: list[Path]

    @property
    def unhashed(self) -> list[Hashed]:
        """Every asset without a digest: those that block the bump and those whose lock entry stays null."""
        return [h for h in self.hashed if h.digest is None]


def bump(root: Path, version: str, mirror: Path, cache: Path) -> Outcome:
    current, assets = pinned_assets(root)
    target = f"knative-v{version}"
    lock = _lock_by_asset(releases.load_lock(root))
    stale = set(lock) - {asset_id(a) for a in assets}
    if stale:
        urls = ", ".join(lock[s][0] for s in sorted(stale))
        raise BumpError(f"the lock has entries no kustomization references ({urls}): remove them first")
    outcome = Outcome(current, target, [], [], [], [])
    new_entries: dict[AssetId, tuple[str, str | None]] = {}
    for asset in assets:
        new = retag(asset, target)
        hashed = hash_asset(new, mirror, cache)
        outcome.hashed.append(hashed)
        previous_url, previous = lock.get(asset_id(asset), (None, None))
        if hashed.digest is None:
            if previous is not None:
                outcome.blocking.append(new.url)
                continue
            outcome.notes.append(
                f"still unrecorded (null) because it cannot be fetched here: {new.url}; run the same bump where "
                "github.com is reachable to record it"
            )
        elif previous_url == new.url and previous not in (None, hashed.digest):
            raise BumpError(
                f"{new.url}: sha256 {hashed.digest} ({hashed.source}) but the lock says {previous}: a release asset "
                "never changes; find out why before trusting it (set its lock entry to null to re-record on purpose)"
            )
        elif previous_url == new.url and previous is None:
            outcome.notes.append(f"recorded the missing digest of {new.url}")
        new_entries[asset_id(asset)] = (new.url, hashed.digest)
    if outcome.blocking:
        return outcome
    lock_text = rewrite_lock_text((root / RELEASES_LOCK).read_text(), new_entries)
    written_lock = (YAML(typ="safe").load(lock_text) or {}).get("assets") or {}
    if _lock_by_asset(dict(written_lock)) != new_entries:
        raise BumpError(f"rewriting {RELEASES_LOCK} did not produce the expected entries: edit it by hand")
    changes: dict[Path, str] = {}
    for kustomization in releases.kustomization_files(root):
        text = kustomization.read_text()
        updated = text
        for asset in assets:
            updated = updated.replace(asset.url, retag(asset, target).url)
        if updated != text:
            changes[kustomization] = updated
    if lock_text != (root / RELEASES_LOCK).read_text():
        changes[root / RELEASES_LOCK] = lock_text
    try:
        modules = go_modules.update(root, version)
    except go_modules.ModuleUpdateError as error:
        raise BumpError(
            f"the admission stage's Go modules cannot move to Knative {version}: {error}. NOTHING was changed. "
            f"Run `make bump VERSION={version}` where Go and the Go module proxy (proxy.golang.org) are reachable: "
            "go.mod, go.sum, the release URLs and the lock must change together"
        ) from error
    if modules.files:
        changes.update(modules.files)
        outcome.notes.append(
            "Go modules of the admission stage: " + ", ".join(f"{m} {v}" for m, v in modules.versions.items())
        )
    for path, text in changes.items():
        partial = path.with_suffix(path.suffix + ".bump")
        partial.write_text(text)
        partial.replace(path)
        outcome.written.append(path)
    return outcome


def _version_tuple(tag: str) -> tuple[int, ...]:
    return tuple(int(p) for p in TAG.match(tag)["version"].split("."))  # type: ignore[index]


def report(outcome: Outcome, root: Path) -> list[str]:
    version = TAG.match(outcome.target)["version"]  # type: ignore[index]
    lines = [f"bump: {outcome.current} → {outcome.target} ({len(outcome.hashed)} release assets)"]
    old, new = _version_tuple(outcome.current), _version_tuple(outcome.target)
    if new < old:
        lines.append("  WARNING: this is a downgrade; Knative supports upgrades only")
    elif new[:2] > (old[0], old[1] + 1):
        lines.append("  WARNING: Knative upgrades one minor version at a time; bump through each minor in turn")
    for h in outcome.hashed:
        name = f"{h.asset.repo}/{h.asset.file}"
        status = f"sha256 {h.digest} ({h.source})" if h.digest else f"UNAVAILABLE: {h.source}"
        lines.append(f"  {name}: {status}")
    lines += [f"  note: {n}" for n in outcome.notes]
    unhashed = outcome.unhashed
    if outcome.blocking:
        lines += [
            f"bump: could not hash {len(unhashed)} of {len(outcome.hashed)} asset(s); NOTHING was changed (URLs and "
            "lock untouched):",
            *[f"  {h.asset.url}" for h in unhashed],
            f"next steps: run `make bump VERSION={version}` where github.com is reachable (CI, a laptop), or put",
            f"  the files in the mirror as {outcome.target}/<repo>/<file>; then review with `make diff BASE=HEAD`",
            "  and commit the kustomization and the lock together.",
        ]
    else:
        if outcome.written:
            lines.append("bump: wrote " + ", ".join(str(p) for p in outcome.written))
        else:
            lines.append(f"bump: already at {outcome.target}; nothing to write")
        if unhashed:
            lines += [
                f"bump: INCOMPLETE: {len(unhashed)} of {len(outcome.hashed)} lock entries are still null (could not "
                f"be hashed here); `make hydrate` and CI refuse to deploy until they are recorded:",
                *[f"  {h.asset.url}" for h in unhashed],
                f"next step: run `make bump VERSION={version}` where github.com is reachable and commit "
                f"{RELEASES_LOCK}.",
            ]
    repos = sorted({(h.asset.org, h.asset.repo) for h in outcome.hashed})
    lines.append("release notes:")
    lines += [f"  https://github.com/{org}/{repo}/releases/tag/{outcome.target}" for org, repo in repos]
    if not outcome.blocking and outcome.current != outcome.target:
        lines += [
            f"the post-install Jobs ({', '.join(file for _, _, file in POST_INSTALL)}) moved with the rest: Argo CD "
            f"runs them as PostSync hooks after the sync ({POST_INSTALL_KUSTOMIZATION})",
            "review the rendered change with `make diff BASE=HEAD`",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="the Knative version, e.g. 1.24.0")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the tree to bump (default: this repo)")
    parser.add_argument(
        "--mirror", type=Path, default=None, help="offline release mirror (default: $KNATIVE_RELEASE_MIRROR)"
    )
    args = parser.parse_args(argv)
    try:
        version = parse_version(args.version)
        outcome = bump(args.root, version, args.mirror or release_mirror(), cache_dir())
    except BumpError as error:
        print(f"bump: {error}", file=sys.stderr)
        return 1
    print("\n".join(report(outcome, args.root)))
    # Non-zero while any lock entry is null: such a lock cannot deploy (`make hydrate` refuses it).
    return EXIT_UNAVAILABLE if outcome.unhashed else 0


if __name__ == "__main__":
    sys.exit(main())
