"""Selector semantics and the pod labels the render implies, which every NetworkPolicy/PDB check relies on."""

from gitops.model import network, pods
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


def _ksvc(ports: list[dict]) -> dict:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "n"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "ports": ports}]}}},
    }


def test_revision_ports_follow_serving():
    """The serving container's ports become one `user-port`; queue-proxy's queue-port is 8013 for h2c."""
    by_name = {p.name: p.number for p in pods.revision_ports(_ksvc([{"name": "http1", "containerPort": 8081}]))}
    assert by_name == {
        "user-port": 8081,
        "queue-port": 8012,
        "http-autometric": 9090,
        "http-usermetric": 9091,
        "https-port": 8112,
    }
    h2c = {p.name: p.number for p in pods.revision_ports(_ksvc([{"name": "h2c"}]), profiling=True)}
    assert (h2c["queue-port"], h2c["user-port"], h2c["profiling-port"]) == (8013, 8080, 8008)


def test_policy_types_default_like_the_api_server():
    """SetDefaults_NetworkPolicy: unset policyTypes is [Ingress], plus Egress when the policy has egress rules."""
    assert network.policy_types({"spec": {}}) == ["Ingress"]
    assert network.policy_types({"spec": {"egress": [{}]}}) == ["Ingress", "Egress"]
    assert network.policy_types({"spec": {"policyTypes": ["Egress"], "ingress": [{}]}}) == ["Egress"]
