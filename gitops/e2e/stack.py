"""The local event path of one environment: test Kafka, the subscriber behind the fault proxy, and Knative's
receiver, Broker dispatcher and KafkaSource dispatcher reading contracts written from the render.

Everything binds 127.0.0.1 and every address in a contract is a loopback one.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.core.manifests import Obj
from gitops.core.paths import REPO_ROOT
from gitops.e2e import alerts, contracts, dataplane
from gitops.e2e.fault_proxy import FaultProxy
from gitops.e2e.processes import Supervisor, supervised
from gitops.events import kafka_local
from gitops.model.record_size import (
    BROKER_DATA_PLANE,
    MAX_REQUEST_SIZE,
    SINK_DATA_PLANE,
    producer_limit,
    topic_record_limits,
)

SUBSCRIBER_NAME = ("notifications", "notifications")  # the Knative Service the render routes to
READY_TIMEOUT_S = 120
SOURCE_PARTITIONS = 3


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_properties(path: Path, text: str, extra: dict[str, str] | None = None) -> Path:
    lines = [text.rstrip("\n")]
    lines += [f"{k}={v}" for k, v in (extra or {}).items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Stack:
    env: str
    objects: list[Obj]
    workdir: Path
    supervisor: Supervisor
    kafka: Any
    build: dataplane.DataPlaneBuild
    proxy: FaultProxy
    subscriber_port: int
    receiver_port: int
    contracts: contracts.Contracts
    generation: int = 1
    stand_ins: list[Obj] = field(default_factory=list)
    """The render's objects of left-out release assets (the data planes' ConfigMaps among them), rebuilt from the
    1.23 sources with our patches applied: where the producers' sizes come from."""
    # Each JVM's metrics port (the render's config-observability, on loopback: gitops/e2e/alerts.py).
    metrics_ports: dict[str, int] = field(default_factory=dict)
    # Each JVM's metrics address (127.0.0.1 here; a pod's IP with the control plane, gitops/e2e/live.py).
    metrics_hosts: dict[str, str] = field(default_factory=dict)
    # The KafkaSink receiver, its own JVM as in a cluster: one receiver serving both a Broker and a KafkaSink
    # exports only the first one's metrics (Prometheus needs one set of label names per metric).
    sink_receiver_port: int = 0
    # The render's sender-identity settings (PRODUCTION, OIDC_*) when the live stack runs them (gitops/e2e/live.py).
    subscriber_env: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap_servers

    @property
    def kafka_client(self) -> dict[str, str]:
        """librdkafka settings of the e2e's own clients (producing, reading topics): the bootstrap servers and, on a
        SASL_SSL test Kafka, its client user's credentials and CA."""
        return {"bootstrap.servers": self.bootstrap, **self.kafka.client_security}

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}"

    @property
    def sink_receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.sink_receiver_port}" if self.sink_receiver_port else self.receiver_url

    def broker_ingress(self) -> str:
        (namespace, name), _topic = next(iter(self.contracts.brokers.items()))
        return f"{self.receiver_url}/{namespace}/{name}"

    def subscriber_log(self) -> Path:
        return self.supervisor.procs["subscriber"].log

    def subscriber_records(self, outcome: str) -> list[dict[str, Any]]:
        out = []
        try:
            text = self.subscriber_log().read_text(errors="replace")
        except OSError:
            return out
        for line in text.splitlines():
            if f'"{outcome}"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("outcome") == outcome:
                out.append(record)
        return out

    def start_subscriber(self) -> None:
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.subscriber_port),
            "GRACEFUL_SHUTDOWN_SECONDS": "2",
        }
        for name in [name for name in env if name.startswith("OIDC_")]:
            env.pop(name)  # any OIDC_* means all are required (notifications.oidc); this stand-in runs without
        env |= self.subscriber_env  # the render's identity settings, when the live stack runs them
        self.supervisor.start(
            "subscriber", [sys.executable, "-m", "notifications.serve"], env, cwd=REPO_ROOT / "apps" / "notifications"
        )
        wait_http(f"http://127.0.0.1:{self.subscriber_port}/readyz", "subscriber", self.supervisor)

    def start_receiver(self, name: str = "receiver") -> None:
        """The Broker receiver ("receiver") or the KafkaSink receiver ("sink-receiver"): the same main class and
        contract, as the release runs both from one image (data-plane/config/{broker,sink}/500-receiver.yaml)."""
        self.supervisor.start(
            name,
            self.build.command(dataplane.RECEIVER_MODULE, dataplane.RECEIVER_MAIN, self._logback()),
            self._receiver_env(name),
        )

    def start_dispatcher(self, name: str) -> None:
        self.supervisor.start(
            name,
            self.build.command(dataplane.DISPATCHER_MODULE, dataplane.DISPATCHER_MAIN, self._logback()),
            self._dispatcher_env(name),
        )

    def _logback(self) -> Path:
        path = self.workdir / "logback.xml"
        path.write_text(dataplane.LOGBACK_XML)
        return path

    def metrics_targets(self) -> dict[str, str]:
        """Every process's /metrics: the JVMs' own ports, the subscriber's app port (as its PodMonitor scrapes)."""
        targets = {
            name: f"http://{self.metrics_hosts.get(name, '127.0.0.1')}:{port}/metrics"
            for name, port in self.metrics_ports.items()
        }
        return {**targets, "subscriber": f"http://127.0.0.1:{self.subscriber_port}/metrics"}

    def _common_env(self, name: str, host: str = "127.0.0.1") -> dict[str, str]:
        observability = self.workdir / f"observability-{name}"
        features = self.workdir / "features"
        self.metrics_hosts[name] = host
        alerts.write_observability(observability, self.objects, self.metrics_ports.setdefault(name, free_port()), host)
        features.mkdir(exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "JAVA_HOME": str(self.build.java_home),
            "SERVICE_NAMESPACE": "knative-eventing",
            "METRICS_HOST": host,
            "METRICS_PUBLISH_QUANTILES": "false",
            "METRICS_JVM_ENABLED": "false",
            "CONFIG_OBSERVABILITY_PATH": str(observability),
            "CONFIG_FEATURES_PATH": str(features),
            "HTTP2_DISABLE": "true",
            "WAIT_STARTUP_SECONDS": "8",  # upstream's value: how long start-up may take
        }

    def _receiver_env(self, name: str = "receiver") -> dict[str, str]:
        component = "sink" if name == "sink-receiver" else "broker"
        props = dataplane.upstream_properties(component, f"100-config-kafka-{component}-data-plane.yaml")
        work = self.workdir
        return {
            **self._common_env(name),
            "SERVICE_NAME": f"kafka-{component}-receiver",
            "INGRESS_PORT": str(self.sink_receiver_port if component == "sink" else self.receiver_port),
            "INGRESS_TLS_PORT": str(free_port()),
            "PRODUCER_CONFIG_FILE_PATH": str(
                _write_properties(
                    work / f"{name}-producer.properties",
                    props[f"config-kafka-{component}-producer.properties"],
                    self._producer_size(SINK_DATA_PLANE if component == "sink" else BROKER_DATA_PLANE),
                )
            ),
            # Vert.x binds 0.0.0.0 unless told otherwise.
            "HTTPSERVER_CONFIG_FILE_PATH": str(
                _write_properties(
                    work / f"{name}-httpserver.properties",
                    props[f"config-kafka-{component}-httpserver.properties"],
                    {"host": "127.0.0.1"},
                )
            ),
            "DATA_PLANE_CONFIG_FILE_PATH": str(work / "receiver-contract.json"),
            "LIVENESS_PROBE_PATH": "/healthz",
            "READINESS_PROBE_PATH": "/readyz",
        }

    def _dispatcher_env(self, name: str) -> dict[str, str]:
        component = "source" if name == "source-dispatcher" else "broker"
        prefix = f"config-kafka-{component}"
        props = dataplane.upstream_properties(component, f"100-config-kafka-{component}-data-plane.yaml")
        work = self.workdir
        return {
            **self._common_env(name),
            "SERVICE_NAME": f"kafka-{component}-dispatcher",
            "INSTANCE_ID": name,
            "EGRESSES_INITIAL_CAPACITY": "20",
            "PRODUCER_CONFIG_FILE_PATH": str(
                _write_properties(
                    work / f"{name}-producer.properties",
                    props[f"{prefix}-producer.properties"],
                    self._producer_size(BROKER_DATA_PLANE) if component == "broker" else None,
                )
            ),
            "CONSUMER_CONFIG_FILE_PATH": str(
                _write_properties(work / f"{name}-consumer.properties", props[f"{prefix}-consumer.properties"])
            ),
            "WEBCLIENT_CONFIG_FILE_PATH": str(
                _write_properties(work / f"{name}-webclient.properties", props[f"{prefix}-webclient.properties"])
            ),
            "DATA_PLANE_CONFIG_FILE_PATH": str(work / f"{name}-contract.json"),
        }

    def _producer_size(self, where: tuple[str, str, str]) -> dict[str, str]:
        """`max.request.size` as the render sets it in that data plane ConfigMap (gitops.model.record_size): the
        Broker receiver and the Broker dispatcher read the Broker's, the KafkaSink receiver the sink's."""
        size = render_producer_size(self.objects + self.stand_ins, where)
        return {MAX_REQUEST_SIZE: str(size)} if size is not None else {}

    def write_contracts(self) -> None:
        c = self.contracts
        for name, contract in (
            ("receiver", c.receiver),
            ("broker-dispatcher", c.broker_dispatcher),
            ("source-dispatcher", c.source_dispatcher),
        ):
            path = self.workdir / f"{name}-contract.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(contract, indent=2) + "\n")
            tmp.replace(path)

    def dead_letter_topic(self) -> str | None:
        """The dead-letter topic when the render's Broker dead-letter sink is a KafkaSink, else None."""
        for resource in self.contracts.broker_dispatcher["resources"]:
            dead_letter = (resource.get("egressConfig") or {}).get("deadLetter", "")
            for (namespace, name), topic in self.contracts.sinks.items():
                if dead_letter in (
                    f"{self.sink_receiver_url}/{namespace}/{name}",
                    f"{self.receiver_url}/{namespace}/{name}",
                ):
                    return topic
        return None


