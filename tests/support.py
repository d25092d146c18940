"""Helpers shared by the tests: a made-up environment, running one check, finding an object, adding an environment,
a mirror and lock complete enough to hydrate (stand-ins for the assets the lock has no digest of)."""

import atexit
import copy
import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from gitops.core import manifests
from gitops.core.cache import ResultCache
from gitops.core.paths import MANIFEST_TREE, RELEASES_LOCK, REPO_ROOT, release_mirror
from gitops.core.render import RenderResult
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import catalogue, registered

TREE = MANIFEST_TREE


# An environment name no fork would pick, for tests that add one to a copy of the tree.
MADE_UP_ENV = "zz-test-env"


def checks_of(*modules: object, scope: str | None = None) -> list[Callable]:
    """The registered check functions of these modules (scope "env" or "repo": only those), in validate's order."""
    names = {getattr(m, "__name__", m) for m in modules}
    return [c.func for c in catalogue() if c.func.__module__ in names and scope in (None, c.scope)]


def run_check(
    check: Callable[[EnvContext], Iterable[Finding]], render: RenderResult, root: Path = REPO_ROOT
) -> list[Finding]:
    """Run one environment check through its catalogue entry, which also fails on a finding of another id; with
    and without the result store, which must find the same (same_with_and_without_cache)."""
    return same_with_and_without_cache(lambda cache: registered(check).run(EnvContext(root, render, cache)))


T = TypeVar("T")
_store: list[Path] = []


def results_store() -> Path:
    """One store of stage results for the whole test session, removed at exit: results that tests of different
    mistakes put in it sit side by side, so a key that left out something a result depends on shows up as a wrong
    hit in another test, not only within one."""
    if not _store:
        _store.append(Path(tempfile.mkdtemp(prefix="gitops-test-results-")))
        atexit.register(shutil.rmtree, _store[0], True)
    return _store[0]


def same_with_and_without_cache(run: Callable[[ResultCache], T]) -> T:
    """run(cache) with no store, with the session's store, then again with it (every lookup a hit): the three give
    the same findings (issue 21: stored results change nothing but time). Returns the result without a store."""
    reference = run(ResultCache(enabled=False))
    assert_stored_results_agree(run, reference)
    return reference


def assert_stored_results_agree(
    run: Callable[[ResultCache], T], reference: Any, store: Path | None = None, *, every_lookup_hits: bool = True
) -> ResultCache:
    """run(cache) with `store` (default: the session's), then again, each giving `reference`; returns the second
    run's cache. The second run finds every result stored unless told otherwise (a tool that failed as a whole, a
    render that did not build, leaves nothing to store)."""
    store = store or results_store()
    stored = run(ResultCache(root=store))
    warm = ResultCache(root=store)
    again = run(warm)
    hits, lookups = warm.hit_rate()
    if every_lookup_hits:
        assert hits == lookups, f"the second run with the store still missed {lookups - hits} of {lookups} results"
    assert comparable(stored) == comparable(reference), "with the store, the findings differ from a run without"
    assert comparable(again) == comparable(reference), "read back from the store, the findings differ"
    return warm


def comparable(result: Any) -> Any:
    """Findings, warnings or a validate Report as the sorted lines validate prints (stages may finish in any
    order); a Report gives (findings, waived findings with their reasons, warnings)."""
    if isinstance(result, tuple):
        return tuple(comparable(part) for part in result)
    if isinstance(result, list):
        return sorted(str(item) for item in result)
    if hasattr(result, "findings") and hasattr(result, "waived"):  # a validate Report
        return (
            comparable(result.findings),
            sorted(f"{f} because {w.reason}" for f, w in result.waived),
            comparable(result.warnings),
        )
    return result


def obj(render: RenderResult, group: str, kind: str, namespace: str, name: str) -> manifests.Obj:
    found = manifests.find(render.objects, group, kind, namespace, name)
    assert found is not None, f"{kind} {namespace}/{name} not in the {render.env} render"
    return found


