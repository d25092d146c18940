"""Knative 1.23's controllers as processes, and the stand-ins for what has no process here (docs/e2e.md).

The controllers (hack/knative-cluster, built by `make setup`):
- eventing-kafka-broker v0.50.1 `control-plane/cmd/kafka-controller` (Broker, Trigger via triggerv2, KafkaSink,
  KafkaSource, ConsumerGroup, Consumer reconcilers);
- eventing v0.50.0's EventPolicy reconciler (`eventpolicy-controller`, a main of ours around
  pkg/reconciler/eventpolicy, what eventing's cmd/controller registers for EventPolicies).
Each runs with a kubeconfig holding a token of its rendered Deployment's ServiceAccount (a TokenRequest, what the
kubelet mounts), the environment variables of its rendered container (fieldRefs resolved as the kubelet would,
configMapKeyRefs from the render), and leader election as its config-*-leader-election ConfigMap says.

The stand-ins, each for a component that has no process here:
- kubelet, StatefulSet and Deployment controllers (gitops/e2e/live.py `LiveStack.tick`): the data-plane pods,
  created with a nodeName, `Running`, `Ready` once their process answers; a dispatcher pod's `contract-resources`
  volume is the ConfigMap named after the pod (what eventing-kafka-broker's pod-defaulting webhook,
  control-plane/pkg/apis/core/pod_defaulting.go, sets);
- Knative Serving: the subscriber's Knative Service gets `status.address.url` and `Ready`
  (`mark_services_ready`);
- DNS and kube-proxy: /etc/hosts entries in the private namespace (gitops/e2e/netns.py);
- the External Secrets Operator: the Secret each ExternalSecret declares, from the test Kafka's values
  (`materialise_external_secrets`).
"""

from __future__ import annotations

import json
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.core.manifests import Obj
from gitops.e2e import netns
from gitops.e2e.cluster import ApiServer, binary
from gitops.e2e.kube import Kube, KubeError
from gitops.e2e.processes import Supervisor

NODE_NAME = "e2e-node"
# The receivers' container port 8080 (500-receiver.yaml INGRESS_PORT) cannot be bound here: kafka-controller's health
# probe server holds :8080 of every address of the one network namespace all "pods" share (knative.dev/pkg
# injection.HealthCheckDefaultPort; in a cluster each pod has a namespace of its own). The receivers listen on their
# pod IP at this port instead; kafka-controller is told so through its *_INGRESS_POD_PORT variables (the port its
# prober calls), and the kube-proxy stand-in maps the Services' port 80 to it.
RECEIVER_POD_PORT = 18080
INGRESS_POD_PORT_ENV = ("BROKER_INGRESS_POD_PORT", "SINK_INGRESS_POD_PORT", "CHANNEL_INGRESS_POD_PORT")
POD_IP_PREFIX = "127.0.2."  # pod IPs stay on loopback
CONTROLLERS = {
    # process name -> (binary, rendered Deployment namespace, name)
    "kafka-controller": ("kafka-controller", "knative-eventing", "kafka-controller"),
    "eventpolicy-controller": ("eventpolicy-controller", "knative-eventing", "eventing-controller"),
}


def deployment(objects: list[Obj], namespace: str, name: str) -> Obj:
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] == "Deployment" and meta.get("namespace") == namespace and meta["name"] == name:
            return obj
    raise LookupError(f"the render has no Deployment {namespace}/{name}")