def wait_http(
    url: str, what: str, supervisor: Supervisor, name: str | None = None, timeout: float = READY_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = supervisor.procs.get(name or what)
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{what} exited; last log lines:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"{what} not ready at {url} after {timeout:.0f}s: {last}")


def topics_to_create(objects: list[Obj], c: contracts.Contracts) -> dict[str, int]:
    partitions = SOURCE_PARTITIONS
    for obj in objects:
        if obj["kind"] == "ConfigMap" and "default.topic.partitions" in obj.get("data", {}):
            partitions = int(obj["data"]["default.topic.partitions"])
    topics: dict[str, int] = {}
    for obj in objects:
        if obj["kind"] == "KafkaSource":
            for topic in obj["spec"]["topics"]:
                topics[topic] = SOURCE_PARTITIONS
        if obj["kind"] == "KafkaSink":
            topics[obj["spec"]["topic"]] = int(obj["spec"].get("numPartitions", partitions))
    for topic in c.brokers.values():
        topics[topic] = partitions
    return topics


def render_producer_size(objects: list[Obj], where: tuple[str, str, str]) -> int | None:
    """A data plane ConfigMap's producer `max.request.size` in the render (or its stand-ins), None if absent."""
    namespace, name, key = where
    for obj in objects:
        meta = obj.get("metadata", {})
        if obj.get("kind") == "ConfigMap" and (meta.get("namespace"), meta.get("name")) == (namespace, name):
            return producer_limit(str((obj.get("data") or {}).get(key, "")))
    return None


