"""A real single-node Apache Kafka broker (KRaft) on loopback, from the official org.apache.kafka jars.

The jars come from Maven Central through hack/kafka/pom.xml into .cache/kafka/ (fetched once; later runs are
offline). The broker listens on 127.0.0.1 only, uses a temp log dir, and is stopped and removed afterwards.

`gitops kafka` (`make kafka`) runs one until Ctrl-C; `make e2e` (gitops/e2e/stack.py) starts one per run; the
tests' session fixtures (tests/events/kafka_broker.py) wrap `start_broker`. Product code never loads test files.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from gitops.core.paths import CODE_ROOT
from gitops.events.kafka_sasl_ssl import SaslSsl

HACK = CODE_ROOT / "hack" / "kafka"
POM = HACK / "pom.xml"
CACHE = Path(os.environ.get("KAFKA_TEST_CACHE", CODE_ROOT / ".cache" / "kafka"))
PARTITIONS = 3


def app_topics() -> dict[str, int]:
    """The subscriber's topics (notifications.topics, the one table), each with PARTITIONS partitions."""
    from notifications.topics import TOPICS as APP_TOPICS

    return dict.fromkeys(APP_TOPICS, PARTITIONS)


def app_topic_configs() -> dict[str, dict[str, str]]:
    """Each topic created with its largest record as `max.message.bytes` (notifications.topics
    `max_record_bytes`), as its owner sets it in a cluster (docs/operations.md, "Record size")."""
    from notifications.topics import TOPICS as APP_TOPICS

    return {name: {"max.message.bytes": str(topic.max_record_bytes)} for name, topic in APP_TOPICS.items()}


TOPICS = app_topics()
FETCH_TIMEOUT_S = 240  # under pytest-timeout (300 s), so a slow registry skips rather than errors
READY_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30
HEAP = "-Xmx512m"
# Each node of a multi-broker cluster (start_cluster): three of them share the e2e's two cores and memory with the
# data plane's JVMs; measured by tests/events/test_kafka_cluster.py, which prints each node's resident memory.
CLUSTER_HEAP = "-Xmx256m"
CLUSTER = HACK / "cluster.properties"


class KafkaUnavailable(Exception):
    """Java, Maven or the jars are missing: the one reason to skip rather than fail."""


