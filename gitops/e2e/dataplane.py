"""Knative's Java Kafka data plane built from its source and run as loopback processes, one per pod.

The source is upstream data (`gitops.core.paths.upstream_source_dir()`, read-only in CI), so the build happens in a
copy under the cache (`.cache/e2e/data-plane-<digest>/`), keyed by the sha256 of every source file: an unchanged
source reuses the build, a changed one rebuilds. The recipe is the measured one in ../shared/upstream/README.md: a
JDK 21+ (the class files are Java 21), `mvn test-compile dependency:build-classpath` (the classpath route, about one
CPU-minute warm), then `<module>/target/classes` plus `target/runtime.cp` per main module.

Each JVM runs as a pod of gitops/e2e/live.py: the Vert.x server and metrics bind the pod's loopback address, and the
fabric8 Kubernetes client finds the run's API server as a pod does (`IN_CLUSTER_JVM_FLAGS`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from gitops.core.errors import UserError
from gitops.core.paths import UPSTREAM_SOURCE_ENV, cache_dir, upstream_source_dir
from gitops.e2e import cluster

JAVA_HOME_ENV = "E2E_JAVA_HOME"
JDK_GLOB = "/usr/lib/jvm/temurin-*-jdk-amd64"
MIN_JAVA = 21
BUILD_TIMEOUT_S = 1800  # a cold ~/.m2 downloads ~150 MB from Maven Central
RECEIVER_MAIN = "dev.knative.eventing.kafka.broker.receiverloom.Main"
DISPATCHER_MAIN = "dev.knative.eventing.kafka.broker.dispatcherloom.Main"
# The modules the release images are built from (data-plane/pom.xml, the loom variants).
RECEIVER_MODULE = "receiver-loom"
DISPATCHER_MODULE = "dispatcher-loom"
MAVEN_GOALS = [
    "-B",
    "-q",
    "-Drelease",
    "-Dmaven.test.skip=true",
    "-Dlicense.skipAggregateDownloadLicenses=true",
    "-Dlicense.skipAggregateAddThirdParty=true",
    "test-compile",
    "dependency:build-classpath",
    "-Dmdep.includeScope=runtime",
    "-Dmdep.outputFile=target/runtime.cp",
]
# A pod's JVM: no kubeconfig (a pod has none), the service-account route on, and the API server named on loopback
# (the `kubernetes` Service's address the kube-proxy stand-in forwards, gitops/e2e/cluster.py), so the fabric8
# client can never fall back to dialling kubernetes.default.svc by name.
IN_CLUSTER_JVM_FLAGS = [
    "-Dkubernetes.auth.tryKubeConfig=false",
    f"-Dkubernetes.master=https://{cluster.KUBERNETES_SERVICE_IP}:{cluster.APISERVER_PORT}",
]


class DataPlaneUnavailable(UserError):
    """The upstream source, a JDK 21+ or Maven is missing, or the build failed."""


def source_tree() -> Path:
    tree = upstream_source_dir() / "data-plane"
    if not (tree / "pom.xml").is_file():
        raise DataPlaneUnavailable(
            f"no Knative data plane source at {tree}",
            fix=f"put eventing-kafka-broker's source beside the repository (../shared/upstream) or set "
            f"{UPSTREAM_SOURCE_ENV}",
        )
    return tree


def source_digest(tree: Path) -> str:
    """sha256 over every file's relative path and bytes (build outputs excluded): the build's cache key."""
    digest = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and "target" not in p.relative_to(tree).parts):
        digest.update(str(path.relative_to(tree)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def java_version(java_home: Path) -> int:
    """The feature version from the JDK's `release` file (JAVA_VERSION="25.0.1"), 0 when unreadable."""
    try:
        text = (java_home / "release").read_text()
    except OSError:
        return 0
    match = re.search(r'^JAVA_VERSION="(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def find_jdk(glob: str = JDK_GLOB) -> Path:
    """$E2E_JAVA_HOME, else the newest Temurin JDK >= 21 on the machine (the default `java` is 17)."""
    configured = os.environ.get(JAVA_HOME_ENV)
    candidates = [Path(configured)] if configured else [Path(p) for p in _glob(glob)]
    usable = [(java_version(home), home) for home in candidates if (home / "bin" / "java").exists()]
    usable = [(version, home) for version, home in usable if version >= MIN_JAVA]
    if not usable:
        where = configured or glob
        raise DataPlaneUnavailable(
            f"no JDK {MIN_JAVA}+ at {where} (the data plane's class files are Java {MIN_JAVA})",
            fix=f"install a Temurin JDK {MIN_JAVA}+ or set {JAVA_HOME_ENV}",
        )
    return max(usable)[1]


def _glob(pattern: str) -> list[str]:
    import glob as globmod

    return globmod.glob(pattern)


@dataclass(frozen=True)
class DataPlaneBuild:
    """A finished build: where it is and how to start its two main classes."""

    root: Path  # the copy of data-plane/ that was built
    java_home: Path
    digest: str
    seconds: float  # 0.0 when reused

    @property
    def java(self) -> str:
        return str(self.java_home / "bin" / "java")

    def classpath(self, module: str) -> str:
        runtime = (self.root / module / "target" / "runtime.cp").read_text().strip()
        return f"{self.root / module / 'target' / 'classes'}{os.pathsep}{runtime}"

    def command(self, module: str, main: str, logback: Path, heap: str = "-Xmx384m") -> list[str]:
        """The JVM finds the API server as a pod does (fabric8's service-account route: the
        KUBERNETES_SERVICE_HOST/PORT, token and CA its environment names; gitops/e2e/live.py)."""
        return [
            self.java,
            heap,
            f"-Dlogback.configurationFile={logback}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            *IN_CLUSTER_JVM_FLAGS,
            "-cp",
            self.classpath(module),
            main,
        ]


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(progress: bool = True) -> DataPlaneBuild:
    """The data plane's classes and runtime classpath, built once per source digest (reused afterwards)."""
    tree = source_tree()
    java_home = find_jdk()
    digest = source_digest(tree)
    base = cache_dir() / "e2e"
    root = base / f"data-plane-{digest[:12]}"
    stamp = root / ".complete"
    with _build_lock(base):
        if stamp.exists():
            return DataPlaneBuild(root, java_home, digest, 0.0)
        mvn = shutil.which("mvn")
        if mvn is None:
            raise DataPlaneUnavailable("`mvn` is not on PATH (Maven builds the data plane)", fix="install Maven")
        # The runtime classpath files hold absolute paths, so the build happens in its final directory; the
        # stamp, written last, is what marks it usable.
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(tree, root, ignore=shutil.ignore_patterns("target"))
        env = {
            **os.environ,
            "JAVA_HOME": str(java_home),
            "PATH": f"{java_home / 'bin'}{os.pathsep}{os.environ['PATH']}",
        }
        if progress:
            print(
                f"e2e: building the data plane in {root} with {java_home.name} (a cold ~/.m2 takes minutes)", flush=True
            )
        started = time.monotonic()
        log = root / "build.log"
        with log.open("wb") as out:
            try:
                proc = subprocess.run(
                    [mvn, *MAVEN_GOALS],
                    cwd=root,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=BUILD_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise DataPlaneUnavailable(
                    f"the data plane build timed out after {BUILD_TIMEOUT_S}s", where=str(log)
                ) from None
        missing = [m for m in (RECEIVER_MODULE, DISPATCHER_MODULE) if not (root / m / "target" / "runtime.cp").exists()]
        if proc.returncode != 0 or missing:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise DataPlaneUnavailable(f"the data plane build failed (exit {proc.returncode}):\n{tail}", where=str(log))
        seconds = time.monotonic() - started
        stamp.write_text(f"{digest}\n{java_home}\n{seconds:.1f}\n")
        for stale in base.glob("data-plane-*"):
            if stale != root:
                shutil.rmtree(stale, ignore_errors=True)
        return DataPlaneBuild(root, java_home, digest, seconds)


LOGBACK_XML = """<configuration>
  <!-- INFO, as upstream's kafka-config-logging ConfigMap; the default would be DEBUG. -->
  <appender name="out" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.kafka" level="WARN"/>
  <root level="INFO"><appender-ref ref="out"/></root>
</configuration>
"""


def upstream_properties(component: str, configmap_file: str) -> dict[str, str]:
    """The data keys of one of upstream's data-plane ConfigMaps (data-plane/config/<component>/<file>), the
    properties files the release mounts into the pods."""
    path = source_tree() / "config" / component / configmap_file
    obj = yaml.safe_load(path.read_text())
    return {key: value for key, value in obj.get("data", {}).items() if key != "_example"}
