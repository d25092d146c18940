"""`make render ENV=<env>`: the manifest stream Argo CD would apply, built offline.

Argo CD runs `kustomize build overlays/<env>` with the upstream release URLs. Here those URLs cannot be reached,
so the tree is copied to a scratch directory where every URL resource is replaced by its verified local copy
(mirror or cache, checked against base/platform/releases.lock.yaml). Nothing else changes: same kustomize version,
same default load restrictor, same files.

The one build per environment turns on kustomize's `buildMetadata: [originAnnotations, transformerAnnotations]`
(config.kubernetes.io/origin: the file an object was loaded from; alpha.config.kubernetes.io/transformations:
the kustomizations whose patches/images ran over it; kustomize api/internal/utils/annotations.go). Findings and
diff lines use them to name the overlay file that set a value; both annotations are then removed, so the output
is exactly the objects Argo CD's own `kustomize build` produces (tests/core/test_render.py compares the two).
"""

import argparse
import fnmatch
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gitops.core import cache as result_cache
from gitops.core import manifests, releases, upstream_source
from gitops.core.errors import UserError, display_path, yaml_error
from gitops.core.paths import (
    ENVIRONMENTS_DIR,
    MIRROR_ENV,
    PLATFORM_KUSTOMIZATION,
    POST_INSTALL_KUSTOMIZATION,
    REPO_ROOT,
    cache_dir,
    overlay_names,
    release_mirror,
)
from gitops.core.signals import sigterm_unwinds
from gitops.core.tools import pinned_versions, tool

FIELD_STEP = re.compile(r"\.([^.\[]+)|\[([^\]]+)\]")
ORIGIN = "config.kubernetes.io/origin"
TRANSFORMATIONS = "alpha.config.kubernetes.io/transformations"
UPSTREAM_DIR = "_upstream"


STAND_IN_NOTE = "checked against the {version} sources, not the release bytes"


class RenderError(UserError):
    """The environment cannot be rendered: one line saying where and how to fix it (gitops.core.errors)."""


class MirrorMissing(RenderError):
    """No release mirror, and the asset is not cached either: nothing upstream can be rendered."""


@dataclass(frozen=True)
class Setter:
    """A patch file or kustomization field that changed an object after it was loaded from `origin`."""

    path: str  # repo-relative, e.g. overlays/prod/delivery.yaml
    transformer: str  # kustomize's builtin kind, e.g. PatchTransformer, ImageTagTransformer


@dataclass(frozen=True)
class Patch:
    """A patch that kustomize applied to an object: its file (repo-relative) and its document."""

    path: str
    doc: Any  # a strategic-merge patch (dict) or a JSON 6902 operation list

    def sets(self, steps: list[str]) -> bool:
        """Whether this patch writes the field at `steps` (or a parent of it)."""
        if isinstance(self.doc, list):
            for op in self.doc:
                target = [s.replace("~1", "/").replace("~0", "~") for s in str(op.get("path", "")).split("/")[1:]]
                if target and target == steps[: len(target)]:
                    return True
            return False
        node: Any = self.doc
        for i, step in enumerate(steps):
            if isinstance(node, dict) and step not in node and ".".join(steps[i:]) in node:
                return True  # a dotted key split as a path: metadata.annotations.autoscaling.knative.dev/max-scale
            if isinstance(node, dict) and step in node:
                node = node[step]
            elif isinstance(node, list):
                named = [i for i in node if isinstance(i, dict) and i.get("name") == step]
                if named:
                    node = named[0]
                elif step.isdigit() and int(step) < len(node):
                    node = node[int(step)]
                else:
                    return False
            else:
                return False
        return True