def jars_dir() -> Path:
    """Fetch the broker jars once into a directory keyed by the pom's content, so a version bump refetches."""
    if shutil.which("java") is None:
        raise KafkaUnavailable("`java` is not on PATH (Java 17+ runs the test Kafka broker)")
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    libs = CACHE / f"libs-{digest}"
    stamp = libs / ".complete"
    if stamp.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable(f"`mvn` is not on PATH and the broker jars are not cached in {libs}")
    partial = CACHE / f"libs-{digest}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={partial}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise KafkaUnavailable(f"fetching the Kafka jars timed out after {FETCH_TIMEOUT_S}s") from exc
    if proc.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
        shutil.rmtree(partial, ignore_errors=True)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise KafkaUnavailable("could not fetch the Kafka jars with Maven:\n" + "\n".join(tail))
    (partial / ".complete").write_text(" ".join(cmd) + "\n")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    for stale in CACHE.glob("libs-*"):  # jars of an older pom
        if stale != libs and not stale.name.startswith(f"{libs.name}.partial"):
            shutil.rmtree(stale, ignore_errors=True)
    return libs


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_id() -> str:
    """A Kafka Uuid string: 16 random bytes, URL-safe base64 without padding (what `random-uuid` prints).

    Never one starting with '-' (1 in 64): `kafka-storage format -t -xyz` reads it as an option and fails with
    "argument --cluster-id/-t: expected one argument", which errored every test using the broker."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not candidate.startswith("-"):
            return candidate


@dataclass
class KafkaBroker:
    bootstrap_servers: str
    workdir: Path
    process: subprocess.Popen[bytes]
    start_seconds: float
    libs: Path
    # SASL_SSL (start_broker(sasl_ssl=True)): the CA, the SCRAM user and the client settings (kafka_sasl_ssl.py).
    sasl_ssl: SaslSsl | None = None
    client_security: dict[str, str] = field(default_factory=dict)
    # Every node's JVM (start_cluster; `process` is the first), stopped together.
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes or [self.process]]

    def ce_decode(self, topic: str, partition: int, offset: int) -> dict[str, object]:
        """Decode one record with the CloudEvents Java SDK, as the KafkaSource dispatcher does."""
        proc = subprocess.run(
            [
                "java",
                "-Xmx256m",
                f"-Dlog4j2.configurationFile={HACK / 'log4j2-quiet.properties'}",
                "-cp",
                f"{self.libs}/*",
                str(HACK / "CeDecode.java"),
                self.bootstrap_servers,
                topic,
                str(partition),
                str(offset),
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"CeDecode failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    @property
    def log_file(self) -> Path:
        return self.workdir / "broker.log"

    def log_tail(self, lines: int = 40) -> str:
        tails = []
        for log in sorted(self.workdir.glob("broker*.log")):
            with contextlib.suppress(OSError):
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                tails.append("\n".join(tail) if log == self.log_file else f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(tails) or "(no broker log)"

    def stop(self) -> None:
        """SIGTERM every node at once (a cluster's nodes shut down together), bounded, then SIGKILL."""
        processes = self.processes or [self.process]
        for proc in processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in processes:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _java(libs: Path, main: str, args: Sequence[str], heap: str = HEAP) -> list[str]:
    return [
        "java",
        heap,
        "-Xms128m",
        "-XX:+UseSerialGC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={HACK / 'log4j2.properties'}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def _die_with_parent() -> None:
    """Linux: SIGTERM the broker if this process dies without running its teardown (e.g. a killed CI run)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_broker(topics: dict[str, int] | None = None, port: int | None = None, sasl_ssl: bool = False) -> KafkaBroker:
    """Format storage, start the broker, wait (bounded) until it answers metadata, create the topics.
    `port`: listen there instead of a free port (the e2e's private network namespace, where the render's
    bootstrap port is free). With `sasl_ssl`, its only client listener speaks SASL_SSL/SCRAM-SHA-512 with a
    throwaway CA (kafka_sasl_ssl.py)."""
    libs = jars_dir()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="kafka-test-"))
    port, controller_port = port or free_port(), free_port()
    while controller_port == port:
        controller_port = free_port()
    props = workdir / "server.properties"
    security = None
    try:
        text = (HACK / "server.properties").read_text()
        if sasl_ssl:
            security = SaslSsl.create(workdir)
            text += "\n" + security.properties()
        props.write_text(
            Template(text).substitute(PORT=port, CONTROLLER_PORT=controller_port, LOG_DIR=workdir / "data")
        )
        scram = security.format_args() if security else []
        fmt = subprocess.run(
            _java(libs, "kafka.tools.StorageTool", ["format", "-t", cluster_id(), "-c", str(props), *scram]),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if fmt.returncode != 0:
            raise RuntimeError(f"kafka-storage format failed:\n{fmt.stdout}\n{fmt.stderr}")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    with (workdir / "broker.log").open("wb") as log:
        proc = subprocess.Popen(
            _java(libs, "kafka.Kafka", [str(props)]),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    broker = KafkaBroker(
        f"127.0.0.1:{port}", workdir, proc, 0.0, libs, security, security.client_config() if security else {}
    )
    try:
        _wait_ready(broker)
        create_topics(
            broker.bootstrap_servers,
            topics if topics is not None else TOPICS,
            broker.client_security,
            configs=app_topic_configs(),
        )
    except BaseException:
        tail = broker.log_tail()
        broker.stop()
        raise RuntimeError(f"Kafka broker did not become ready; last log lines:\n{tail}") from None
    broker.start_seconds = time.monotonic() - started
    return broker


@dataclass(frozen=True)
class Node:
    """One node of a test Kafka cluster: the address it listens on and the host name it is advertised under."""

    listen: str
    advertised: str


def start_cluster(
    nodes: Sequence[Node], port: int, sasl_ssl: bool = False, topics: dict[str, int] | None = None
) -> KafkaBroker:
    """A KRaft cluster of len(nodes) JVMs, each broker and controller (a three-voter quorum), each listening on
    `node.listen:port` and advertised as `node.advertised:port`; internal topics and topics created without a
    replication factor get len(nodes) replicas (hack/kafka/cluster.properties). With `sasl_ssl`, every node speaks
    SASL_SSL/SCRAM-SHA-512 with one throwaway CA and a certificate naming every advertised host
    (kafka_sasl_ssl.py); the SCRAM users are formatted into each node's metadata (KIP-900)."""
    libs = jars_dir()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="kafka-cluster-"))
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    voters = ",".join(f"{i}@{node.listen}:{controller_port}" for i, node in enumerate(nodes, 1))
    security = None
    ident = cluster_id()
    configs = []
    try:
        if sasl_ssl:
            security = SaslSsl.create(workdir, [n.advertised for n in nodes] + [n.listen for n in nodes])
        for i, node in enumerate(nodes, 1):
            text = (HACK / "server.properties").read_text()
            if security is not None:
                text += "\n" + security.properties()
            text += "\n" + CLUSTER.read_text()
            props = workdir / f"server-{i}.properties"
            props.write_text(
                Template(text).substitute(
                    PORT=port,
                    CONTROLLER_PORT=controller_port,
                    LOG_DIR=workdir / f"data-{i}",
                    NODE_ID=i,
                    VOTERS=voters,
                    PROTOCOL="SASL_SSL" if security else "PLAINTEXT",
                    LISTEN_HOST=node.listen,
                    ADVERTISED_HOST=node.advertised,
                    REPLICAS=len(nodes),
                    MIN_ISR=min(2, len(nodes)),
                )
            )
            configs.append(props)
        scram = security.format_args() if security else []
        for props in configs:
            fmt = subprocess.run(
                _java(libs, "kafka.tools.StorageTool", ["format", "-t", ident, "-c", str(props), *scram], CLUSTER_HEAP),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if fmt.returncode != 0:
                raise RuntimeError(f"kafka-storage format failed for {props.name}:\n{fmt.stdout}\n{fmt.stderr}")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    processes = []
    for i, props in enumerate(configs, 1):
        with (workdir / ("broker.log" if i == 1 else f"broker-{i}.log")).open("wb") as log:
            processes.append(
                subprocess.Popen(
                    _java(libs, "kafka.Kafka", [str(props)], CLUSTER_HEAP),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            )
    broker = KafkaBroker(
        ",".join(f"{node.advertised}:{port}" for node in nodes),
        workdir,
        processes[0],
        0.0,
        libs,
        security,
        security.client_config() if security else {},
        processes,
    )
    try:
        _wait_ready(broker, len(nodes))
        create_topics(broker.bootstrap_servers, topics or {}, broker.client_security)
    except BaseException:
        tail = broker.log_tail()
        broker.stop()
        raise RuntimeError(f"Kafka cluster did not become ready; last log lines:\n{tail}") from None
    broker.start_seconds = time.monotonic() - started
    return broker


def resident_mib(pids: Sequence[int]) -> dict[int, float]:
    """Each process's resident memory (VmRSS of /proc/<pid>/status), MiB."""
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[pid] = int(line.split()[1]) / 1024
    return out


def _wait_ready(broker: KafkaBroker, brokers: int = 1) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "socket.timeout.ms": 2000,
            "log_level": 0,
            **broker.client_security,
        }
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        for proc in broker.processes or [broker.process]:
            if proc.poll() is not None:
                raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            md = admin.list_topics(timeout=2)
            if len(md.brokers) >= brokers:
                return
        except Exception as exc:  # KafkaException while the listener is not up yet
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"broker not ready after {READY_TIMEOUT_S}s: {last}")


