"""What the cluster will run, read from the render: pod templates, the labels their pods carry, namespace labels.

The NetworkPolicy, PodDisruptionBudget and topology-spread checks all ask "which pods does this selector pick?".
Only the render can answer it honestly: a selector copied from memory that matches nothing is accepted by the API
server and silently protects (or admits) nobody.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from gitops.core import manifests
from gitops.core.manifests import Obj, dig

WORKLOAD_KINDS = {("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"), ("apps", "ReplicaSet")}
# serving pkg/apis/serving/register.go: labels Serving puts on every pod of a Knative Service's revisions.
KSVC_POD_LABEL = "serving.knative.dev/service"
KSVC_CONFIG_LABEL = "serving.knative.dev/configuration"
# The API server sets this label on every namespace to its name (Kubernetes >= 1.22, NamespaceDefaultLabelName).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


# What Serving makes of a Knative Service's containers in the Revision's pod (serving knative-v1.23.0
# pkg/reconciler/revision/resources/deploy.go and queue.go): the serving container's ports are replaced by one port
# named `user-port` (its first containerPort, default 8080), and queue-proxy exposes the ports below; `queue-port`
# is 8013 instead of 8012 when the serving container's first port is named h2c, and `profiling-port` (8008,
# knative.dev/pkg observability/runtime) exists only with `runtime-profiling: enabled` in config-observability.
USER_PORT_NAME = "user-port"
DEFAULT_USER_PORT = 8080
QUEUE_PROXY = "queue-proxy"
QUEUE_PROXY_PORTS = (("http-autometric", 9090), ("http-usermetric", 9091), ("https-port", 8112))
QUEUE_HTTP_PORT, QUEUE_HTTP2_PORT, PROFILING_PORT = ("queue-port", 8012), ("queue-port", 8013), ("profiling-port", 8008)


@dataclass(frozen=True)
class ContainerPort:
    container: str
    name: str
    number: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class PodTemplate:
    owner: Obj
    namespace: str
    labels: dict[str, str]
    # The ports the pod's containers declare (what a NetworkPolicy's named port resolves against).
    ports: tuple[ContainerPort, ...] = ()

    @property
    def ref(self) -> str:
        return str(manifests.ObjKey.of(self.owner))


def _declared_ports(pod_spec: dict) -> tuple[ContainerPort, ...]:
    containers = [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]
    return tuple(
        ContainerPort(str(c.get("name")), str(p.get("name")), int(p["containerPort"]), p.get("protocol") or "TCP")
        for c in containers
        for p in c.get("ports") or []
        if p.get("name") and isinstance(p.get("containerPort"), int)
    )


def _profiling_enabled(objects: list[Obj]) -> bool:
    config = manifests.find(objects, "", "ConfigMap", "knative-serving", "config-observability")
    return (dig(config, "data", "runtime-profiling") if config else None) == "enabled"


def revision_ports(ksvc: Obj, profiling: bool = False) -> tuple[ContainerPort, ...]:
    """The container ports of a Knative Service's Revision pods, as Serving builds them."""
    containers = dig(ksvc, "spec", "template", "spec", "containers") or []
    serving = containers[0] if len(containers) == 1 else next((c for c in containers if c.get("ports")), {})
    first = (serving.get("ports") or [{}])[0]
    user = ContainerPort(
        str(serving.get("name") or "user-container"),
        USER_PORT_NAME,
        int(first.get("containerPort") or DEFAULT_USER_PORT),
    )
    queue = [*QUEUE_PROXY_PORTS, QUEUE_HTTP2_PORT if first.get("name") == "h2c" else QUEUE_HTTP_PORT]
    if profiling:
        queue.append(PROFILING_PORT)
    return (user, *(ContainerPort(QUEUE_PROXY, name, number) for name, number in queue))


def pod_templates(objects: list[Obj]) -> Iterator[PodTemplate]:
    """Every pod template in the render with the labels its pods will carry and the ports they declare."""
    profiling: bool | None = None
    for obj in objects:
        group, kind = manifests.group_of(obj), obj.get("kind")
        namespace = manifests.meta(obj).get("namespace") or ""
        template_labels = dig(obj, "spec", "template", "metadata", "labels") or {}
        if (group, kind) in WORKLOAD_KINDS:
            ports = _declared_ports(dig(obj, "spec", "template", "spec") or {})
            yield PodTemplate(obj, namespace, dict(template_labels), ports)
        elif (group, kind) == ("serving.knative.dev", "Service"):
            if profiling is None:
                profiling = _profiling_enabled(objects)
            name = manifests.meta(obj).get("name", "")
            labels = {**template_labels, KSVC_POD_LABEL: name, KSVC_CONFIG_LABEL: name}
            yield PodTemplate(obj, namespace, labels, revision_ports(obj, profiling))


def namespace_labels(objects: list[Obj]) -> dict[str, dict[str, str]]:
    """Namespace name -> its labels, for the render's namespaces and the ones every cluster has."""
    found = {name: {NAMESPACE_NAME_LABEL: name} for name in BUILTIN_NAMESPACES}
    for ns in manifests.of_kind(objects, "", "Namespace"):
        name = manifests.meta(ns).get("name", "")
        found[name] = {**manifests.labels(ns), NAMESPACE_NAME_LABEL: name}
    return found


def selector_matches(selector: dict | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics: matchLabels AND every matchExpression; an empty selector matches all."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True