@dataclass
class RenderResult:
    env: str
    text: str
    objects: list[manifests.Obj]
    omitted: list[releases.Unavailable] = field(default_factory=list)
    # Objects of left-out assets rebuilt from their upstream sources (gitops.core.upstream_source), built with the
    # same patches but NOT part of `objects` or `text`: Argo CD applies the release bytes, which the render lacks.
    # Checks may judge their shapes (labels, replicas, securityContext) and must say so (STAND_IN_NOTE).
    stand_ins: list[manifests.Obj] = field(default_factory=list)
    stood_in: list[str] = field(default_factory=list)  # the left-out asset URLs that have stand-ins
    # Where each object comes from: a repo-relative file or an upstream release URL.
    origins: dict[manifests.ObjKey, str] = field(default_factory=dict)
    setters: dict[manifests.ObjKey, list[Setter]] = field(default_factory=dict)
    # Per object, the patches applied to it in order (overlay and component files), for field-level origins.
    patches: dict[manifests.ObjKey, list[Patch]] = field(default_factory=dict)

    def origin(self, obj: manifests.Obj) -> str:
        return self.origins.get(manifests.ObjKey.of(obj), "?")

    def is_upstream(self, obj: manifests.Obj) -> bool:
        """Loaded from a remote resource (a pinned upstream release asset), not from a file of this repository."""
        return releases.is_remote(self.origin(obj))

    def fields_origin(self, obj: manifests.Obj, field_paths: list[str]) -> str:
        """The file that set the first of `field_paths` an overlay or component changed (an upstream refusal names
        the fields it refuses), else the file the object was loaded from."""
        key = manifests.ObjKey.of(obj)
        loaded = self.origin(obj)
        for path in field_paths:
            where = self.field_origin(key, _named_steps(obj, path))
            if where not in (loaded, "?"):
                return where
        return loaded

    def field_origin(self, key: manifests.ObjKey, field_path: str) -> str:
        """The file that set `field_path` (a diff engine path such as `spec.delivery.retry` or
        `data[default.topic.partitions]`) on the object: the last patch writing it, else the kustomization whose
        images field rewrote it, else the file the object was loaded from."""
        steps = [a or b for a, b in FIELD_STEP.findall("." + field_path.split(" ", 1)[0].lstrip("."))]
        for patch in reversed(self.patches.get(key, [])):
            if patch.sets(steps):
                return patch.path
        if steps and steps[-1] == "image":
            for setter in reversed(self.setters.get(key, [])):
                if setter.transformer == "ImageTagTransformer":
                    return setter.path
        return self.origins.get(key, "?")


def _named_steps(obj: manifests.Obj, field_path: str) -> str:
    """`field_path` with each list index of a named item replaced by its name (`containers[0].env[3]` ->
    `containers[notifications].env[PORT]`): a strategic-merge patch matches list items by name, never by position,
    so an index into the rendered object says nothing about which patch wrote the item."""
    steps = [a or b for a, b in FIELD_STEP.findall("." + field_path.split(" ", 1)[0].lstrip("."))]
    node: Any = obj
    out = []
    for step in steps:
        if isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
            name = node.get("name") if isinstance(node, dict) else None
            out.append(f"[{name}]" if isinstance(name, str) else f"[{step}]")
            continue
        out.append(f"[{step}]" if "." in step or "/" in step else f".{step}")
        node = node.get(step) if isinstance(node, dict) else None
    return "".join(out).lstrip(".")


def _load_kustomization(yaml: YAML, kustomization: Path, work: Path) -> Any:
    """Parse a kustomization copied into `work`; a syntax error names the repository file and line."""
    try:
        return yaml.load(kustomization.read_text())
    except YAMLError as error:
        raise yaml_error(kustomization, work, error, RenderError) from None


def _add_stand_in(kustomization: Path, asset: releases.ReleaseAsset, kept: list, stand_in_origins: dict) -> bool:
    """Write the left-out `asset`'s objects, rebuilt from the upstream sources, beside the kustomization and list
    them as resources; False when it has no stand-in. Each object's origin names the URL and the source file."""
    files = upstream_source.stand_in_texts(asset.file, asset.tag)
    if files is None:
        return False
    folder = kustomization.parent / UPSTREAM_DIR / f"stand-in--{asset.repo}--{asset.file}"
    folder.mkdir(parents=True, exist_ok=True)
    source = upstream_source.upstream_source_dir()
    for source_file, text in files:
        local = folder / source_file.name
        local.write_text(text)
        rebuilt = f"{source.name}/{source_file.relative_to(source)}"
        stand_in_origins[str(local.resolve())] = f"{asset.url} (rebuilt from {rebuilt})"
        kept.append(str(local.relative_to(kustomization.parent)))
    return True