def create_topics(
    bootstrap: str,
    topics: dict[str, int],
    security: dict[str, str] | None = None,
    configs: dict[str, dict[str, str]] | None = None,
) -> None:
    """Create `topics` (name -> partitions), each with its topic `configs` (e.g. max.message.bytes) if given."""
    from confluent_kafka.admin import AdminClient, NewTopic

    if not topics:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap, **(security or {})})
    futures = admin.create_topics(
        [
            # -1: the cluster's default.replication.factor (KIP-464): 1 on one node, every node of a cluster.
            NewTopic(name, num_partitions=n, replication_factor=-1, config=(configs or {}).get(name, {}))
            for name, n in topics.items()
        ],
        operation_timeout=30,
        request_timeout=30,
    )
    for fut in futures.values():
        fut.result(timeout=40)


def alter_topic_configs(
    bootstrap: str, configs: dict[str, dict[str, str]], security: dict[str, str] | None = None
) -> None:
    """Set these topic configs on existing topics (what `kafka-configs.sh --alter --add-config` does)."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    if not configs:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap, **(security or {})})
    resources = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            topic,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET) for key, value in entries.items()
            ],
        )
        for topic, entries in configs.items()
    ]
    for fut in admin.incremental_alter_configs(resources, request_timeout=30).values():
        fut.result(timeout=40)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gitops kafka",
        description="Run a throwaway single-node Kafka (KRaft) on 127.0.0.1 with the subscriber's topics "
        f"({', '.join(TOPICS)}; notifications.topics) until Ctrl-C; prints KAFKA_BOOTSTRAP_SERVERS=...",
    )
    parser.add_argument(
        "--sasl-ssl",
        action="store_true",
        help="listen SASL_SSL with SCRAM-SHA-512 and a throwaway CA, as prod's Kafka; also prints the "
        "KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_CA_LOCATION settings `make produce` and `gitops replay` read",
    )
    args = parser.parse_args(argv)
    # A background job starts with SIGINT ignored; handle SIGTERM/SIGINT explicitly so the broker is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    t0 = time.monotonic()
    try:
        libs = jars_dir()
    except KafkaUnavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr)
        return 2
    print(f"jars: {libs} ({time.monotonic() - t0:.1f}s)", file=sys.stderr)
    broker = start_broker(sasl_ssl=args.sasl_ssl)
    print(f"broker ready in {broker.start_seconds:.1f}s; log: {broker.log_file}", file=sys.stderr)
    print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
    for name, value in (broker.sasl_ssl.client_env() if broker.sasl_ssl else {}).items():
        print(f"{name}={value}", flush=True)
    try:
        while broker.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