def add_environment(root: Path, env: str, like: str, **facts: object) -> None:
    """Add overlays/<env> (a copy of <like>'s) and its environments.yaml entry (<like>'s facts, then `facts`)."""
    from ruamel.yaml import YAML

    shutil.copytree(root / "overlays" / like, root / "overlays" / env)
    yaml = YAML()
    path = root / "environments.yaml"
    doc = yaml.load(path.read_text())
    doc["environments"][env] = {**copy.deepcopy(dict(doc["environments"][like])), **facts}
    yaml.dump(doc, path)


RELEASES = "https://github.com/knative-extensions/eventing-kafka-broker/releases/download/knative-v1.23.0/"
BROKER_ASSET = RELEASES + "eventing-kafka-broker.yaml"
SINK_ASSET = RELEASES + "eventing-kafka-sink.yaml"
# upstream's prometheus-operator scrape objects (base/platform/kustomization.yaml order)
MONITORING_ASSETS = tuple(
    RELEASES + f"eventing-kafka-{c}-prometheus-operator.yaml" for c in ("controller", "broker", "sink", "source")
)
# The lock entries with no recorded digest, which no offline copy exists of: the Kafka Broker data plane, the
# KafkaSink data plane and the prometheus-operator assets (base/platform/releases.lock.yaml), in render order. Tests
# that need them make stand-ins, hashed here.
UNLOCKED_ASSETS = (BROKER_ASSET, SINK_ASSET, *MONITORING_ASSETS)


def stand_in_asset(url: str) -> str:
    """A made-up data-plane asset: one ConfigMap named like the real one (config-kafka-<broker|sink>-data-plane)."""
    component = url.rsplit("/", 1)[-1].removeprefix("eventing-").removesuffix(".yaml")
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: config-{component}-data-plane
  namespace: knative-eventing
data:
  config-{component}-producer.properties: |
    acks=all
"""


TEST_ASSET = stand_in_asset(BROKER_ASSET)


def data_plane_asset(url: str) -> str:
    """A data plane release asset (eventing-kafka-broker.yaml, eventing-kafka-sink.yaml) as the release builds it from
    its 1.23 sources (gitops/core/upstream_source.py), images pinned to made-up digests: what `make bump` would lock,
    as far as this machine can know it."""
    from gitops.core import upstream_source

    asset = url.rsplit("/", 1)[-1]
    component = upstream_source.component_of(asset)
    if component is None:  # a prometheus-operator asset: its ServiceMonitors/PodMonitors, no images
        return manifests.dump_stream([o for _, objs in upstream_source.monitoring_files(asset) for o in objs])
    text = manifests.dump_stream(upstream_source.data_plane_objects(component))
    return re.sub(
        r"\$\{(KNATIVE_[A-Z_]+_IMAGE)\}",
        lambda m: f"registry.example/knative-releases/{m.group(1).lower().replace('_', '-')}@sha256:{'0' * 64}",
        text,
    )


def mirror_with_unlocked_assets(tmp_path: Path, assets: dict[str, str] | None = None) -> Path:
    """A mirror: links to every real mirrored asset plus a test-made stand-in for each unlocked one."""
    mirror = tmp_path / "mirror"
    for src in release_mirror().rglob("*.yaml"):
        dest = mirror / src.relative_to(release_mirror())
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(src)
    for url in UNLOCKED_ASSETS:
        target = mirror / "knative-v1.23.0" / "eventing-kafka-broker" / url.rsplit("/", 1)[-1]
        target.write_text((assets or {}).get(url, stand_in_asset(url)))
    return mirror


def lock_unlocked_assets(root: Path, mirror: Path) -> None:
    """Record in root's lock the sha256 of each stand-in that mirror_with_unlocked_assets wrote."""
    for url in UNLOCKED_ASSETS:
        path = mirror / "knative-v1.23.0" / "eventing-kafka-broker" / url.rsplit("/", 1)[-1]
        lock_digest(root, url, hashlib.sha256(path.read_bytes()).hexdigest())


def lock_digest(root: Path, url: str, digest: str) -> None:
    lock = root / RELEASES_LOCK
    text = lock.read_text()
    assert f"{url}: null" in text
    lock.write_text(text.replace(f"{url}: null", f"{url}: {digest}"))