def container_env(objects: list[Obj], pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet gives it: values, fieldRefs of the pod, and configMapKeyRefs read
    from the render (a missing optional key is left out, as the kubelet does)."""
    env: dict[str, str] = {}
    meta = pod["metadata"]
    fields = {
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.name": meta.get("name", ""),
        "metadata.uid": meta.get("uid", meta.get("name", "")),
        "status.podIP": (pod.get("status") or {}).get("podIP", ""),
        "spec.nodeName": NODE_NAME,
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
    }
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = str(item["value"])
            continue
        source = item.get("valueFrom") or {}
        if "fieldRef" in source:
            env[name] = fields.get(source["fieldRef"]["fieldPath"], "")
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            for obj in objects:
                if (
                    obj["kind"] == "ConfigMap"
                    and obj["metadata"]["name"] == ref["name"]
                    and obj["metadata"].get("namespace") == meta.get("namespace")
                    and ref["key"] in (obj.get("data") or {})
                ):
                    env[name] = obj["data"][ref["key"]]
    return env


@dataclass
class Controllers:
    api: ApiServer
    kube: Kube
    supervisor: Supervisor
    objects: list[Obj]
    workdir: Path
    versions: dict[str, str] = field(default_factory=dict)

    def start(self, name: str) -> None:
        netns.require_private(name)
        program, namespace, deploy_name = CONTROLLERS[name]
        deploy = deployment(self.objects, namespace, deploy_name)
        template = deploy["spec"]["template"]
        pod = {
            "metadata": {"namespace": namespace, "name": f"{deploy_name}-e2e-0", "uid": f"{name}-e2e"},
            "spec": template["spec"],
        }
        container = template["spec"]["containers"][0]
        service_account = template["spec"].get("serviceAccountName", "default")
        token = self.kube.token(namespace, service_account)
        kubeconfig = self.api.kubeconfig(name, token)
        env = {
            "PATH": "/usr/bin:/bin",
            **container_env(self.objects, pod, container),
            # Only one pod of each runs on this host: give each its own metrics and probe ports.
            "METRICS_PROMETHEUS_HOST": "127.0.0.1",
            "METRICS_PROMETHEUS_PORT": "9090" if name == "kafka-controller" else "9091",
            "PROFILING_PORT": "8008" if name == "kafka-controller" else "8009",
            "KUBECONFIG": str(kubeconfig),
        }
        for name_ in INGRESS_POD_PORT_ENV:
            if name_ in env:
                env[name_] = str(RECEIVER_POD_PORT)
        self.supervisor.start(name, [str(binary(program)), f"--kubeconfig={kubeconfig}"], env)

    def restart(self, name: str) -> None:
        self.supervisor.restart(name)


def mark_services_ready(kube: Kube, objects: list[Obj], addresses: dict[tuple[str, str], str]) -> None:
    """Knative Serving's stand-in: each Knative Service of the render gets the address Serving would publish
    (`http://<name>.<namespace>.svc.cluster.local`, mapped to the subscriber by the private /etc/hosts) and Ready."""
    for obj in objects:
        if obj["kind"] != "Service" or not obj["apiVersion"].startswith("serving.knative.dev/"):
            continue
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        url = addresses.get(key, f"http://{meta['name']}.{meta['namespace']}.svc.cluster.local")
        live = kube.get(obj["apiVersion"], "Service", meta["namespace"], meta["name"])
        if live is None:
            continue  # not applied yet (a later wave)
        status = live.get("status") or {}
        if (status.get("address") or {}).get("url") == url and status.get("observedGeneration") == live["metadata"].get(
            "generation"
        ):
            continue
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conditions = [
            {"type": t, "status": "True", "lastTransitionTime": now}
            for t in ("ConfigurationsReady", "Ready", "RoutesReady")
        ]
        kube.patch_status(
            obj,
            {
                "observedGeneration": live["metadata"].get("generation", 1),
                "conditions": conditions,
                "url": url,
                "address": {"url": url},
            },
        )


def _matches(labels: dict[str, str], selector: dict[str, Any]) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()) and not selector.get(
        "matchExpressions"
    )


def aggregate_cluster_roles(kube: Kube) -> int:
    """kube-controller-manager's clusterrole-aggregation controller (no process here): every ClusterRole with an
    aggregationRule gets the rules of the ClusterRoles its selectors match. Knative needs it: eventing's
    `addressable-resolver` role, bound to kafka-controller, aggregates the `duck.knative.dev/addressable` roles
    (Serving's Services among them), so without it a Trigger cannot resolve its subscriber. Returns how many
    roles it changed."""
    roles = kube.list("rbac.authorization.k8s.io/v1", "ClusterRole")
    changed = 0
    for role in roles:
        selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        if not selectors:
            continue
        rules: list[Any] = []
        for other in roles:
            if other is role or other.get("aggregationRule"):
                continue
            labels = other["metadata"].get("labels") or {}
            if any(_matches(labels, s) for s in selectors):
                rules += [r for r in other.get("rules") or [] if r not in rules]
        if rules != (role.get("rules") or []):
            kube.replace({**role, "rules": rules})
            changed += 1
    return changed


# The objects kafka-controller creates with owner references (a Trigger or KafkaSource owns its ConsumerGroup, a
# ConsumerGroup its Consumers): the ones whose deletion the garbage collector must cascade here.
GARBAGE_KINDS = (
    ("internal.kafka.eventing.knative.dev/v1alpha1", "ConsumerGroup"),
    ("internal.kafka.eventing.knative.dev/v1alpha1", "Consumer"),
)


def collect_garbage(kube: Kube) -> int:
    """kube-controller-manager's garbage collector (no process here), for GARBAGE_KINDS: an object all of whose
    owners are gone (or were replaced: another uid) is deleted, background propagation, as the collector does.
    Without it a deleted Trigger's ConsumerGroup and Consumer stay, and so does its egress in the contract."""
    deleted = 0
    for api_version, kind in GARBAGE_KINDS:
        for obj in kube.list(api_version, kind):
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if not refs or meta.get("deletionTimestamp"):
                continue
            alive = False
            for ref in refs:
                owner = kube.get(ref["apiVersion"], ref["kind"], meta.get("namespace"), ref["name"])
                alive = alive or (owner is not None and owner["metadata"].get("uid") == ref["uid"])
            if not alive:
                kube.delete(obj)
                deleted += 1
    return deleted


def materialise_external_secrets(
    kube: Kube, objects: list[Obj], store: dict[str, str], written: dict[tuple[str, str], str]
) -> list[str]:
    """The External Secrets Operator's stand-in (its controller is a separate Go program with its own provider
    plug-ins and no store to read here): for each ExternalSecret of the render that is applied, the Secret it
    declares, from `store` (the secret store's values by spec.data secretKey: the test Kafka's user, password and
    CA), with the operator's keys, type and owner (gitops.model.external_secrets `materialise`: the operator's rules
    at the pinned release), and the ExternalSecret `Ready`, as the operator reports a synced Secret. `written`
    remembers what was written, so a Secret changes (and the controllers and data plane re-read it) only when the
    store does, as with the operator's refresh. Returns the Secrets written."""
    from gitops.model import external_secrets

    out = []
    for derived in external_secrets.derived_secrets(objects):
        es = derived.source
        meta = es["metadata"]
        live = kube.get(es["apiVersion"], es["kind"], meta.get("namespace"), meta["name"])
        if live is None:
            continue  # not applied yet (a later wave)
        secret = external_secrets.materialise(derived, store)
        secret["metadata"]["ownerReferences"] = [
            {
                "apiVersion": es["apiVersion"],
                "kind": es["kind"],
                "name": meta["name"],
                "uid": live["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        key = (derived.namespace, derived.name)
        text = json.dumps(secret, sort_keys=True)
        if written.get(key) == text:
            continue
        kube.apply(secret, manager="external-secrets")
        written[key] = text
        out.append(derived.ref)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with suppress(KubeError):  # the status of an ExternalSecret is informational here (Argo CD's health reads it)
            kube.patch_status(
                es,
                {
                    "refreshTime": now,
                    "binding": {"name": derived.name},
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "SecretSynced",
                            "message": "secret synced",
                            "lastTransitionTime": now,
                        }
                    ],
                },
            )
    return out
