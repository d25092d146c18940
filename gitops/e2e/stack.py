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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.core.manifests import Obj
from gitops.core.paths import REPO_ROOT
from gitops.e2e import contracts, dataplane
from gitops.e2e.fault_proxy import FaultProxy
from gitops.e2e.processes import Supervisor, supervised
from gitops.events import kafka_local

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

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap_servers

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}"

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
        env.pop("OIDC_AUDIENCE", None)
        self.supervisor.start(
            "subscriber", [sys.executable, "-m", "notifications.serve"], env, cwd=REPO_ROOT / "apps" / "notifications"
        )
        wait_http(f"http://127.0.0.1:{self.subscriber_port}/readyz", "subscriber", self.supervisor)

    def start_receiver(self) -> None:
        self.supervisor.start(
            "receiver",
            self.build.command(dataplane.RECEIVER_MODULE, dataplane.RECEIVER_MAIN, self._logback()),
            self._receiver_env(),
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

    def _common_env(self) -> dict[str, str]:
        observability = self.workdir / "observability"
        features = self.workdir / "features"
        observability.mkdir(exist_ok=True)
        features.mkdir(exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "JAVA_HOME": str(self.build.java_home),
            "SERVICE_NAMESPACE": "knative-eventing",
            "METRICS_HOST": "127.0.0.1",
            "METRICS_PUBLISH_QUANTILES": "false",
            "METRICS_JVM_ENABLED": "false",
            "CONFIG_OBSERVABILITY_PATH": str(observability),
            "CONFIG_FEATURES_PATH": str(features),
            "HTTP2_DISABLE": "true",
            "WAIT_STARTUP_SECONDS": "8",  # upstream's value: how long start-up may take
        }

    def _receiver_env(self) -> dict[str, str]:
        props = dataplane.upstream_properties("broker", "100-config-kafka-broker-data-plane.yaml")
        work = self.workdir
        return {
            **self._common_env(),
            "SERVICE_NAME": "kafka-broker-receiver",
            "INGRESS_PORT": str(self.receiver_port),
            "INGRESS_TLS_PORT": str(free_port()),
            "PRODUCER_CONFIG_FILE_PATH": str(
                _write_properties(
                    work / "receiver-producer.properties", props["config-kafka-broker-producer.properties"]
                )
            ),
            # Vert.x binds 0.0.0.0 unless told otherwise.
            "HTTPSERVER_CONFIG_FILE_PATH": str(
                _write_properties(
                    work / "receiver-httpserver.properties",
                    props["config-kafka-broker-httpserver.properties"],
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
            **self._common_env(),
            "SERVICE_NAME": f"kafka-{component}-dispatcher",
            "INSTANCE_ID": name,
            "EGRESSES_INITIAL_CAPACITY": "20",
            "PRODUCER_CONFIG_FILE_PATH": str(
                _write_properties(work / f"{name}-producer.properties", props[f"{prefix}-producer.properties"])
            ),
            "CONSUMER_CONFIG_FILE_PATH": str(
                _write_properties(work / f"{name}-consumer.properties", props[f"{prefix}-consumer.properties"])
            ),
            "WEBCLIENT_CONFIG_FILE_PATH": str(
                _write_properties(work / f"{name}-webclient.properties", props[f"{prefix}-webclient.properties"])
            ),
            "DATA_PLANE_CONFIG_FILE_PATH": str(work / f"{name}-contract.json"),
        }

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
                if dead_letter == f"{self.receiver_url}/{namespace}/{name}":
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
def running(env: str, objects: list[Obj], workdir: Path, log=print, direct: bool = False) -> Iterator[Stack]:
    """Build (or reuse) the data plane, start every process, yield the stack; stop everything afterwards.
    `direct`: the Triggers reach the subscriber without the fault proxy (the benchmark)."""
    build = dataplane.build()
    log(f"e2e: data plane {f'built in {build.seconds:.0f}s' if build.seconds else 'reused'} ({build.root.name})")
    with supervised(workdir) as supervisor:
        started = time.monotonic()
        kafka = kafka_local.start_broker(topics={})
        supervisor.adopt(kafka.process.pid)  # stopped by kafka.stop() below; recorded for the leftover check
        proxy: FaultProxy | None = None
        try:
            subscriber_port, receiver_port = free_port(), free_port()
            proxy = FaultProxy(subscriber_port)
            proxy_port = proxy.start()
            addresses = contracts.LocalAddresses(
                kafka.bootstrap_servers,
                f"http://127.0.0.1:{receiver_port}",
                {SUBSCRIBER_NAME: f"http://127.0.0.1:{subscriber_port if direct else proxy_port}"},
            )
            built = contracts.build(objects, addresses)
            kafka_local.create_topics(kafka.bootstrap_servers, topics_to_create(objects, built))
            init_trigger_offsets(kafka.bootstrap_servers, built)
            stack = Stack(env, objects, workdir, supervisor, kafka, build, proxy, subscriber_port, receiver_port, built)
            stack.write_contracts()
            stack.start_subscriber()
            stack.start_receiver()
            stack.start_dispatcher("broker-dispatcher")
            stack.start_dispatcher("source-dispatcher")
            wait_http(f"{stack.receiver_url}/readyz", "receiver", supervisor)
            log(f"e2e: Kafka, subscriber, receiver and both dispatchers up in {time.monotonic() - started:.0f}s")
            yield stack
        finally:
            if proxy is not None:
                proxy.stop()
            supervisor.stop_all()
            kafka.stop()