def topic_configs(objects: list[Obj], stand_ins: list[Obj], c: contracts.Contracts | None) -> dict[str, dict[str, str]]:
    """What a cluster's topics are created with (docs/operations.md, "Record size"): each source topic its largest
    record (the app's topic table) as max.message.bytes, as its owner sets it; the Broker's topic every
    `default.topic.config.*` of its ConfigMap, as Knative does when it creates it (control-plane/pkg/kafka/topic.go);
    the dead-letter topic the sink producer's max.request.size, as the runbook has an operator set it (the
    KafkaSink cannot)."""
    configs: dict[str, dict[str, str]] = {}
    limits = topic_record_limits(SUBSCRIBER_NAME[1]) or {}
    for obj in objects:
        if obj["kind"] == "KafkaSource":
            for topic in obj["spec"]["topics"]:
                if topic in limits:
                    configs[topic] = {"max.message.bytes": str(limits[topic])}
        if obj["kind"] == "ConfigMap" and "default.topic.partitions" in obj.get("data", {}):
            prefix = "default.topic.config."
            broker_config = {k[len(prefix) :]: str(v) for k, v in obj["data"].items() if k.startswith(prefix)}
            for topic in c.brokers.values() if c is not None else ():  # with the control plane, it creates them
                configs[topic] = broker_config
    sink_size = render_producer_size(objects + stand_ins, SINK_DATA_PLANE)
    if sink_size is not None:
        for obj in objects:
            if obj["kind"] == "KafkaSink":
                configs[obj["spec"]["topic"]] = {"max.message.bytes": str(sink_size)}
    return configs


