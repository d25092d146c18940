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


@dataclass(frozen=True)
class PodTemplate:
    owner: Obj
    namespace: str
    labels: dict[str, str]

    @property
    def ref(self) -> str:
        return str(manifests.ObjKey.of(self.owner))


def pod_templates(objects: list[Obj]) -> Iterator[PodTemplate]:
    """Every pod template in the render with the labels its pods will carry."""
    for obj in objects:
        group, kind = manifests.group_of(obj), obj.get("kind")
        namespace = manifests.meta(obj).get("namespace") or ""
        template_labels = dig(obj, "spec", "template", "metadata", "labels") or {}
        if (group, kind) in WORKLOAD_KINDS:
            yield PodTemplate(obj, namespace, dict(template_labels))
        elif (group, kind) == ("serving.knative.dev", "Service"):
            name = manifests.meta(obj).get("name", "")
            yield PodTemplate(obj, namespace, {**template_labels, KSVC_POD_LABEL: name, KSVC_CONFIG_LABEL: name})


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
