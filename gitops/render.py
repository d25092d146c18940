"""`make render ENV=<env>`: the manifest stream Argo CD would apply, built offline.

Argo CD runs `kustomize build overlays/<env>` with the upstream release URLs. Here those URLs cannot be reached,
so the tree is copied to a scratch directory where every URL resource is replaced by its verified local copy
(mirror or cache, checked against base/platform/releases.lock.yaml). Nothing else changes: same kustomize version,
same default load restrictor, same files.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from gitops import manifests, releases
from gitops.paths import REPO_ROOT, cache_dir, environments, release_mirror
from gitops.tools import tool

ORIGIN = "config.kubernetes.io/origin"
UPSTREAM_DIR = "_upstream"


class RenderError(RuntimeError):
    pass


@dataclass
class RenderResult:
    env: str
    text: str
    objects: list[manifests.Obj]
    omitted: list[releases.Unavailable] = field(default_factory=list)
    # Where each object comes from: a repo-relative file or an upstream release URL.
    origins: dict[manifests.ObjKey, str] = field(default_factory=dict)

    def origin(self, obj: manifests.Obj) -> str:
        return self.origins.get(manifests.ObjKey.of(obj), "?")


def _rewrite_remote_resources(
    kustomization: Path, lock: dict[str, str | None], mirror: Path, cache: Path
) -> tuple[list[releases.Unavailable], dict[str, str]]:
    yaml = YAML()
    yaml.preserve_quotes = True
    doc = yaml.load(kustomization.read_text())
    resources = doc.get("resources") if doc else None
    if not resources:
        return [], {}
    omitted: list[releases.Unavailable] = []
    local_to_url: dict[str, str] = {}
    kept = []
    for entry in resources:
        if not (isinstance(entry, str) and entry.startswith(("http://", "https://"))):
            kept.append(entry)
            continue
        if entry not in lock:
            raise RenderError(f"{entry} (in {kustomization.name}) has no entry in the releases lock")
        asset = releases.ReleaseAsset.parse(entry)
        found = releases.verified_copy(asset, lock[entry], mirror, cache)
        if isinstance(found, releases.Unavailable):
            omitted.append(found)
            continue
        local = kustomization.parent / UPSTREAM_DIR / f"{asset.repo}--{asset.file}"
        local.parent.mkdir(exist_ok=True)
        shutil.copyfile(found, local)
        local_to_url[str(local.resolve())] = entry
        kept.append(f"{UPSTREAM_DIR}/{local.name}")
    resources[:] = kept
    yaml.dump(doc, kustomization)
    return omitted, local_to_url


def _copy_tree(root: Path, dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".venv", "node_modules", "*.pyc")
    for top in releases.KUSTOMIZE_DIRS:
        if (root / top).is_dir():
            shutil.copytree(root / top, dest / top, ignore=ignore)


def _kustomize_build(path: Path) -> str:
    proc = subprocess.run([tool("kustomize"), "build", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RenderError(f"kustomize build {path.name} failed:\n{proc.stderr.strip()}")
    return proc.stdout


def render_env(env: str, root: Path = REPO_ROOT, *, mirror: Path | None = None) -> RenderResult:
    if not (root / "overlays" / env / "kustomization.yaml").is_file():
        known = ", ".join(environments(root)) or "none"
        raise RenderError(f"unknown environment {env!r} (overlays/<env>/kustomization.yaml; known: {known})")
    mirror = mirror or release_mirror()
    lock = releases.load_lock(root)
    with tempfile.TemporaryDirectory(prefix=f"render-{env}-") as scratch:
        work = Path(scratch)
        _copy_tree(root, work)
        omitted: list[releases.Unavailable] = []
        local_to_url: dict[str, str] = {}
        for kustomization in releases.kustomization_files(work):
            left_out, mapping = _rewrite_remote_resources(kustomization, lock, mirror, cache_dir())
            omitted += left_out
            local_to_url.update(mapping)
        overlay = work / "overlays" / env
        text = _kustomize_build(overlay)
        # A second build with origin annotations tells which file (or URL) each object came from, for findings.
        _add_origin_annotations(overlay / "kustomization.yaml")
        origins = _origins(manifests.load_stream(_kustomize_build(overlay)), overlay, work, local_to_url)
    return RenderResult(env=env, text=text, objects=manifests.load_stream(text), omitted=omitted, origins=origins)


def _add_origin_annotations(kustomization: Path) -> None:
    yaml = YAML()
    doc = yaml.load(kustomization.read_text())
    doc["buildMetadata"] = ["originAnnotations"]
    yaml.dump(doc, kustomization)


def _origins(
    objects: list[manifests.Obj], overlay: Path, work: Path, local_to_url: dict[str, str]
) -> dict[manifests.ObjKey, str]:
    origins: dict[manifests.ObjKey, str] = {}
    for obj in objects:
        raw = manifests.annotations(obj).get(ORIGIN, "")
        path = YAML(typ="safe").load(raw).get("path", "") if raw else ""
        resolved = (overlay / path).resolve() if path else None
        if resolved is None:
            where = "?"
        elif str(resolved) in local_to_url:
            where = local_to_url[str(resolved)]
        else:
            where = os.path.relpath(resolved, work.resolve())
        origins[manifests.ObjKey.of(obj)] = where
    return origins


def report_omitted(result: RenderResult, stream=sys.stderr) -> None:
    for gap in result.omitted:
        print(f"render {result.env}: LEFT OUT {gap.url}: {gap.reason}", file=stream)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", help="an overlay under overlays/")
    args = parser.parse_args(argv)
    try:
        result = render_env(args.env)
    except (RenderError, releases.DigestMismatch) as error:
        print(f"render {args.env}: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(result.text)
    report_omitted(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