def init_trigger_offsets(bootstrap: str, c: contracts.Contracts) -> None:
    """What the control plane does when it reconciles a Trigger (reconciler/trigger/trigger.go
    `reconcileConsumerGroup` -> kafka/offset `InitOffsets`, with the data plane's `auto.offset.reset=latest`):
    commit the newest offset of every Broker-topic partition that the Trigger's consumer group has not committed,
    so a dispatcher that starts, or restarts before its first commit, never skips to "latest" past a record."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    for resource in c.broker_dispatcher["resources"]:
        topic = resource["topics"][0]
        for egress in resource.get("egresses", []):
            deadline = time.monotonic() + 60
            while True:
                consumer = Consumer(
                    {"bootstrap.servers": bootstrap, "group.id": egress["consumerGroup"], "log_level": 3}
                )
                try:
                    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                    committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
                    newest = [
                        TopicPartition(topic, tp.partition, consumer.get_watermark_offsets(tp, timeout=10)[1])
                        for tp in committed
                        if tp.offset < 0
                    ]
                    if newest:
                        consumer.commit(offsets=newest, asynchronous=False)
                    break
                except KafkaException:  # a fresh broker's group coordinator is not ready yet
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)
                finally:
                    consumer.close()


@contextmanager
def running(
    env: str,
    objects: list[Obj],
    workdir: Path,
    log=print,
    direct: bool = False,
    stand_ins: list[Obj] | None = None,
) -> Iterator[Stack]:
    """Build (or reuse) the data plane, start every process, yield the stack; stop everything afterwards.
    `direct`: the Triggers reach the subscriber without the fault proxy (the benchmark). `stand_ins`: the render's
    rebuilt data plane objects, whose ConfigMaps size the producers and the dead-letter topic."""
    build = dataplane.build()
    log(f"e2e: data plane {f'built in {build.seconds:.0f}s' if build.seconds else 'reused'} ({build.root.name})")
    with supervised(workdir) as supervisor:
        started = time.monotonic()
        kafka = kafka_local.start_broker(topics={})
        supervisor.adopt(kafka.process.pid)  # stopped by kafka.stop() below; recorded for the leftover check
        proxy: FaultProxy | None = None
        try:
            subscriber_port, receiver_port, sink_receiver_port = free_port(), free_port(), free_port()
            proxy = FaultProxy(subscriber_port)
            proxy_port = proxy.start()
            addresses = contracts.LocalAddresses(
                kafka.bootstrap_servers,
                f"http://127.0.0.1:{receiver_port}",
                {SUBSCRIBER_NAME: f"http://127.0.0.1:{subscriber_port if direct else proxy_port}"},
                sink_receiver_url=f"http://127.0.0.1:{sink_receiver_port}",
            )
            built = contracts.build(objects, addresses)
            kafka_local.create_topics(
                kafka.bootstrap_servers,
                topics_to_create(objects, built),
                configs=topic_configs(objects, stand_ins or [], built),
            )
            init_trigger_offsets(kafka.bootstrap_servers, built)
            stack = Stack(env, objects, workdir, supervisor, kafka, build, proxy, subscriber_port, receiver_port, built)
            stack.stand_ins = list(stand_ins or [])
            stack.sink_receiver_port = sink_receiver_port
            stack.write_contracts()
            stack.start_subscriber()
            stack.start_receiver()
            stack.start_receiver("sink-receiver")
            stack.start_dispatcher("broker-dispatcher")
            stack.start_dispatcher("source-dispatcher")
            wait_http(f"{stack.receiver_url}/readyz", "receiver", supervisor)
            wait_http(f"{stack.sink_receiver_url}/readyz", "sink-receiver", supervisor)
            log(
                f"e2e: Kafka, subscriber, Broker and KafkaSink receivers and both dispatchers up in {time.monotonic() - started:.0f}s"
            )
            yield stack
        finally:
            if proxy is not None:
                proxy.stop()
            supervisor.stop_all()
            kafka.stop()