def _rewrite_remote_resources(
    kustomization: Path, work: Path, lock: dict[str, str | None], mirror: Path, cache: Path, stand_in_origins: dict
) -> tuple[list[releases.Unavailable], dict[str, str]]:
    yaml = YAML()
    yaml.preserve_quotes = True
    doc = _load_kustomization(yaml, kustomization, work)
    resources = doc.get("resources") if isinstance(doc, dict) else None
    if not resources:
        return [], {}
    omitted: list[releases.Unavailable] = []
    local_to_url: dict[str, str] = {}
    kept = []
    for entry in resources:
        if not (isinstance(entry, str) and releases.is_remote(entry)):
            kept.append(entry)
            continue
        where = display_path(kustomization, work)
        if entry not in lock:
            raise RenderError(
                f"{entry} has no entry in {releases.RELEASES_LOCK}", where=where, fix="run `make bump VERSION=<v>`"
            )
        asset = releases.ReleaseAsset.parse(entry)
        if not mirror.is_dir() and not asset.cache_path(cache).is_file():
            raise MirrorMissing(
                f"release mirror not found: looked in {mirror}",
                where=where,
                fix=f"set {MIRROR_ENV} to the directory holding the pinned release assets "
                "(default: ../shared/releases beside the repository)",
            )
        found = releases.verified_copy(asset, lock[entry], mirror, cache)
        if isinstance(found, releases.Unavailable):
            omitted.append(found)
            _add_stand_in(kustomization, asset, kept, stand_in_origins)
            continue
        local = kustomization.parent / UPSTREAM_DIR / f"{asset.repo}--{asset.file}"
        local.parent.mkdir(exist_ok=True)
        shutil.copyfile(found, local)
        local_to_url[str(local.resolve())] = entry
        kept.append(f"{UPSTREAM_DIR}/{local.name}")
    resources[:] = kept
    yaml.dump(doc, kustomization)
    return omitted, local_to_url


# What the render's scratch copy leaves out (and so what its cache key does not read).
COPY_IGNORE = ("__pycache__", "*.egg-info", ".venv", "node_modules", "*.pyc")


def _copy_tree(root: Path, dest: Path) -> None:
    ignore = shutil.ignore_patterns(*COPY_IGNORE)
    for top in releases.KUSTOMIZE_DIRS:
        if (root / top).is_dir():
            shutil.copytree(root / top, dest / top, ignore=ignore)


# Go's collector at its default (GOGC=100) takes a fifth of a build's CPU: with buildMetadata on, kustomize
# allocates ~3x what a plain build does. At 400 a build here took 1.7 CPU-s instead of 2.2 for 118 MB of memory
# instead of 82 (docs/benchmarks.md); the output is the same bytes. A GOGC the user set wins.
KUSTOMIZE_GOGC = "400"


def _kustomize_build(path: Path, work: Path) -> str:
    proc = subprocess.run(
        [tool("kustomize"), "build", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "GOGC": os.environ.get("GOGC", KUSTOMIZE_GOGC)},
    )
    if proc.returncode != 0:
        # kustomize's last "Error: ..." says what is wrong, whole: it may span lines (a patch's config is quoted
        # over several, the missing file's name comes after it), so it runs to the end, joined into one line.
        # The scratch copy's paths become repo paths.
        lines = [line.strip() for line in proc.stderr.strip().splitlines() if line.strip()]
        lines = lines or [f"exit {proc.returncode}"]
        start = max((i for i, line in enumerate(lines) if line.startswith("Error:")), default=len(lines) - 1)
        message = " ".join(lines[start:]).removeprefix("Error: ")
        message = message.replace(f"{work.resolve()}/", "").replace(f"{work}/", "")
        raise RenderError(
            f"kustomize build failed: {message}",
            where=_blamed_file(message, work) or display_path(path, work),
            fix="fix that kustomization or the file it names (`kustomize build` shows the same error)",
        )
    return proc.stdout


