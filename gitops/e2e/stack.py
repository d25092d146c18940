"""What every data-plane process of `make e2e` shares, whoever writes its contracts: the test Kafka, the subscriber
behind the fault proxy, the JVMs' common environment and metrics ports, and the producers' sizes and topic
configs from the render. gitops/e2e/live.py's LiveStack runs them with the API server and Knative's controllers,
which write the contracts the data plane reads.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.core.manifests import Obj
from gitops.core.paths import REPO_ROOT
from gitops.e2e import alerts, dataplane
from gitops.e2e.fault_proxy import FaultProxy
from gitops.e2e.processes import Supervisor
from gitops.model.record_size import (
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
class Contracts:
    """The contracts (proto/contract.proto, as protobuf JSON) the data plane was given, in the shape the scenarios
    read: the Broker receiver's, the KafkaSink receiver's, the Broker dispatcher pod's, the KafkaSource dispatcher
    pod's."""

    receiver: dict[str, Any]
    sink_receiver: dict[str, Any]
    broker_dispatcher: dict[str, Any]
    source_dispatcher: dict[str, Any]

    @property
    def brokers(self) -> dict[tuple[str, str], str]:
        return _ingress_topics(self.receiver)

    @property
    def sinks(self) -> dict[tuple[str, str], str]:
        return _ingress_topics(self.sink_receiver)


def _ingress_topics(contract: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(namespace, name) -> topic of every resource a receiver's contract serves at /<namespace>/<name>."""
    out = {}
    for resource in contract.get("resources", []):
        path = (resource.get("ingress") or {}).get("path", "")
        parts = path.strip("/").split("/")
        if len(parts) == 2 and resource.get("topics"):
            out[(parts[0], parts[1])] = resource["topics"][0]
    return out


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
    stand_ins: list[Obj] = field(default_factory=list)
    """The render's objects of left-out release assets (the data planes' ConfigMaps among them), rebuilt from the
    1.23 sources with our patches applied: where the producers' sizes come from."""
    # Each JVM's metrics port (the render's config-observability, on loopback: gitops/e2e/alerts.py).
    metrics_ports: dict[str, int] = field(default_factory=dict)
    # Each JVM's metrics address: its pod's IP (gitops/e2e/live.py), inside 127.0.0.0/8.
    metrics_hosts: dict[str, str] = field(default_factory=dict)
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
    def contracts(self) -> Contracts:
        """The contracts the data plane was given (LiveStack: as the controller wrote them)."""
        raise NotImplementedError

    def broker_ingress(self) -> str:
        raise NotImplementedError

    def dead_letter_topic(self) -> str | None:
        raise NotImplementedError

    def replay_token(self) -> str | None:
        """A token the Broker admits for re-sent events (None where it takes none)."""
        raise NotImplementedError

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

    def _common_env(self, name: str, host: str) -> dict[str, str]:
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

    def _producer_size(self, where: tuple[str, str, str]) -> dict[str, str]:
        """`max.request.size` as the render sets it in that data plane ConfigMap (gitops.model.record_size): the
        Broker receiver and the Broker dispatcher read the Broker's, the KafkaSink receiver the sink's."""
        size = render_producer_size(self.objects + self.stand_ins, where)
        return {MAX_REQUEST_SIZE: str(size)} if size is not None else {}


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


def render_producer_size(objects: list[Obj], where: tuple[str, str, str]) -> int | None:
    """A data plane ConfigMap's producer `max.request.size` in the render (or its stand-ins), None if absent."""
    namespace, name, key = where
    for obj in objects:
        meta = obj.get("metadata", {})
        if obj.get("kind") == "ConfigMap" and (meta.get("namespace"), meta.get("name")) == (namespace, name):
            return producer_limit(str((obj.get("data") or {}).get(key, "")))
    return None


def topic_configs(objects: list[Obj], stand_ins: list[Obj]) -> dict[str, dict[str, str]]:
    """What the topics the controller does not size are created or altered with (docs/operations.md, "Record
    size"): each source topic its largest record (the app's topic table) as max.message.bytes, as its owner sets it;
    the dead-letter topic the sink producer's max.request.size, as the runbook has an operator set it (the KafkaSink
    cannot). The Broker's topic is the controller's: it creates it with the Broker ConfigMap's
    `default.topic.config.*` (control-plane/pkg/kafka/topic.go)."""
    configs: dict[str, dict[str, str]] = {}
    limits = topic_record_limits(SUBSCRIBER_NAME[1]) or {}
    for obj in objects:
        if obj["kind"] == "KafkaSource":
            for topic in obj["spec"]["topics"]:
                if topic in limits:
                    configs[topic] = {"max.message.bytes": str(limits[topic])}
    sink_size = render_producer_size(objects + stand_ins, SINK_DATA_PLANE)
    if sink_size is not None:
        for obj in objects:
            if obj["kind"] == "KafkaSink":
                configs[obj["spec"]["topic"]] = {"max.message.bytes": str(sink_size)}
    return configs
