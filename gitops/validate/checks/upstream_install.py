"""The upstream install: configured declaratively, complete for what we use, namespaces consistent."""

import re
import zlib
from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.eventing import is_kafka_broker
from gitops.model.pods import BUILTIN_NAMESPACES
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

EXAMPLE_CHECKSUM = "knative.dev/example-checksum"
KOURIER_CLASS = "kourier.ingress.networking.knative.dev"
CLUSTER_SCOPED_CORE = {
    ("", "Namespace"), ("", "Node"), ("", "PersistentVolume"),
    ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"), ("apiregistration.k8s.io", "APIService"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("scheduling.k8s.io", "PriorityClass"), ("storage.k8s.io", "StorageClass"), ("networking.k8s.io", "IngressClass"),
}  # fmt: skip
# What each piece of the stack needs running to do anything: kind in use -> (workload kind, namespace, name, asset).
DATA_PLANES = {
    ("sources.knative.dev", "KafkaSource"): ("StatefulSet", "knative-eventing", "kafka-source-dispatcher", "eventing-kafka-source.yaml"),
    ("eventing.knative.dev", "Broker"): ("StatefulSet", "knative-eventing", "kafka-broker-dispatcher", "eventing-kafka-broker.yaml"),
    # data-plane/config/sink/500-receiver.yaml: the ingress every KafkaSink address points at.
    ("eventing.knative.dev", "KafkaSink"): ("Deployment", "knative-eventing", "kafka-sink-receiver", "eventing-kafka-sink.yaml"),
}  # fmt: skip


def example_checksum(example: str) -> str:
    """knative/pkg configmap.Checksum: CRC-32 of the trimmed `_example`, newline runs folded to a literal \\n."""
    folded = re.sub(r"(?:\r?\n)+", lambda _: "\\n", example.strip())
    return f"{zlib.crc32(folded.encode()):08x}"


@env_check("upstream-config")
def check_config_examples_untouched(ctx: EnvContext) -> Iterator[Finding]:
    """No upstream ConfigMap's _example was edited (the config webhook rejects it)."""
    for cm in manifests.of_kind(ctx.objects, "", "ConfigMap"):
        expected = manifests.annotations(cm).get(EXAMPLE_CHECKSUM)
        example = (cm.get("data") or {}).get("_example")
        if expected and example is not None and example_checksum(example) != expected:
            yield ctx.finding(
                "upstream-config",
                cm,
                "_example was edited: the config webhook rejects it (its checksum no longer matches "
                f"{EXAMPLE_CHECKSUM}); add real keys beside _example instead",
            )


@env_check("upstream-config")
def check_ingress_class(ctx: EnvContext) -> Iterator[Finding]:
    """With Kourier installed, config-network's ingress-class is Kourier's, so routes are served."""
    if manifests.find(ctx.objects, "apps", "Deployment", "knative-serving", "net-kourier-controller") is None:
        return
    cm = manifests.find(ctx.objects, "", "ConfigMap", "knative-serving", "config-network")
    value = ((cm or {}).get("data") or {}).get("ingress-class")
    if value != KOURIER_CLASS:
        yield ctx.finding(
            "upstream-config",
            cm,
            f"Kourier is installed but config-network ingress-class is {value!r}, not {KOURIER_CLASS!r}: no route is served",
        )


def _cluster_scoped(objects: list[Obj]) -> set[tuple[str, str]]:
    scoped = set(CLUSTER_SCOPED_CORE)
    for crd in manifests.of_kind(objects, "apiextensions.k8s.io", "CustomResourceDefinition"):
        if dig(crd, "spec", "scope") == "Cluster":
            scoped.add((dig(crd, "spec", "group"), dig(crd, "spec", "names", "kind")))
    return scoped


@env_check("namespaces")
def check_namespaces(ctx: EnvContext) -> Iterator[Finding]:
    """Every namespaced object names its namespace, and that namespace exists in the render or the cluster."""
    scoped = _cluster_scoped(ctx.objects)
    namespaces = {manifests.meta(ns).get("name") for ns in manifests.of_kind(ctx.objects, "", "Namespace")}
    namespaces |= set(BUILTIN_NAMESPACES)
    for obj in ctx.objects:
        ns = manifests.meta(obj).get("namespace")
        if (manifests.group_of(obj), obj.get("kind")) in scoped:
            continue
        if not ns:
            yield ctx.finding(
                "namespaces",
                obj,
                "namespaced object without metadata.namespace: it lands in whatever namespace Argo CD targets",
            )
        elif ns not in namespaces:
            yield ctx.finding("namespaces", obj, f"namespace {ns!r} is neither in the render nor a built-in namespace")


@env_check("data-plane")
def check_data_planes(ctx: EnvContext) -> Iterator[Finding]:
    """Every Kafka Broker, KafkaSink and KafkaSource has its data plane in the render (or says which asset was left out)."""
    omitted = [gap.url for gap in ctx.render.omitted]
    for (group, kind), (wl_kind, ns, name, asset) in DATA_PLANES.items():
        users = list(manifests.of_kind(ctx.objects, group, kind))
        if kind == "Broker":
            users = [b for b in users if is_kafka_broker(b)]
        if not users:
            continue
        present = manifests.find(ctx.objects, "apps", wl_kind, ns, name) is not None
        left_out = any(url.endswith("/" + asset) for url in omitted)
        if not present and not left_out:
            yield ctx.finding(
                "data-plane",
                users[0],
                f"{kind} needs the {name} {wl_kind} from {asset}, which the platform does not install: "
                + ("nothing receives" if wl_kind == "Deployment" else "nothing dispatches"),
            )