def _blamed_file(message: str, work: Path) -> str | None:
    """The repository file a kustomize error is about, when it names one: the last directory it recursed into
    (`recursed accumulation of path 'base/eventing'`) and the file it read there (`in File: triggers.yaml`). A
    mistake in a shared file is then one finding at that file for every overlay that builds it, not one per overlay
    at each overlay's directory."""
    directories = re.findall(r"path '([^']+)'", message)
    files = re.findall(r"in File: (\S+)", message)
    if not files:
        return None
    candidate = work / (directories[-1] if directories else "") / files[-1]
    return display_path(candidate, work) if candidate.is_file() else None


def render_env(
    env: str, root: Path = REPO_ROOT, *, mirror: Path | None = None, cache: result_cache.ResultCache | None = None
) -> RenderResult:
    """One `kustomize build` of overlays/<env>, with origin and transformer annotations turned on so findings and
    diff lines can name the file that set a value; those annotations are stripped again, so `text` and
    `objects` are exactly what `kustomize build` (and Argo CD) produce without them.

    With a `cache` (validate's), a render whose inputs all have the digest of a stored one is that stored render:
    see render_inputs_digest for what the key covers."""
    known = overlay_names(root)  # not environments.yaml: rendering needs no facts, and a base tree may predate it
    if env not in known:
        raise RenderError(
            f"unknown environment {env!r} (known: {', '.join(known) or 'none'})",
            where=f"overlays/{env}/kustomization.yaml",
            fix="see docs/forking.md, 'Add an environment'",
        )
    mirror = mirror or release_mirror()
    lock = releases.load_lock(root)
    key = render_inputs_digest(env, root, lock, mirror) if cache is not None and cache.enabled else None
    if key is not None and cache is not None:
        stored = cache.get("render", key, binary=True)
        if isinstance(stored, RenderResult) and stored.env == env:
            return stored
    result = _build(env, root, mirror, lock)
    if key is not None and cache is not None:
        cache.put("render", key, result, binary=True)
    return result


def _tree_files(root: Path, env: str) -> list[Path]:
    """The files _copy_tree copies that the build of overlays/<env> can read, in a stable order: everything but the
    other overlays, unless a kustomization that is read names a path inside one of them."""
    others = {name for name in overlay_names(root) if name != env}
    found: list[Path] = []
    for top in releases.KUSTOMIZE_DIRS:
        for dirpath, dirs, files in os.walk(root / top, followlinks=True):
            here = Path(dirpath)
            if here == root / ENVIRONMENTS_DIR:
                dirs[:] = [d for d in dirs if d not in others]
            dirs[:] = sorted(d for d in dirs if not _ignored(d))
            found.extend(here / f for f in sorted(files) if not _ignored(f))
    named = _named_overlays(root, [f for f in found if f.name in KUSTOMIZATION_NAMES], others)
    for other in sorted(named):
        found += _tree_files(root, other)
    return sorted(set(found))


KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def _named_overlays(root: Path, kustomizations: list[Path], overlays: set[str]) -> set[str]:
    """The overlays among `overlays` that a string in one of these kustomizations points into (as a relative path):
    only kustomizations name other files, so this is every way a build can reach another overlay."""
    targets = {name: (root / ENVIRONMENTS_DIR / name).resolve() for name in overlays}
    named: set[str] = set()
    for path in kustomizations:
        try:
            doc = pyyaml.load(path.read_text(), Loader=getattr(pyyaml, "CSafeLoader", pyyaml.SafeLoader))
        except (OSError, pyyaml.YAMLError):  # the build reports it; meanwhile play safe: every overlay is an input
            return set(overlays)
        for value in _strings(doc):
            candidate = (path.parent / value).resolve() if not releases.is_remote(value) else None
            for name, target in targets.items():
                if candidate is not None and (candidate == target or target in candidate.parents):
                    named.add(name)
    return named


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in COPY_IGNORE)


