"""The Kafka data plane's objects as the pinned release would ship them, assembled from its YAML sources.

The release asset `eventing-kafka-broker.yaml` (the Broker's receiver and dispatcher) has no offline copy
(../shared/releases/README.md), so an offline render leaves it out. Its sources at the same tag are in
`upstream_source_dir()` (../shared/upstream/eventing-kafka-broker-knative-v1.23.0). This module rebuilds the
objects the way the release does, so checks can still judge the data plane's shapes (labels, replicas, ports,
securityContext) when the asset itself is absent.

What the release does (hack/data-plane.sh `k8s()`, hack/label.sh at knative-v1.23.0):
- `ko resolve -Rf data-plane/config/<component>` — every YAML file under the directory in lexical order, comments
  and empty documents dropped;
- piped through `LABEL_YAML_CMD`: `app.kubernetes.io/version: devel` becomes the release version (quoted);
- `replace_images`: `${KNATIVE_KAFKA_RECEIVER_IMAGE}` / `${KNATIVE_KAFKA_DISPATCHER_IMAGE}` become the built
  image digests (NOT done here: the digests exist only in the release bytes, so images stay as in the sources),
  and with `USE_LOOM=true` (the default, the images the release ships) `runAsNonRoot: true` becomes
  `runAsUser: 1001`.
tests/core/test_upstream_source.py proves this against the one asset built this way that the mirror does hold,
eventing-kafka-source.yaml: same objects, images aside.

The prometheus-operator assets (`eventing-kafka-*-prometheus-operator.yaml`, names in hack/artifacts-env.sh; none has
an offline copy) are built the same way from manifests/monitoring/prometheus-operator/<dir>
(test/e2e-common.sh `build_monitoring_artifacts` at knative-v1.23.0: `ko resolve -Rf <dir> | LABEL_YAML_CMD`; the
controller's asset is its `controller` and `webhook` directories, in that order). They hold no images.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from gitops.core.errors import UserError
from gitops.core.manifests import Obj, dump_stream, load_stream
from gitops.core.paths import UPSTREAM_SOURCE_ENV, upstream_source_dir

COMPONENTS = ("broker", "sink", "source")
# The release asset each component's objects are shipped in (hack/data-plane.sh `k8s()`).
RELEASE_ASSET = {
    "broker": "eventing-kafka-broker.yaml",
    "sink": "eventing-kafka-sink.yaml",
    "source": "eventing-kafka-source.yaml",
}
# The prometheus-operator release assets and the source directories each is assembled from, in order
# (test/e2e-common.sh build_monitoring_artifacts, knative-v1.23.0; asset names from hack/artifacts-env.sh).
MONITORING_DIR = Path("manifests/monitoring/prometheus-operator")
MONITORING_ASSET = {
    "eventing-kafka-controller-prometheus-operator.yaml": ("controller", "webhook"),
    "eventing-kafka-broker-prometheus-operator.yaml": ("broker",),
    "eventing-kafka-sink-prometheus-operator.yaml": ("sink",),
    "eventing-kafka-source-prometheus-operator.yaml": ("source",),
}
# The source tree's directory is named after its git tag (../shared/upstream/README.md).
TAG_SUFFIX = re.compile(r"knative-v(?P<version>\d+\.\d+\.\d+)$")
# hack/label.sh LABEL_YAML_CMD: `sed -e "s|app.kubernetes.io/version: devel|app.kubernetes.io/version: \"${version}\"|"`
VERSION_LABEL = "app.kubernetes.io/version: devel"
# hack/data-plane.sh replace_images, USE_LOOM=true: `sed -i "s|runAsNonRoot: true|runAsUser: 1001|g"`
LOOM_SECURITY = ("runAsNonRoot: true", "runAsUser: 1001")
YAML_SUFFIXES = (".yaml", ".yml", ".json")  # the files ko resolve -R reads


class UpstreamSourceMissing(UserError):
    """The upstream source tree is not where the project looks for it."""


def release_version(source: Path | None = None) -> str:
    """The release version the source tree is at (`1.23.0` for …-knative-v1.23.0), as the release labels say."""
    source = source or upstream_source_dir()
    match = TAG_SUFFIX.search(source.name)
    if match is None:
        raise UpstreamSourceMissing(
            f"cannot tell the release tag of {source} (its name should end in knative-v<x.y.z>)",
            fix=f"point {UPSTREAM_SOURCE_ENV} at the eventing-kafka-broker-knative-v<x.y.z> source tree",
        )
    return match.group("version")


# What to do when the upstream source tree, or a directory of it, is missing.
SOURCE_FIX = (
    f"set {UPSTREAM_SOURCE_ENV} to the eventing-kafka-broker source tree at the pinned tag "
    "(default: ../shared/upstream/eventing-kafka-broker-knative-v1.23.0 beside the repository)"
)


def data_plane_config_dir(component: str, source: Path | None = None) -> Path:
    if component not in COMPONENTS:
        raise ValueError(f"unknown data plane component {component!r} (one of {', '.join(COMPONENTS)})")
    source = source or upstream_source_dir()
    directory = source / "data-plane" / "config" / component
    if not directory.is_dir():
        raise UpstreamSourceMissing(
            f"the Kafka data plane sources are missing: no {directory}",
            fix=SOURCE_FIX,
        )
    return directory


def data_plane_files(component: str, source: Path | None = None) -> list[tuple[Path, list[Obj]]]:
    """Per source file (lexical order, as `ko resolve -R` reads them), the objects it contributes to the release."""
    source = source or upstream_source_dir()
    return _resolved_files([data_plane_config_dir(component, source)], release_version(source))


def monitoring_dirs(asset_file: str, source: Path | None = None) -> list[Path]:
    """The manifests/monitoring/prometheus-operator directories the release asset `asset_file` is built from."""
    source = source or upstream_source_dir()
    directories = [source / MONITORING_DIR / name for name in MONITORING_ASSET[asset_file]]
    missing = [d for d in directories if not d.is_dir()]
    if missing:
        raise UpstreamSourceMissing(
            f"the Kafka data plane's prometheus-operator sources are missing: no {missing[0]}",
            fix=SOURCE_FIX,
        )
    return directories


def monitoring_files(asset_file: str, source: Path | None = None) -> list[tuple[Path, list[Obj]]]:
    """Per source file, the ServiceMonitors and PodMonitors the prometheus-operator asset `asset_file` ships."""
    source = source or upstream_source_dir()
    return _resolved_files(monitoring_dirs(asset_file, source), release_version(source))


def _resolved_files(directories: list[Path], version: str) -> list[tuple[Path, list[Obj]]]:
    """`ko resolve -Rf <dir> [-Rf <dir>]… | LABEL_YAML_CMD`, per file; the loom securityContext as replace_images."""
    files: list[tuple[Path, list[Obj]]] = []
    for directory in directories:
        for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES):
            text = path.read_text()
            text = text.replace(VERSION_LABEL, f'app.kubernetes.io/version: "{version}"')  # per line, as sed does
            text = text.replace(*LOOM_SECURITY)
            objects = load_stream(text)
            if objects:
                files.append((path, objects))
    return files


def data_plane_objects(component: str, source: Path | None = None) -> list[Obj]:
    """The objects the release asset of `component` ("broker" | "sink" | "source") contains, assembled from
    data-plane/config/<component>/ as hack/data-plane.sh does; images stay `${KNATIVE_KAFKA_*_IMAGE}`."""
    return [obj for _, objects in data_plane_files(component, source) for obj in objects]


def component_of(asset_file: str) -> str | None:
    """The data plane component a release asset file name ships (None: not a data plane asset)."""
    return next((c for c, name in RELEASE_ASSET.items() if name == asset_file), None)


def stand_in_files(asset_file: str, tag: str, source: Path | None = None) -> list[tuple[Path, list[Obj]]] | None:
    """What an offline render may check in place of the release asset `asset_file` at `tag`: its objects rebuilt
    from the sources, file by file. None when it is not a data plane asset, or the sources are absent or at
    another tag (a stand-in from other sources would prove nothing about the pinned release)."""
    component = component_of(asset_file)
    source = source or upstream_source_dir()
    if (component is None and asset_file not in MONITORING_ASSET) or not source.name.endswith(tag):
        return None
    try:
        if component is None:
            return monitoring_files(asset_file, source)
        return data_plane_files(component, source)
    except UpstreamSourceMissing:
        return None


def stand_in_texts(asset_file: str, tag: str, source: Path | None = None) -> list[tuple[Path, str]] | None:
    """stand_in_files with each file's objects as the YAML stream a render writes in its place. Every render and
    every render's cache key needs them: they are built once per process while the source files stay the same."""
    component = component_of(asset_file)
    source = source or upstream_source_dir()
    if (component is None and asset_file not in MONITORING_ASSET) or not source.name.endswith(tag):
        return None
    if component is None:
        directories = [source / MONITORING_DIR / name for name in MONITORING_ASSET[asset_file]]
    else:
        directories = [source / "data-plane" / "config" / component]
    try:
        state = tuple(
            (str(p), p.stat().st_size, p.stat().st_mtime_ns)
            for directory in directories
            for p in sorted(directory.rglob("*"))
            if p.is_file()
        )
    except OSError:
        state = ()
    return _stand_in_texts(asset_file, tag, source, state)


@functools.lru_cache(maxsize=16)
def _stand_in_texts(
    asset_file: str, tag: str, source: Path, state: tuple[tuple[str, int, int], ...]
) -> list[tuple[Path, str]] | None:
    files = stand_in_files(asset_file, tag, source)
    return None if files is None else [(path, dump_stream(objects)) for path, objects in files]
