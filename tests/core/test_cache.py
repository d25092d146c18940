"""The content-addressed store: whole entries or none, a miss for anything unreadable, nothing with --no-cache,
bounded by pruning the least recently used; a render is reused only when everything it reads is unchanged."""

import os
from pathlib import Path

from gitops.core import releases, render
from gitops.core.cache import ResultCache, digest
from gitops.core.paths import release_mirror


def test_entries_round_trip_and_appear_whole(tmp_path):
    cache = ResultCache(root=tmp_path)
    key = digest("a", "b")
    assert cache.get("stage", key) is None
    cache.put("stage", key, [{"msg": "x"}])
    assert cache.get("stage", key) == [{"msg": "x"}]
    files = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    assert [p.name for p in files] == [key]  # written aside and renamed: no temporary file is left
    assert (cache.counts["stage"].hits, cache.counts["stage"].misses) == (1, 1)


def test_parts_are_length_prefixed():
    assert digest("ab", "c") != digest("a", "bc")


def test_an_unreadable_entry_is_a_miss(tmp_path):
    cache = ResultCache(root=tmp_path)
    cache.put("stage", "k" * 64, {"a": 1})
    (tmp_path / "results" / "stage" / "kk" / ("k" * 64)).write_text("{half")
    assert cache.get("stage", "k" * 64) is None


def test_disabled_neither_reads_nor_writes(tmp_path):
    ResultCache(root=tmp_path).put("stage", "k" * 64, 1)
    off = ResultCache(enabled=False, root=tmp_path)
    assert off.get("stage", "k" * 64) is None
    off.put("stage", "j" * 64, 2)
    assert not (tmp_path / "results" / "stage" / "jj").exists()


def test_an_unwritable_store_costs_only_time(tmp_path):
    (tmp_path / "results").write_text("a file where the store's directory should be")
    cache = ResultCache(root=tmp_path)
    cache.put("stage", "k" * 64, 1)  # no exception
    assert cache.get("stage", "k" * 64) is None


def test_prune_keeps_the_store_bounded_dropping_the_least_recently_used(tmp_path):
    cache = ResultCache(root=tmp_path, max_bytes=4000)
    keys = [digest(str(i)) for i in range(10)]
    for i, key in enumerate(keys):
        cache.put("stage", key, "x" * 990)
        path = tmp_path / "results" / "stage" / key[:2] / key
        os.utime(path, ns=(i * 10**9, i * 10**9))
    assert cache.get("stage", keys[0]) is not None  # used now: the newest
    assert cache.prune() > 0
    left = {p.name for p in (tmp_path / "results").rglob("*") if p.is_file()}
    assert sum(p.stat().st_size for p in (tmp_path / "results").rglob("*") if p.is_file()) <= 3000
    assert keys[0] in left and keys[9] in left and keys[1] not in left


def inputs(root: Path, env: str) -> str | None:
    return render.render_inputs_digest(env, root, releases.load_lock(root), release_mirror())


def test_a_render_key_covers_what_the_build_reads(tree_copy):
    dev, prod = inputs(tree_copy, "dev"), inputs(tree_copy, "prod")
    assert dev and prod and dev != prod
    (tree_copy / "overlays/prod/scale.yaml").write_text((tree_copy / "overlays/prod/scale.yaml").read_text() + "\n")
    assert inputs(tree_copy, "dev") == dev  # another overlay's file is not an input of dev's build
    assert inputs(tree_copy, "prod") != prod
    (tree_copy / "base/eventing/triggers.yaml").write_text(
        "# changed\n" + (tree_copy / "base/eventing/triggers.yaml").read_text()
    )
    assert inputs(tree_copy, "dev") != dev
    dev = inputs(tree_copy, "dev")
    lock = tree_copy / "base/platform/releases.lock.yaml"
    lock.write_text(lock.read_text() + "\n# changed\n")
    assert inputs(tree_copy, "dev") != dev


def test_an_overlay_that_names_another_reads_it(tree_copy):
    dev = inputs(tree_copy, "dev")
    kustomization = tree_copy / "overlays/dev/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("path: scale.yaml", "path: ../prod/scale.yaml"))
    before = inputs(tree_copy, "dev")
    assert before != dev
    (tree_copy / "overlays/prod/scale.yaml").write_text((tree_copy / "overlays/prod/scale.yaml").read_text() + "\n")
    assert inputs(tree_copy, "dev") != before


def test_a_cached_render_is_the_render(tree_copy, tmp_path, monkeypatch):
    cache = ResultCache(root=tmp_path / "store")
    fresh = render.render_env("dev", tree_copy)
    first = render.render_env("dev", tree_copy, cache=cache)
    monkeypatch.setattr(render, "_kustomize_build", lambda *a: (_ for _ in ()).throw(AssertionError("rebuilt")))
    again = render.render_env("dev", tree_copy, cache=cache)
    for result in (first, again):
        assert (result.text, result.objects, result.origins, result.setters, result.patches, result.omitted) == (
            fresh.text,
            fresh.objects,
            fresh.origins,
            fresh.setters,
            fresh.patches,
            fresh.omitted,
        )