def render_inputs_digest(env: str, root: Path, lock: dict[str, str | None], mirror: Path) -> str | None:
    """The digest of everything one render reads: the files of the copied tree it can reach (path and bytes), the lock, the
    bytes of each locked release asset found in the mirror or cache, kustomize (version pin and binary) and this
    code. None when an asset with a locked digest is neither in the mirror nor in the cache: the render would try
    to download it, so its result must not be reused."""
    parts: list[str | bytes] = [
        "render-v1",
        env,
        result_cache.code_digest(sys.modules[__name__], manifests, releases, upstream_source),
        result_cache.tool_identity(tool("kustomize"), pinned_versions().get("KUSTOMIZE_VERSION", "")),
    ]
    for path in _tree_files(root, env):
        parts += [str(path.relative_to(root)), result_cache.file_digest(path)]
    for url, expected in sorted(lock.items()):
        parts += [url, expected or "-"]
        if expected is None and releases.RELEASE_URL.match(url):
            # A left-out asset is stood in by its objects rebuilt from the upstream sources: they are an input too.
            asset = releases.ReleaseAsset.parse(url)
            for source_file, text in upstream_source.stand_in_texts(asset.file, asset.tag) or []:
                parts += [str(source_file), text]
        if expected is None or not releases.RELEASE_URL.match(url):
            continue
        asset = releases.ReleaseAsset.parse(url)
        found = next((p for p in (asset.mirror_path(mirror), asset.cache_path(cache_dir())) if p.is_file()), None)
        if found is None:
            return None
        parts.append(result_cache.file_digest(found))
    return result_cache.digest(*parts)


def _build(env: str, root: Path, mirror: Path, lock: dict[str, str | None]) -> RenderResult:
    with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix=f"render-{env}-") as scratch:
        work = Path(scratch)
        _copy_tree(root, work)
        omitted: list[releases.Unavailable] = []
        local_to_url: dict[str, str] = {}
        stand_in_origins: dict[str, str] = {}
        for kustomization in releases.kustomization_files(work):
            left_out, mapping = _rewrite_remote_resources(
                kustomization, work, lock, mirror, cache_dir(), stand_in_origins
            )
            omitted += left_out
            local_to_url.update(mapping)
        post_install(work, local_to_url)
        overlay = work / "overlays" / env
        added = _add_build_metadata(overlay / "kustomization.yaml", work)
        annotated_text = _kustomize_build(overlay, work)
        documents = manifests.split_documents(annotated_text)
        if documents is None:
            annotated = manifests.load_stream(annotated_text)
        else:
            annotated = [manifests.load_document(d) or {} for d in documents]
        origins = _origins(annotated, overlay, work, {**local_to_url, **stand_in_origins})
        setters = _setters(annotated, overlay, work)
        patches = _patches(annotated, setters, work)
    stood_in = set(stand_in_origins.values())
    rebuilt = [origins.get(manifests.ObjKey.of(obj)) in stood_in for obj in annotated]
    everything = [_strip_build_metadata(obj, added) for obj in annotated]
    objects = [obj for obj, stand_in in zip(everything, rebuilt, strict=True) if not stand_in]
    if documents is None:
        text = _stripped_text(_drop_documents(annotated_text, rebuilt, annotated), added, objects)
    else:
        kept = [doc for doc, stand_in in zip(documents, rebuilt, strict=True) if not stand_in]
        text = _stripped_documents(kept, added, objects)
    return RenderResult(
        env=env,
        text=text,
        objects=objects,
        omitted=omitted,
        stand_ins=[obj for obj, stand_in in zip(everything, rebuilt, strict=True) if stand_in],
        stood_in=[gap.url for gap in omitted if any(o.startswith(gap.url + " ") for o in stood_in)],
        origins=origins,
        setters=setters,
        patches=patches,
    )


