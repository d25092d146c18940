"""Repository-wide facts: one Knative version, and a lock that matches the URLs exactly."""

from collections.abc import Iterator

from gitops.core import releases
from gitops.core.paths import RELEASES_LOCK
from gitops.validate.findings import Finding, RepoContext
from gitops.validate.registry import repo_check


@repo_check("release-pins")
def check_release_pins(ctx: RepoContext) -> Iterator[Finding]:
    """Every release URL is a pinned GitHub release asset of one Knative version, recorded in the lock exactly."""
    urls = releases.referenced_urls(ctx.root)
    lock = releases.load_lock(ctx.root)
    tags: dict[str, list[str]] = {}
    for url, kustomization in urls.items():
        where = str(kustomization.relative_to(ctx.root))
        try:
            asset = releases.ReleaseAsset.parse(url)
        except ValueError as error:
            yield Finding("release-pins", "all", url, where, str(error))
            continue
        tags.setdefault(asset.tag, []).append(url)
        if url not in lock:
            yield Finding("release-pins", "all", url, where, f"not in {RELEASES_LOCK}: its digest is unchecked")
    if len(tags) > 1:
        summary = ", ".join(f"{tag} ({len(u)} assets)" for tag, u in sorted(tags.items()))
        yield Finding("release-pins", "all", "-", "base/platform", f"upstream assets mix release tags: {summary}")
    for url in lock.keys() - urls.keys():
        yield Finding(
            "release-pins",
            "all",
            url,
            str(RELEASES_LOCK),
            "locked but no kustomization references it (stale)",
        )
