"""`make e2e` with the control plane in the loop: the API server, Knative 1.23's controllers, and the data plane
reading the contracts the controller writes (docs/e2e.md, "What runs").

Order of start-up, inside the private network namespace (gitops/e2e/netns.py):
1. the test Kafka on the render's bootstrap port, the subscriber, and the fault proxy on the address Knative Serving
   would give the subscriber's Knative Service;
2. etcd and kube-apiserver (gitops/e2e/cluster.py);
3. sync waves up to 0 (CRDs, RBAC, the releases' Deployments and ConfigMaps, plus the data plane's own objects that
   the release asset eventing-kafka-broker.yaml would add: upstream's data-plane/config/{broker,sink}, read from
   ../shared/upstream because that asset has no offline copy), so every Service has its cluster IP;
4. /etc/hosts and the kube-proxy stand-in for those cluster IPs; kafka-controller and the EventPolicy controller;
5. the remaining waves, each waited on with the repository's health checks, while the stand-in kubelet runs the
   data-plane pods the controller schedules and copies their contract ConfigMaps into the files they watch.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gitops.core.manifests import Obj
from gitops.e2e import cluster, controlplane, dataplane, netns, replay, sync
from gitops.e2e.fault_proxy import FaultProxy
from gitops.e2e.kube import Kube
from gitops.e2e.processes import supervised
from gitops.e2e.stack import (
    SOURCE_PARTITIONS,
    SUBSCRIBER_NAME,
    Contracts,
    Stack,
    _write_properties,
    free_port,
    topic_configs,
)
from gitops.events import kafka_local
from gitops.model import external_secrets
from gitops.model.argocd import wave
from gitops.model.operator_crds import monitoring_crd_files, operator_crd_files
from gitops.model.record_size import BROKER_DATA_PLANE, SINK_DATA_PLANE
from gitops.upstream import knative_admission as admission

SERVING_ADDRESS_IP = "127.0.3.1"
# The test Kafka cluster's nodes, one address per bootstrap host the render names (the private /etc/hosts maps
# each name to its node), as a cluster's DNS gives each broker its own address.
KAFKA_NODE_PREFIX = "127.0.5."
# What the test Kafka speaks besides PLAINTEXT (gitops/events/kafka_sasl_ssl.py).
TEST_KAFKA_AUTH = ("SASL_SSL", "SCRAM-SHA-512")
RECEIVER_POD_PORT = (
    controlplane.RECEIVER_POD_PORT
)  # where Knative Serving's ingress would answer for the subscriber's Service
SYSTEM_NAMESPACE = "knative-eventing"
# The receivers' readinessProbe (data-plane/config/*/500-receiver.yaml): failureThreshold 3 x periodSeconds 3.
READINESS_FAILURE_S = 9.0
# The data plane's objects of the release assets eventing-kafka-broker.yaml and eventing-kafka-sink.yaml
# (hack/data-plane.sh upstream assembles them from these directories).
DATA_PLANE_CONFIG = ("broker", "sink")
# Pods the stand-in kubelet runs: (kind, name) of the workload -> (process role, data-plane component).
WORKLOADS = {
    ("Deployment", "kafka-broker-receiver"): ("receiver", "broker"),
    ("Deployment", "kafka-sink-receiver"): ("sink-receiver", "sink"),
    ("StatefulSet", "kafka-broker-dispatcher"): ("broker-dispatcher", "broker"),
    ("StatefulSet", "kafka-source-dispatcher"): ("source-dispatcher", "source"),
}
KUBE_STATE_METRICS = "kube-state-metrics"
# The contract ConfigMap each receiver mounts (data-plane/config/*/500-receiver.yaml `kafka-*-*` volumes).
RECEIVER_CONTRACTS = {"receiver": "kafka-broker-brokers-triggers", "sink-receiver": "kafka-sink-sinks"}
# The kubelet's projected service-account token lives 3607 s and is refreshed at 80 %; a run is shorter than that.
POD_TOKEN_SECONDS = 3607
# Where the subscriber's projected `kube-api` volume (overlays/prod/oidc-subscriber.yaml) is "mounted" here.
SUBSCRIBER_MOUNTS = "subscriber-mounts"


def oidc_enabled(objects: list[Obj]) -> bool:
    """Whether the render turns on Eventing's sender identity: config-features `authentication-oidc: enabled`
    (eventing pkg/apis/feature/flag_names.go OIDCAuthentication; the data plane's FeaturesConfig reads the same key)."""
    return any(
        o["kind"] == "ConfigMap"
        and o["metadata"]["name"] == "config-features"
        and o["metadata"].get("namespace") == SYSTEM_NAMESPACE
        and str((o.get("data") or {}).get("authentication-oidc", "")).lower() == "enabled"
        for o in objects
    )


def data_plane_objects(image: str) -> list[Obj]:
    """Upstream's data-plane objects (ConfigMaps, RBAC, the receivers' Deployments and Services, the Broker
    dispatcher's StatefulSet), images replaced by a name for the locally built data plane."""
    out = []
    for component in DATA_PLANE_CONFIG:
        for path in sorted((dataplane.source_tree() / "config" / component).glob("*.yaml")):
            text = path.read_text().replace("${KNATIVE_KAFKA_DISPATCHER_IMAGE}", image)
            text = text.replace("${KNATIVE_KAFKA_RECEIVER_IMAGE}", image)
            out += [doc for doc in yaml.safe_load_all(text) if doc]
    return out


def operator_crds() -> list[Obj]:
    """The CRDs of the operators a cluster has before Argo CD syncs (prometheus-operator, the External Secrets
    Operator: docs/argocd.md's prerequisites), so the render's PodMonitors, PrometheusRule and ExternalSecrets
    apply; their controllers do not run here (nothing scrapes through them: gitops/e2e/alerts.py scrapes itself)."""
    return [
        doc
        for path in [*monitoring_crd_files(), *operator_crd_files()]
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def broker_configs(objects: list[Obj]) -> list[Obj]:
    """The ConfigMaps the render's Brokers name in spec.config (the release's own default kafka-broker-config in
    knative-eventing is used by no Broker of ours)."""
    refs = set()
    for obj in objects:
        if obj["kind"] == "Broker":
            config = obj["spec"].get("config") or {}
            refs.add((config.get("namespace", obj["metadata"].get("namespace")), config.get("name")))
    return [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and (o["metadata"].get("namespace"), o["metadata"]["name"]) in refs
    ]


def kafka_hosts(objects: list[Obj]) -> tuple[set[str], int]:
    """The hosts and the one port of every bootstrap server the render names (Broker ConfigMap, KafkaSource,
    KafkaSink): the test Kafka listens on that port and the hosts map to 127.0.0.1."""
    servers: set[str] = set()
    for obj in broker_configs(objects):
        if "bootstrap.servers" in (obj.get("data") or {}):
            servers |= {s.strip() for s in obj["data"]["bootstrap.servers"].split(",")}
    for obj in objects:
        if obj["kind"] in ("KafkaSource", "KafkaSink"):
            value = obj["spec"].get("bootstrapServers") or []
            # Each entry may itself list several servers (sarama and upstream's webhook split on ",").
            servers |= {s.strip() for entry in ([value] if isinstance(value, str) else value) for s in entry.split(",")}
    ports = {int(s.rsplit(":", 1)[1]) for s in servers if ":" in s}
    if len(ports) != 1:
        raise RuntimeError(
            f"the render's Kafka bootstrap servers use {len(ports)} ports ({sorted(servers)}); the "
            "e2e's one test Kafka listens on one"
        )
    return {s.rsplit(":", 1)[0] for s in servers}, ports.pop()


def replication_factor(objects: list[Obj]) -> int:
    """The largest replication factor the render asks the controller to create a topic with (Broker ConfigMaps'
    default.topic.replication.factor, KafkaSinks' replicationFactor)."""
    factors = [int((c.get("data") or {}).get("default.topic.replication.factor") or 1) for c in broker_configs(objects)]
    factors += [int((o.get("spec") or {}).get("replicationFactor") or 1) for o in objects if o["kind"] == "KafkaSink"]
    return max([1, *factors])


def auth_secret_refs(objects: list[Obj]) -> set[tuple[str, str]]:
    """(namespace, name) of every Secret the render's Kafka clients authenticate with: a Broker ConfigMap's
    auth.secret.ref.name, a KafkaSink's spec.auth.secret.ref.name, a KafkaSource's net.sasl/net.tls secretKeyRefs."""
    refs = set()
    for config in broker_configs(objects):
        if name := (config.get("data") or {}).get("auth.secret.ref.name"):
            refs.add((config["metadata"].get("namespace", ""), name))
    for obj in objects:
        namespace, spec = obj["metadata"].get("namespace", ""), obj.get("spec") or {}
        if obj["kind"] == "KafkaSink" and (
            name := (((spec.get("auth") or {}).get("secret") or {}).get("ref") or {}).get("name")
        ):
            refs.add((namespace, name))
        if obj["kind"] == "KafkaSource":
            net = spec.get("net") or {}
            for section in (net.get("sasl") or {}, net.get("tls") or {}):
                for value in section.values():
                    ref = (value.get("secretKeyRef") or {}) if isinstance(value, dict) else {}
                    if ref.get("name"):
                        refs.add((namespace, ref["name"]))
    return refs


@dataclass(frozen=True)
class KafkaAuth:
    """How the render's Kafka clients authenticate: the Secrets they read, each declared by an ExternalSecret of the
    render (the operator's stand-in writes them), and the protocol and SASL mechanism those declarations state."""

    secrets: list[external_secrets.DerivedSecret]
    protocol: str
    mechanism: str


def kafka_auth(objects: list[Obj]) -> KafkaAuth | str | None:
    """The render's Kafka authentication (None: plaintext), or why the e2e cannot give it (a str)."""
    refs = auth_secret_refs(objects)
    if not refs:
        return None
    declared = {(d.namespace, d.name): d for d in external_secrets.derived_secrets(objects)}
    secrets, facts = [], set()
    for namespace, name in sorted(refs):
        derived = declared.get((namespace, name))
        if derived is None:
            return (
                f"Secret {namespace}/{name} (the render's Kafka credentials) is declared by no ExternalSecret of the "
                "render, so the e2e cannot give it the test Kafka's credentials"
            )
        if derived.unknowable:
            return f"{derived.ref}: {derived.unknowable[0]}"
        secrets.append(derived)
        facts.add((derived.data.get("protocol"), derived.data.get("sasl.mechanism")))
    if len(facts) != 1 or next(iter(facts)) != TEST_KAFKA_AUTH:
        stated = ", ".join(f"{p} {m}" for p, m in sorted(facts, key=str))
        return (
            f"the render's Kafka credentials state {stated}; the test Kafka speaks {' '.join(TEST_KAFKA_AUTH)} "
            "(gitops/events/kafka_sasl_ssl.py)"
        )
    return KafkaAuth(secrets, *TEST_KAFKA_AUTH)


def secret_store(auth: KafkaAuth, kafka: kafka_local.KafkaBroker, password: str | None = None) -> dict[str, str]:
    """The secret store's values (by ExternalSecret spec.data secretKey) that give each declared Secret the test
    Kafka's credentials: its client user, password (or `password`, a wrong one for a scenario) and CA."""
    assert kafka.sasl_ssl is not None
    values = {
        "protocol": auth.protocol,
        "sasl.mechanism": auth.mechanism,
        "user": kafka.sasl_ssl.user,
        "password": kafka.sasl_ssl.password if password is None else password,
        "ca.crt": kafka.sasl_ssl.ca_file.read_text(),
    }
    return {
        secret_key: values[key]
        for derived in auth.secrets
        for key, secret_key in derived.store_keys.items()
        if key in values
    }


def kafka_nodes(objects: list[Obj]) -> tuple[list[kafka_local.Node], int]:
    """The test Kafka the render names: no nodes (one plaintext broker on 127.0.0.1) for one bootstrap host, no
    replication and no auth (dev); otherwise a node per bootstrap host, each on an address of its own (prod: three
    nodes for replication factor 3). The port is the render's bootstrap port."""
    names, port = kafka_hosts(objects)
    if len(names) == 1 and replication_factor(objects) == 1 and kafka_auth(objects) is None:
        return [], port
    return [kafka_local.Node(f"{KAFKA_NODE_PREFIX}{i}", name) for i, name in enumerate(sorted(names), 1)], port


def start_kafka(objects: list[Obj]) -> kafka_local.KafkaBroker:
    """Start the test Kafka `kafka_nodes` describes, speaking SASL_SSL when the render's credentials say so (the
    bootstrap names must already resolve: `kafka_addresses`)."""
    nodes, port = kafka_nodes(objects)
    if not nodes:
        return kafka_local.start_broker(topics={}, port=port)
    return kafka_local.start_cluster(nodes, port, sasl_ssl=isinstance(kafka_auth(objects), KafkaAuth))


def kafka_addresses(objects: list[Obj]) -> dict[str, str]:
    """DNS's stand-in for the render's bootstrap names: each to its node's address (all to 127.0.0.1 for one
    broker)."""
    nodes, _port = kafka_nodes(objects)
    if nodes:
        return {node.advertised: node.listen for node in nodes}
    return dict.fromkeys(kafka_hosts(objects)[0], "127.0.0.1")


class Forwarder:
    """kube-proxy's stand-in: a TCP listener on a Service's cluster IP and port, forwarding to a pod IP and port."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.create_server(listen, reuse_port=False)
        self.sock.settimeout(0.5)
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._pipe_pair, args=(client,), daemon=True).start()

    def _pipe_pair(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        client.settimeout(None)

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    with suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)
        client.close()
        upstream.close()

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


@dataclass
class LiveStack(Stack):
    api: cluster.ApiServer | None = None
    kube: Kube | None = None
    controllers: controlplane.Controllers | None = None
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)  # pod name -> {ip, role, component, file}
    backoff_factor: float = 1.0
    forwarders: list[Forwarder] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    workload_status: dict[str, dict[str, Any]] = field(default_factory=dict)  # last status written per workload
    standin_errors: list[str] = field(default_factory=list)
    oidc: bool = False
    # The External Secrets Operator's stand-in: the secret store's values, and the Secrets it wrote from them.
    secret_store: dict[str, str] = field(default_factory=dict)
    secrets_written: dict[tuple[str, str], str] = field(default_factory=dict)

    # --- what the scenarios read -------------------------------------------------------------------------------

    def broker_ingress(self) -> str:
        assert self.kube is not None
        for obj in self.objects:
            if obj["kind"] == "Broker":
                live = self.kube.get(obj["apiVersion"], "Broker", obj["metadata"]["namespace"], obj["metadata"]["name"])
                return str(((live or {}).get("status") or {}).get("address", {}).get("url", ""))
        raise LookupError("the render has no Broker")

    def replay_token(self) -> str | None:
        """A token for the identity the render lets re-send dead letters to its Broker (an EventPolicy `sub`
        system:serviceaccount:<namespace>:<name>, prod's `replay`), minted by the API server for the Broker's
        audience, as `gitops replay --token` is given one; None when the Broker publishes no audience (no OIDC)."""
        assert self.kube is not None
        broker = next(o for o in self.objects if o["kind"] == "Broker")
        meta = broker["metadata"]
        live = self.kube.get(broker["apiVersion"], "Broker", meta["namespace"], meta["name"]) or {}
        audience = ((live.get("status") or {}).get("address") or {}).get("audience")
        if not audience:
            return None
        identities = replay.replay_identities(self.objects)
        if not identities:
            return None
        namespace, name = identities[0]
        return self.kube.token(namespace, name, audience)

    def dead_letter_topic(self) -> str | None:
        contracts = self.contracts
        for resource in contracts.broker_dispatcher.get("resources", []):
            for holder in [resource, *resource.get("egresses", [])]:
                dead_letter = (holder.get("egressConfig") or {}).get("deadLetter", "")
                for (namespace, name), topic in contracts.sinks.items():
                    if dead_letter.endswith(f"/{namespace}/{name}"):
                        return topic
        return None

    def read_contract(self, role: str) -> dict[str, Any]:
        for info in self.pods.values():
            if info["role"] == role and Path(info["file"]).is_file():
                text = Path(info["file"]).read_text()
                return json.loads(text) if text.strip() else {}
        return {}

    @property
    def contracts(self) -> Contracts:
        return Contracts(
            self.read_contract("receiver"),
            self.read_contract("sink-receiver"),
            self.read_contract("broker-dispatcher"),
            self.read_contract("source-dispatcher"),
        )

    def header(self) -> str:
        kafka = module_versions(cluster.binary("kafka-controller")).get("knative.dev/eventing-kafka-broker", "?")
        eventing = module_versions(cluster.binary("eventpolicy-controller")).get("knative.dev/eventing", "?")
        return (
            f"control plane: kube-apiserver {self.versions.get('kube-apiserver', '?')}, kafka-controller "
            f"(knative.dev/eventing-kafka-broker {kafka}), EventPolicy reconciler (knative.dev/eventing {eventing}); "
            "contracts written by the controller"
        )

    def set_backoff_scale(self, factor: float) -> None:
        """The e2e-only `--backoff-scale`: applied as the contracts are copied to the pods' files."""
        self.backoff_factor = factor
        for info in self.pods.values():
            info["written"] = None  # rewrite on the next volume sync

    def write_contracts(self) -> None:
        self.volume_sync()

    # --- the stand-ins ------------------------------------------------------------------------------------------

    def volume_sync(self) -> None:
        """The kubelet's ConfigMap volume sync: each data-plane pod's contract ConfigMap copied to its file, and the
        `config-features` volume every data-plane pod mounts at /etc/features (500-receiver.yaml,
        500-dispatcher.yaml; the data plane's FeaturesConfig reads one file per key, e.g. authentication-oidc)."""
        assert self.kube is not None
        features = self.kube.get("v1", "ConfigMap", SYSTEM_NAMESPACE, "config-features")
        directory = self.workdir / "features"
        directory.mkdir(exist_ok=True)
        for key, value in ((features or {}).get("data") or {}).items():
            path = directory / key
            if not path.is_file() or path.read_text() != value:
                tmp = directory / f".{key}.tmp"
                tmp.write_text(value)
                tmp.replace(path)
        for pod, info in self.pods.items():
            cm_name = RECEIVER_CONTRACTS.get(info["role"], pod)
            cm = self.kube.get("v1", "ConfigMap", SYSTEM_NAMESPACE, cm_name)
            if cm is None:
                continue
            raw = base64.b64decode((cm.get("binaryData") or {}).get("data", "") or b"")
            if not raw:
                continue
            text = raw.decode()
            if self.backoff_factor != 1:
                text = json.dumps(scaled(json.loads(text), self.backoff_factor))
            if info.get("written") == text:
                continue
            path = Path(info["file"])
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(path)
            info["written"] = text

    def tick(self) -> None:
        """One pass of every stand-in: pods for the data-plane workloads, their status, their contract files, and
        the Knative Services' addresses."""
        assert self.kube is not None
        for (kind, name), (role, component) in WORKLOADS.items():
            live = self.kube.get("apps/v1", kind, SYSTEM_NAMESPACE, name)
            if live is None:
                continue
            replicas = int(live["spec"].get("replicas") if live["spec"].get("replicas") is not None else 1)
            pods = []
            for ordinal in range(replicas):
                pod = f"{name}-{ordinal}" if kind == "StatefulSet" else f"{name}-e2e-{ordinal}"
                if pod not in self.pods:
                    self._create_pod(live, pod, role if ordinal == 0 else f"{role}-{ordinal}", component)
                self._pod_status(pod)
                pods.append(pod)
            self._workload_status(live, sum(1 for pod in pods if self.pods[pod].get("reported")))
        for process, (_binary, namespace, name) in controlplane.CONTROLLERS.items():
            live = self.kube.get("apps/v1", "Deployment", namespace, name)
            proc = self.supervisor.procs.get(process)
            if live is not None:
                self._workload_status(live, int(proc is not None and proc.alive()))
        self.volume_sync()
        if self.secret_store:
            controlplane.materialise_external_secrets(self.kube, self.objects, self.secret_store, self.secrets_written)
        controlplane.aggregate_cluster_roles(self.kube)
        controlplane.collect_garbage(self.kube)
        controlplane.mark_services_ready(
            self.kube,
            self.objects,
            {SUBSCRIBER_NAME: f"http://{SUBSCRIBER_NAME[1]}.{SUBSCRIBER_NAME[0]}.svc.cluster.local"},
        )

    def _workload_status(self, live: dict[str, Any], ready: int) -> None:
        """The status the Deployment and StatefulSet controllers would write for `ready` ready pods, all of the
        current revision (kube-controller-manager: replicas, readyReplicas, availableReplicas with minReadySeconds 0,
        updatedReplicas, observedGeneration; a Deployment's Available condition): what kube-state-metrics reads."""
        assert self.kube is not None
        kind, meta = live["kind"], live["metadata"]
        replicas = int(live["spec"].get("replicas") if live["spec"].get("replicas") is not None else 1)
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": replicas,
        }
        if kind == "Deployment":
            status["unavailableReplicas"] = replicas - ready
            status["conditions"] = [
                {
                    "type": "Available",
                    "status": "True" if ready >= replicas else "False",
                    "reason": "MinimumReplicasAvailable" if ready >= replicas else "MinimumReplicasUnavailable",
                }
            ]
        else:
            status["currentReplicas"] = replicas
        key = f"{kind}/{meta['name']}"
        if self.workload_status.get(key) == status:
            return
        self.kube.patch_status(
            {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": meta["name"], "namespace": meta["namespace"]}},
            status,
        )
        self.workload_status[key] = status

    def workloads_run(self) -> frozenset[str]:
        """The Deployments and StatefulSets whose pods run here: every other workload of the releases has no
        process in the e2e, so its replicas say nothing (kube-state-metrics' series of them are not judged).
        A controller runs as one process (its probe server holds :8080 of the one network namespace every "pod"
        shares, so a second replica cannot start here): where the render asks for more (prod's HA controllers,
        leader election on), its standby replicas have no process and its series are not judged either."""
        single = frozenset(
            name
            for _binary, namespace, name in controlplane.CONTROLLERS.values()
            if int(controlplane.deployment(self.objects, namespace, name)["spec"].get("replicas", 1) or 1) <= 1
        )
        return frozenset(name for _kind, name in WORKLOADS) | single

    def start_kube_state_metrics(self) -> None:
        """kube-state-metrics (./bin, `make setup`) watching the e2e's API server: the Deployments' and
        StatefulSets' spec and status as Prometheus series, on loopback. It runs with the admin token (a cluster
        gives it a ClusterRole to list and watch)."""
        assert self.api is not None
        binary = cluster.BIN / "kube-state-metrics"
        if not binary.is_file():
            raise cluster.ClusterUnavailable(f"{binary} is missing: `make setup` builds it (hack/tool-versions.env)")
        port = self.metrics_ports.setdefault(KUBE_STATE_METRICS, free_port())
        self.metrics_hosts[KUBE_STATE_METRICS] = "127.0.0.1"
        kubeconfig = self.api.kubeconfig(KUBE_STATE_METRICS, self.api.admin_token)
        self.supervisor.start(
            KUBE_STATE_METRICS,
            [
                str(binary),
                f"--kubeconfig={kubeconfig}",
                "--resources=deployments,statefulsets",
                f"--namespaces={SYSTEM_NAMESPACE},{SUBSCRIBER_NAME[0]}",
                "--host=127.0.0.1",
                f"--port={port}",
                "--telemetry-host=127.0.0.1",
                f"--telemetry-port={free_port()}",
            ],
        )

    def _create_pod(self, workload: dict[str, Any], pod: str, role: str, component: str) -> None:
        assert self.kube is not None and self.api is not None
        ip = f"{controlplane.POD_IP_PREFIX}{10 + len(self.pods)}"
        template = workload["spec"]["template"]
        spec = dict(template["spec"])
        spec["nodeName"] = controlplane.NODE_NAME
        spec["automountServiceAccountToken"] = False
        if workload["kind"] == "StatefulSet":
            volumes = [v for v in spec.get("volumes", []) if v["name"] != "contract-resources"]
            spec["volumes"] = [*volumes, {"name": "contract-resources", "configMap": {"name": pod}}]
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod,
                "namespace": SYSTEM_NAMESPACE,
                "labels": dict(template["metadata"].get("labels") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": workload["kind"],
                        "name": workload["metadata"]["name"],
                        "uid": workload["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": spec,
        }
        created = self.kube.create(obj)
        file = self.workdir / f"{pod}-contract.json"
        # An empty contract until the controller writes one: an empty file fails to parse, and the data plane's
        # file watcher logged that failure without end for a pod the controller places nothing on (gigabytes).
        file.write_text("{}")
        self.pods[pod] = {"ip": ip, "role": role, "component": component, "file": str(file), "ready": False}
        identity = self._pod_identity(pod, created)
        if role.endswith("receiver"):
            self.supervisor.start(
                role,
                self.build.command(dataplane.RECEIVER_MODULE, dataplane.RECEIVER_MAIN, self._logback()),
                {**self._pod_receiver_env(pod, ip, component, file), **identity},
            )
        else:
            self.supervisor.start(
                role,
                self.build.command(dataplane.DISPATCHER_MODULE, dataplane.DISPATCHER_MAIN, self._logback()),
                {**self._pod_dispatcher_env(pod, ip, component, file), **identity},
            )

    def _pod_identity(self, pod: str, live_pod: dict[str, Any]) -> dict[str, str]:
        """What the kubelet gives every pod to reach the API server, and nothing more: the `kubernetes` Service's
        address (KUBERNETES_SERVICE_HOST/PORT), its ServiceAccount's token bound to the pod (a TokenRequest, as the
        kubelet's projected `kube-api-access` volume holds) and the cluster CA (kube-root-ca.crt). In a cluster the
        two files sit at /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}; here every JVM shares one
        filesystem, so the environment names each pod's own files through fabric8's own overrides of those paths
        (io.fabric8.kubernetes.client.Config: kubernetes.auth.serviceAccount.token, kubernetes.certs.ca.file)."""
        assert self.kube is not None and self.api is not None
        account = live_pod["spec"].get("serviceAccountName") or "default"
        directory = self.workdir / "pods" / pod
        directory.mkdir(parents=True, exist_ok=True)
        token = self.kube.token(
            SYSTEM_NAMESPACE, account, bound_pod=(pod, live_pod["metadata"]["uid"]), expiration_s=POD_TOKEN_SECONDS
        )
        (directory / "token").write_text(token)
        (directory / "ca.crt").write_bytes(self.api.ca_file.read_bytes())
        return {
            "KUBERNETES_SERVICE_HOST": cluster.KUBERNETES_SERVICE_IP,
            "KUBERNETES_SERVICE_PORT": str(cluster.APISERVER_PORT),
            "KUBERNETES_AUTH_SERVICEACCOUNT_TOKEN": str(directory / "token"),
            "KUBERNETES_CERTS_CA_FILE": str(directory / "ca.crt"),
        }

    def wait_receivers_ready(self, timeout: float = 120) -> None:
        """Until every receiver pod is Ready again after a restart (the stand-in kubelet's probe)."""
        deadline = time.monotonic() + timeout
        for pod, info in self.pods.items():
            if not info["role"].endswith("receiver"):
                continue
            while not self._pod_ready(pod):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{pod} not ready after its restart")
                time.sleep(1)

    def _pod_ready(self, pod: str) -> bool:
        info = self.pods[pod]
        proc = self.supervisor.procs.get(info["role"])
        if proc is None or not proc.alive():
            return False
        if not info["role"].endswith("receiver"):
            return True  # upstream's dispatcher probe is `cat /tmp/healthy`, shared by every JVM on this host
        try:
            with socket.create_connection((info["ip"], RECEIVER_POD_PORT), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
                return b" 200 " in s.recv(64)
        except OSError:
            return False

    def _pod_status(self, pod: str) -> None:
        assert self.kube is not None
        ready = self._pod_ready(pod)
        info = self.pods[pod]
        proc = self.supervisor.procs.get(info["role"])
        if ready or proc is None or not proc.alive():
            info.pop("failing_since", None)
        elif info.get("reported"):
            # A running process whose readiness probe fails: the kubelet marks the pod unready only after
            # failureThreshold x periodSeconds of failures (500-receiver.yaml: 3 x 3 s), not on one slow answer; on a
            # loaded machine a single 1 s timeout flipped the receiver unready and kafka-controller marked the Broker
            # "Data plane not available" with a backoff that outlasted the sync wave.
            since = info.setdefault("failing_since", time.monotonic())
            if time.monotonic() - since < READINESS_FAILURE_S:
                return
        if info.get("reported") == ready:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        want = "True" if ready else "False"
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": SYSTEM_NAMESPACE}}
        self.kube.patch_status(
            obj,
            {
                "phase": "Running",
                "podIP": info["ip"],
                "podIPs": [{"ip": info["ip"]}],
                "hostIP": "127.0.0.1",
                "startTime": now,
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": want, "lastTransitionTime": now},
                    {"type": "Ready", "status": want, "lastTransitionTime": now},
                ],
            },
        )
        info["reported"] = ready

    def _pod_receiver_env(self, pod: str, ip: str, component: str, file: Path) -> dict[str, str]:
        props = dataplane.upstream_properties(component, f"100-config-kafka-{component}-data-plane.yaml")
        prefix = f"config-kafka-{component}"
        return {
            **self._common_env(self.pods[pod]["role"], ip),
            "SERVICE_NAME": f"kafka-{component}-receiver",
            "METRICS_HOST": ip,
            "INGRESS_PORT": str(RECEIVER_POD_PORT),
            "INGRESS_TLS_PORT": str(free_port()),  # unused (no TLS Secret); every receiver here shares one namespace
            "PRODUCER_CONFIG_FILE_PATH": str(
                _write_properties(
                    self.workdir / f"{pod}-producer.properties",
                    props[f"{prefix}-producer.properties"],
                    self._producer_size(SINK_DATA_PLANE if component == "sink" else BROKER_DATA_PLANE),
                )
            ),
            "HTTPSERVER_CONFIG_FILE_PATH": str(
                _write_properties(
                    self.workdir / f"{pod}-httpserver.properties",
                    props[f"{prefix}-httpserver.properties"],
                    {"host": ip},
                )
            ),
            "DATA_PLANE_CONFIG_FILE_PATH": str(file),
            "LIVENESS_PROBE_PATH": "/healthz",
            "READINESS_PROBE_PATH": "/readyz",
        }

    def _pod_dispatcher_env(self, pod: str, ip: str, component: str, file: Path) -> dict[str, str]:
        props = dataplane.upstream_properties(component, f"100-config-kafka-{component}-data-plane.yaml")
        prefix = f"config-kafka-{component}"
        work = self.workdir
        return {
            **self._common_env(self.pods[pod]["role"], ip),
            "SERVICE_NAME": f"kafka-{component}-dispatcher",
            "METRICS_HOST": ip,
            "INSTANCE_ID": pod,
            "EGRESSES_INITIAL_CAPACITY": "20",
            "PRODUCER_CONFIG_FILE_PATH": str(
                _write_properties(
                    work / f"{pod}-producer.properties",
                    props[f"{prefix}-producer.properties"],
                    self._producer_size(BROKER_DATA_PLANE) if component == "broker" else None,
                )
            ),
            "CONSUMER_CONFIG_FILE_PATH": str(
                _write_properties(work / f"{pod}-consumer.properties", props[f"{prefix}-consumer.properties"])
            ),
            "WEBCLIENT_CONFIG_FILE_PATH": str(
                _write_properties(work / f"{pod}-webclient.properties", props[f"{prefix}-webclient.properties"])
            ),
            "DATA_PLANE_CONFIG_FILE_PATH": str(file),
        }

    def start_identity_subscriber(self) -> None:
        """The subscriber as the render runs it when the render turns sender identity on: PRODUCTION and every
        OIDC_* of its Knative Service's container, unchanged (OIDC_ISSUER and OIDC_JWKS_URL name the API server's
        in-cluster addresses, which the private /etc/hosts maps here), and the projected volume those settings
        point into (a token of the Service's ServiceAccount for the API server's audience, and the cluster CA: the
        kube-root-ca.crt ConfigMap's ca.crt). Each file is written under this run's directory at the mount path the
        render names, and the two *_FILE settings are moved there, the one change a shared filesystem forces."""
        assert self.kube is not None and self.api is not None
        service = subscriber_service(self.objects)
        template = service["spec"]["template"]
        container = template["spec"]["containers"][0]
        env = {
            e["name"]: str(e["value"])
            for e in container.get("env", [])
            if "value" in e and (e["name"].startswith("OIDC_") or e["name"] == "PRODUCTION")
        }
        root = self.workdir / SUBSCRIBER_MOUNTS
        volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
        account = template["spec"].get("serviceAccountName") or "default"
        namespace = service["metadata"]["namespace"]
        for mount in container.get("volumeMounts", []):
            projected = (volumes.get(mount["name"]) or {}).get("projected")
            if not projected:
                continue
            directory = root / mount["mountPath"].lstrip("/")
            directory.mkdir(parents=True, exist_ok=True)
            for source in projected.get("sources", []):
                if "serviceAccountToken" in source:
                    spec = source["serviceAccountToken"]
                    token = self.kube.token(
                        namespace, account, spec.get("audience"), expiration_s=int(spec.get("expirationSeconds", 3600))
                    )
                    (directory / spec["path"]).write_text(token)
                if (source.get("configMap") or {}).get("name") == "kube-root-ca.crt":
                    # kube-controller-manager's root-ca-cert-publisher fills kube-root-ca.crt with the cluster CA.
                    for item in source["configMap"].get("items", [{"key": "ca.crt", "path": "ca.crt"}]):
                        (directory / item["path"]).write_bytes(self.api.ca_file.read_bytes())
            for name, value in list(env.items()):
                if name.endswith("_FILE") and value.startswith(mount["mountPath"].rstrip("/") + "/"):
                    env[name] = str(root / value.lstrip("/"))
        self.subscriber_env = env
        with suppress(KeyError):
            self.supervisor.stop("subscriber")
        self.start_subscriber()

    def start_forwarders(self) -> None:
        """kube-proxy's stand-in for the Services in front of the receivers: cluster IP:port -> pod IP:target."""
        assert self.kube is not None
        for svc in self.kube.list("v1", "Service", SYSTEM_NAMESPACE):
            selector = (svc["spec"].get("selector") or {}).get("app", "")
            if selector not in ("kafka-broker-receiver", "kafka-sink-receiver"):
                continue
            pod_ip = next(
                (i["ip"] for p, i in self.pods.items() if p.startswith(f"{selector}-e2e-")),
                None,
            )
            cluster_ip = svc["spec"].get("clusterIP")
            if pod_ip is None or not cluster_ip or not cluster_ip.startswith("127."):
                continue
            # The Service's HTTP port (80) as in the cluster; its container-port 8080 becomes RECEIVER_POD_PORT, which
            # is where the controller's prober calls (<service>.<namespace>.svc:<*_INGRESS_POD_PORT>).
            for port in (80, RECEIVER_POD_PORT):
                self.forwarders.append(Forwarder((cluster_ip, port), (pod_ip, RECEIVER_POD_PORT)))

    def stop_forwarders(self) -> None:
        for forwarder in self.forwarders:
            forwarder.stop()

    def healthy_again(self, timeout: float = 180) -> str:
        """After a control-plane crash: every Knative object of the render Healthy again (our health checks on the
        live status), or a FAIL note naming what is not."""
        assert self.kube is not None
        knative = [o for o in self.objects if (sync.group_of(o), o["kind"]) in sync.health_scripts()]
        started = time.monotonic()
        try:
            waited = sync.wait_healthy(self.kube, knative, sync.health_scripts(), timeout)
        except sync.SyncFailed as error:
            return f"FAIL: {error}"
        return f"{len(waited)} Knative objects Healthy again after {time.monotonic() - started:.0f}s"

    def run_standins(self, period: float = 1.0) -> threading.Event:
        """The stand-ins keep running while the scenarios do (a kubelet does): pods, status, volume sync."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(period):
                try:
                    self.tick()
                except Exception as error:  # an API server restart (scenario) must not end the stand-ins
                    self.standin_errors.append(str(error))

        threading.Thread(target=loop, name="standins", daemon=True).start()
        return stop

    def all_triggers_scheduled(self) -> bool:
        """Every Trigger of the render has its egress in a Broker dispatcher pod's contract, and the KafkaSource
        dispatcher has its resource."""
        triggers = sum(1 for o in self.objects if o["kind"] == "Trigger")
        contracts = self.contracts
        egresses = [e for r in contracts.broker_dispatcher.get("resources", []) for e in r.get("egresses", [])]
        return len(egresses) >= triggers and bool(contracts.source_dispatcher.get("resources"))


def scaled(contract: dict[str, Any], factor: float) -> dict[str, Any]:
    """The contract with every backoffDelay multiplied; a generation of its own, so the data plane reloads it."""
    contract["generation"] = str(int(contract.get("generation", 0)) * 1000 + 1)
    for resource in contract.get("resources", []):
        for holder in [resource, *resource.get("egresses", [])]:
            config = holder.get("egressConfig") or {}
            if "backoffDelay" in config:
                config["backoffDelay"] = str(max(1, round(int(config["backoffDelay"]) * factor)))
    return contract


def subscriber_service(objects: list[Obj]) -> Obj:
    namespace, name = SUBSCRIBER_NAME
    for obj in objects:
        meta = obj["metadata"]
        if (
            obj["kind"] == "Service"
            and obj["apiVersion"].startswith("serving.knative.dev/")
            and (
                meta.get("namespace"),
                meta["name"],
            )
            == (namespace, name)
        ):
            return obj
    raise LookupError(f"the render has no Knative Service {namespace}/{name}")


def service_hosts(kube: Kube) -> dict[str, str]:
    """DNS's stand-in: every Service with a cluster IP, as <name>.<ns>.svc and <name>.<ns>.svc.cluster.local."""
    out = {}
    for svc in kube.list("v1", "Service"):
        ip = svc["spec"].get("clusterIP")
        if ip and ip.startswith("127."):
            meta = svc["metadata"]
            for suffix in ("svc", "svc.cluster.local"):
                out[f"{meta['name']}.{meta['namespace']}.{suffix}"] = ip
    return out


@contextmanager
def running(
    env: str, objects: list[Obj], workdir: Path, log=print, stand_ins: list[Obj] | None = None
) -> Iterator[LiveStack]:
    """Start the system with the control plane, yield the stack; stop everything afterwards. `stand_ins`: the
    render's rebuilt data plane objects, whose ConfigMaps size the producers (gitops.model.record_size)."""
    netns.require_private("the e2e's control plane")
    build = dataplane.build()
    log(f"e2e: data plane {f'built in {build.seconds:.0f}s' if build.seconds else 'reused'} ({build.root.name})")
    hosts = {name: "127.0.0.1" for name in ("kubernetes", "kubernetes.default", "kubernetes.default.svc")}
    hosts["kubernetes.default.svc.cluster.local"] = "127.0.0.1"
    namespace, name = SUBSCRIBER_NAME
    hosts[f"{name}.{namespace}.svc.cluster.local"] = SERVING_ADDRESS_IP
    hosts |= kafka_addresses(objects)
    netns.private_hosts(workdir / "hosts", hosts)
    with supervised(workdir) as supervisor:
        started = time.monotonic()
        kafka = start_kafka(objects)
        for pid in kafka.pids:
            supervisor.adopt(pid)
        auth = kafka_auth(objects)
        protocol = f"{auth.protocol} {auth.mechanism}" if isinstance(auth, KafkaAuth) else "PLAINTEXT"
        kafka_note = (
            f"{len(kafka.pids)} node{'s' if len(kafka.pids) > 1 else ''} ({kafka.bootstrap_servers}), {protocol}"
        )
        rss = kafka_local.resident_mib(kafka.pids)
        log(f"e2e: test Kafka up in {kafka.start_seconds:.0f}s: {kafka_note}; resident {sum(rss.values()):.0f} MiB")
        proxy: FaultProxy | None = None
        stack: LiveStack | None = None
        standins: threading.Event | None = None
        try:
            subscriber_port = free_port()
            proxy = FaultProxy(subscriber_port, host=SERVING_ADDRESS_IP, port=80)
            proxy.start()
            source_topics = {
                t: SOURCE_PARTITIONS for o in objects if o["kind"] == "KafkaSource" for t in o["spec"]["topics"]
            }
            # Each source topic sized for its largest record, as its owner sets it (docs/operations.md, "Record size").
            kafka_local.create_topics(
                kafka.bootstrap_servers,
                source_topics,
                kafka.client_security,
                configs=topic_configs(objects, stand_ins or []),
            )
            stack = LiveStack(env, objects, workdir, supervisor, kafka, build, proxy, subscriber_port)
            stack.stand_ins = list(stand_ins or [])
            if isinstance(auth, KafkaAuth):
                stack.secret_store = secret_store(auth, kafka)
            stack.start_subscriber()
            t0 = time.monotonic()
            cluster.start_etcd(supervisor, workdir)
            api = cluster.start_apiserver(supervisor, workdir)
            kube = api.client()
            context = admission.context_objects(objects)
            kube.admit = lambda obj: admission.mutate([obj], context)[0]  # Knative's mutating webhooks, offline
            stack.api, stack.kube = api, kube
            version = kube.version()
            stack.versions["kube-apiserver"] = version.get("gitVersion", "?")
            log(f"e2e: etcd and kube-apiserver {stack.versions['kube-apiserver']} up in {time.monotonic() - t0:.0f}s")
            # kube-proxy's stand-in for the `kubernetes` Service: its cluster IP, where pods' KUBERNETES_SERVICE_HOST
            # points, to the API server.
            stack.forwarders.append(
                Forwarder(
                    (cluster.KUBERNETES_SERVICE_IP, cluster.APISERVER_PORT), ("127.0.0.1", cluster.APISERVER_PORT)
                )
            )
            stack.oidc = oidc_enabled(objects)
            image = f"e2e.local/knative-kafka-data-plane:{build.digest[:12]}"
            everything = [*operator_crds(), *objects, *data_plane_objects(image)]
            t0 = time.monotonic()
            sync.sync(kube, [o for o in everything if argocd_wave(o) <= 0], log)
            controlplane.aggregate_cluster_roles(kube)
            hosts = service_hosts(kube) | hosts  # the API server's own and Serving's addresses stay as set
            netns.private_hosts(workdir / "hosts", hosts, remount=False)
            stack.hosts = hosts
            controllers = controlplane.Controllers(api, kube, supervisor, objects, workdir)
            for controller in controlplane.CONTROLLERS:
                controllers.start(controller)
            stack.controllers = controllers
            stack.start_kube_state_metrics()
            stack.tick()
            deadline = time.monotonic() + 120
            while not all(i.get("reported") for p, i in stack.pods.items() if i["role"].endswith("receiver")):
                if time.monotonic() > deadline:
                    raise RuntimeError("the receivers did not become ready")
                time.sleep(1)
                stack.tick()
            stack.start_forwarders()
            sync.sync(kube, [o for o in everything if argocd_wave(o) > 0], log, on_wait=stack.tick)
            log(f"e2e: every wave synced and Healthy in {time.monotonic() - t0:.0f}s")
            if stack.oidc:
                stack.start_identity_subscriber()
                log(
                    "e2e: sender identity on (config-features authentication-oidc: enabled): pods get ServiceAccount "
                    "tokens from the API server; the subscriber runs with the render's PRODUCTION and OIDC_* settings"
                )
            # The controller creates the dead-letter topic with partitions and replication only (the KafkaSink cannot
            # say more, kafka_sink.go topicConfigFromSinkSpec): size it as docs/operations.md has an operator do.
            sized = {
                topic: config
                for topic, config in topic_configs(objects, stack.stand_ins).items()
                if topic not in source_topics
            }
            kafka_local.alter_topic_configs(kafka.bootstrap_servers, sized, kafka.client_security)
            # The contracts the pods read, once the dispatchers have theirs.
            deadline = time.monotonic() + 120
            while not stack.all_triggers_scheduled():
                if time.monotonic() > deadline:
                    raise RuntimeError("not every Trigger reached a dispatcher pod's contract from the controller")
                stack.tick()
                time.sleep(1)
            log(f"e2e: control plane and data plane up in {time.monotonic() - started:.0f}s")
            standins = stack.run_standins()
            yield stack
        finally:
            if standins is not None:
                standins.set()
            if stack is not None:
                stack.stop_forwarders()
            if proxy is not None:
                proxy.stop()
            supervisor.stop_all()
            kafka.stop()


def argocd_wave(obj: Obj) -> int:
    return wave(obj)


def unsupported(objects: list[Obj]) -> str:
    """Why the e2e's test Kafka cannot serve this render to the controller ('' when it can): it runs one node per
    bootstrap host the render names, so a replication factor above that count cannot be placed, and it speaks
    PLAINTEXT or SASL_SSL with SCRAM-SHA-512, with credentials only in Secrets the render declares as
    ExternalSecrets (the operator's stand-in writes them from the test Kafka's values)."""
    try:
        names, _port = kafka_hosts(objects)
    except RuntimeError as error:
        return str(error)
    factor = replication_factor(objects)
    if factor > len(names):
        return (
            f"the render asks for replication factor {factor} but names {len(names)} bootstrap host(s) "
            f"({', '.join(sorted(names))}); the test Kafka runs one node per host"
        )
    auth = kafka_auth(objects)
    return auth if isinstance(auth, str) else ""


def module_versions(binary_path: Path) -> dict[str, str]:
    """The main module and dependency versions a Go binary was built with (`go version -m`)."""
    try:
        out = subprocess.run(["go", "version", "-m", str(binary_path)], capture_output=True, text=True, check=False)
    except OSError:
        return {}
    versions = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("mod", "dep"):
            versions[parts[1]] = parts[2]
    return versions