GENERATE_NAME = re.compile(r"^(?P<indent>  )generateName: (?P<prefix>[a-z0-9.-]+?)-?$", re.M)


def post_install(work: Path, local_to_url: dict[str, str]) -> bool:
    """Add base/platform/post-install (Knative's post-install Jobs, lock-verified like every asset) to the
    platform build of the scratch copy `work`. Upstream's Jobs have only metadata.generateName, which kustomize
    refuses, so each verified copy's Job is named after its prefix (`storage-version-migration-serving-` ->
    `storage-version-migration-serving`): a PostSync hook with BeforeHookCreation is deleted and created again on
    every sync, so one fixed name suffices (Argo CD v3.5.1 docs/user-guide/sync-waves.md: "meant to be used
    with /metadata/name"). Only the render does this:
    plain `kustomize build` never reads that kustomization. False when the tree has none."""
    kustomization = work / POST_INSTALL_KUSTOMIZATION
    platform = work / PLATFORM_KUSTOMIZATION
    if not (kustomization.is_file() and platform.is_file()):
        return False
    for local in local_to_url:
        path = Path(local)
        if path.is_relative_to(kustomization.parent.resolve()):
            path.write_text(GENERATE_NAME.sub(r"\g<indent>name: \g<prefix>", path.read_text()))
    yaml = YAML()
    yaml.preserve_quotes = True
    doc = _load_kustomization(yaml, platform, work)
    doc.setdefault("resources", []).append(kustomization.parent.name)
    yaml.dump(doc, platform)
    return True


def _drop_documents(text: str, drop: list[bool], annotated: list[manifests.Obj]) -> str:
    """kustomize's output without the documents flagged in `drop` (the stand-ins), when its documents could not be
    split one per object: the kept objects dumped (_stripped_text then compares and keeps whichever loads back
    equal)."""
    if not any(drop):
        return text
    return manifests.dump_stream(obj for obj, dropped in zip(annotated, drop, strict=True) if not dropped)


# buildMetadata option -> the annotation it adds (kustomize api/internal/utils/annotations.go).
BUILD_METADATA = {"originAnnotations": ORIGIN, "transformerAnnotations": TRANSFORMATIONS}


def _add_build_metadata(kustomization: Path, work: Path) -> set[str]:
    """Turn on origin/transformer annotations; returns the annotation keys that were not already on (to strip)."""
    yaml = YAML()
    doc = _load_kustomization(yaml, kustomization, work)
    existing = list(doc.get("buildMetadata") or [])
    missing = [option for option in BUILD_METADATA if option not in existing]
    if missing:
        doc["buildMetadata"] = existing + missing
        yaml.dump(doc, kustomization)
    return {key for option, key in BUILD_METADATA.items() if option not in existing}


def _stripped_text(text: str, keys: set[str], objects: list[manifests.Obj]) -> str:
    """kustomize's own output without the `keys` annotations (see _stripped_lines); if the result does not load
    back as exactly `objects`, the objects are dumped instead (same content, PyYAML's layout)."""
    stripped = _stripped_lines(text, keys)
    return stripped if manifests.load_stream(stripped) == objects else manifests.dump_stream(objects)


def _stripped_documents(documents: list[str], keys: set[str], objects: list[manifests.Obj]) -> str:
    """_stripped_text for a stream already split into its documents, one per object: each document is stripped
    and compared on its own (most are the same bytes in every environment, and parsed once per process)."""
    stripped = [_stripped_lines(doc, keys) for doc in documents]
    if len(stripped) == len(objects) and all(
        manifests.load_document(doc) == obj for doc, obj in zip(stripped, objects, strict=True)
    ):
        return "---\n".join(stripped)
    return manifests.dump_stream(objects)


