"""Selector semantics and the pod labels the render implies, which every NetworkPolicy/PDB check relies on."""

from gitops.model import pods
from tests.support import obj


def test_match_labels_and_expressions():
    labels = {"app": "activator", "role": "activator"}
    assert pods.selector_matches({}, labels)
    assert pods.selector_matches({"matchLabels": {"app": "activator"}}, labels)
    assert not pods.selector_matches({"matchLabels": {"app": "autoscaler"}}, labels)
    assert pods.selector_matches(
        {"matchExpressions": [{"key": "app", "operator": "In", "values": ["activator"]}]}, labels
    )
    assert not pods.selector_matches(
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["activator"]}]}, labels
    )
    assert pods.selector_matches({"matchExpressions": [{"key": "role", "operator": "Exists"}]}, labels)
    assert not pods.selector_matches({"matchExpressions": [{"key": "role", "operator": "DoesNotExist"}]}, labels)
    assert not pods.selector_matches(
        {"matchLabels": {"app": "activator"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}, labels
    )


def test_knative_service_pods_carry_the_service_label(renders):
    render = renders["prod"]
    ksvc = obj(render, "serving.knative.dev", "Service", "notifications", "notifications")
    template = next(p for p in pods.pod_templates(render.objects) if p.owner is ksvc)
    assert template.namespace == "notifications"
    assert template.labels[pods.KSVC_POD_LABEL] == "notifications"


def test_namespaces_carry_their_name_label(renders):
    labels = pods.namespace_labels(renders["dev"].objects)
    assert labels["knative-serving"][pods.NAMESPACE_NAME_LABEL] == "knative-serving"
    assert labels["kube-system"] == {pods.NAMESPACE_NAME_LABEL: "kube-system"}