def _stripped_lines(text: str, keys: set[str]) -> str:
    """`text` without the `keys` annotations, every other byte kustomize's (what Argo CD's build prints, and what
    `make hydrate` commits). kustomize writes metadata.annotations entries at indent 4, a block value below them
    deeper; an emptied `annotations:` line goes too."""
    prefixes = tuple(f"    {key}:" for key in keys)
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        if line.startswith(prefixes):
            skipping = True
            continue
        if skipping and (line.startswith("     ") or line.strip() == ""):
            continue
        skipping = False
        if kept and kept[-1] == "  annotations:\n" and not line.startswith("    "):
            kept.pop()
        kept.append(line)
    if kept and kept[-1] == "  annotations:\n":
        kept.pop()
    return "".join(kept)


def _strip_build_metadata(obj: manifests.Obj, keys: set[str]) -> manifests.Obj:
    annotations = manifests.meta(obj).get("annotations")
    if isinstance(annotations, dict):
        for key in keys:
            annotations.pop(key, None)
        if not annotations:
            del obj["metadata"]["annotations"]
    return obj


def _repo_path(path: str, base: Path, work: Path, local_to_url: dict[str, str]) -> str:
    resolved = (base / path).resolve()
    if str(resolved) in local_to_url:
        return local_to_url[str(resolved)]
    return os.path.relpath(resolved, work.resolve())


def _load_annotation(raw: str) -> Any:
    """A build-metadata annotation's YAML (kustomize writes plain maps and lists of strings), with libyaml: the
    pure-Python loader took most of a render's own CPU time on the ~220 transformation lists. The same few dozen
    values recur on every object and environment: each is parsed once per process (callers only read it)."""
    return _annotation_value(raw)


@functools.lru_cache(maxsize=4096)
def _annotation_value(raw: str) -> Any:
    return pyyaml.load(raw, Loader=_ANNOTATION_LOADER)


_ANNOTATION_LOADER = getattr(pyyaml, "CSafeLoader", pyyaml.SafeLoader)


def _origins(
    objects: list[manifests.Obj], overlay: Path, work: Path, local_to_url: dict[str, str]
) -> dict[manifests.ObjKey, str]:
    origins: dict[manifests.ObjKey, str] = {}
    for obj in objects:
        raw = manifests.annotations(obj).get(ORIGIN, "")
        path = (_load_annotation(raw) or {}).get("path", "") if raw else ""
        origins[manifests.ObjKey.of(obj)] = _repo_path(path, overlay, work, local_to_url) if path else "?"
    return origins


def _setters(objects: list[manifests.Obj], overlay: Path, work: Path) -> dict[manifests.ObjKey, list[Setter]]:
    """Per object, the patches and transformers that changed it after it was loaded, in the order kustomize ran
    them (from the transformations annotation): a patch file, or the kustomization whose field (images, ...) did."""
    found: dict[manifests.ObjKey, list[Setter]] = {}
    resolved: dict[str, str] = {}  # ~40 distinct paths over ~9,000 entries
    top = work.resolve()
    for obj in objects:
        raw = manifests.annotations(obj).get(TRANSFORMATIONS, "")
        entries = _load_annotation(raw) if raw else None
        setters = []
        for entry in entries if isinstance(entries, list) else []:
            path = entry.get("path") or entry.get("configuredIn") or ""
            if not path:
                continue
            kind = (entry.get("configuredBy") or {}).get("kind", "")
            if path not in resolved:
                resolved[path] = os.path.relpath((overlay / path).resolve(), top)
            setters.append(Setter(resolved[path], kind))
        if setters:
            found[manifests.ObjKey.of(obj)] = setters
    return found


def _patches(
    objects: list[manifests.Obj], setters: dict[manifests.ObjKey, list[Setter]], work: Path
) -> dict[manifests.ObjKey, list[Patch]]:
    """The `patches:` of every kustomization that ran a PatchTransformer over an object, matched to it the way
    kustomize does: by the entry's `target` (kind/name/namespace/group), else by the patch's own kind and name."""
    loaded: dict[str, list[tuple[dict, str, Any]]] = {}
    found: dict[manifests.ObjKey, list[Patch]] = {}
    for obj in objects:
        key = manifests.ObjKey.of(obj)
        for kustomization in dict.fromkeys(s.path for s in setters.get(key, []) if s.transformer == "PatchTransformer"):
            if kustomization not in loaded:
                loaded[kustomization] = _patch_entries(work / kustomization, work)
            for target, path, doc in loaded[kustomization]:
                if _patch_matches(key, target, doc):
                    found.setdefault(key, []).append(Patch(path, doc))
    return found


def _patch_entries(kustomization: Path, work: Path) -> list[tuple[dict, str, Any]]:
    doc = YAML(typ="safe").load(kustomization.read_text()) or {}
    entries = []
    for entry in doc.get("patches") or []:
        if not isinstance(entry, dict):
            continue
        target = entry.get("target") or {}
        if entry.get("path"):
            file = kustomization.parent / entry["path"]
            where, text = display_path(file, work), file.read_text() if file.is_file() else ""
        else:
            where, text = display_path(kustomization, work), str(entry.get("patch") or "")
        for patch_doc in YAML(typ="safe").load_all(text):
            if patch_doc:
                entries.append((target, where, patch_doc))
    return entries


def _patch_matches(key: manifests.ObjKey, target: dict, doc: Any) -> bool:
    if target:
        wanted = {"kind": key.kind, "name": key.name, "namespace": key.namespace, "group": key.group}
        return all(target.get(field) in (None, value) for field, value in wanted.items())
    if not isinstance(doc, dict):
        return False
    meta = doc.get("metadata") or {}
    return (
        doc.get("kind") == key.kind
        and meta.get("name") == key.name
        and meta.get("namespace") in (None, key.namespace)
        and manifests.group_of(doc) == key.group
    )


def stand_in_note(url: str) -> str:
    """What a finding or report says about objects judged from the sources of the left-out asset `url`."""
    return STAND_IN_NOTE.format(version=releases.ReleaseAsset.parse(url).tag.removeprefix("knative-v"))


def report_omitted(results: list[RenderResult], stream=None) -> None:
    """The release assets these renders left out, as one warning block on stderr that nobody scrolls past: each
    asset once (however many environments miss it), why, and the fix. A render without them deploys a broken
    cluster, and `make hydrate` (so CI) refuses it (README, "Before the first push")."""
    gaps: dict[str, tuple[releases.Unavailable, list[str]]] = {}
    for result in results:
        for gap in result.omitted:
            gaps.setdefault(gap.url, (gap, []))[1].append(result.env)
    if not gaps:
        return
    count = f"{len(gaps)} release asset{'s' if len(gaps) > 1 else ''}"
    tags = sorted({releases.ReleaseAsset.parse(url).tag.removeprefix("knative-v") for url in gaps})
    rule = "!" * 100
    lines = [
        rule,
        f"WARNING: {count} LEFT OUT of this render; it cannot be deployed (`make hydrate` and CI refuse it):",
    ]
    for url, (gap, envs) in gaps.items():
        lines += [f"  LEFT OUT {url} ({', '.join(envs)})", f"    {gap.reason}"]
        if any(url in result.stood_in for result in results):
            lines.append(f"    its objects are {stand_in_note(url)}")
    lines += [
        f"  Fix: `make bump VERSION={tags[0] if len(tags) == 1 else '<version>'}` where github.com is reachable, then "
        f"commit {releases.RELEASES_LOCK} (README, 'Before the first push').",
        rule,
    ]
    print("\n".join(lines), file=stream or sys.stderr)  # looked up when called: a redirected stderr gets it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", help="an overlay under overlays/")
    args = parser.parse_args(argv)
    try:
        result = render_env(args.env)
    except UserError as error:  # RenderError, DigestMismatch, a missing lock or tool...
        print(f"render {args.env}: {error}", file=sys.stderr)
        return error.exit_code
    sys.stdout.write(result.text)
    report_omitted([result])
    return 0


if __name__ == "__main__":
    sys.exit(main())
