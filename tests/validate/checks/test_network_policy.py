"""NetworkPolicy checks: the real tree passes; a selector that matches nothing is named with env, object and file."""

import pytest

from gitops.validate.checks import network_policy
from tests.support import obj, run_check

NS = "notifications"
NP = "networking.k8s.io"
DELIVERIES = f"[prod] NetworkPolicy {NS}/notifications-deliveries (apps/notifications/deploy/networkpolicy.yaml)"


def deliveries(render):
    return obj(render, NP, "NetworkPolicy", NS, "notifications-deliveries")


def test_pod_selector_matching_nothing(broken):
    render = broken("prod")
    deliveries(render)["spec"]["podSelector"] = {"matchLabels": {"app": "notifications"}}
    messages = [str(f) for f in run_check(network_policy.check_network_policies, render)]
    assert any(m.startswith(DELIVERIES) and "selects no pod in namespace notifications" in m for m in messages)


def test_peer_namespace_not_in_render(broken):
    render = broken("prod")
    peer = deliveries(render)["spec"]["ingress"][0]["from"][0]
    peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": "kourier"}}
    messages = [str(f) for f in run_check(network_policy.check_network_policies, render)]
    assert any(m.startswith(DELIVERIES) and "matches no namespace in the render" in m for m in messages), messages


def dispatcher_peer(render, labels):
    peer = deliveries(render)["spec"]["ingress"][0]["from"][1]
    peer["podSelector"] = {"matchLabels": labels}
    peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": "knative-eventing"}}
    return [str(f) for f in run_check(network_policy.check_network_policies, render)]


def test_data_plane_peer_resolves_against_its_sources(broken):
    """The Broker dispatcher's real labels (data-plane/config/broker/500-dispatcher.yaml) resolve although the
    release asset is not in the offline render: its pods are rebuilt from the 1.23 sources."""
    messages = dispatcher_peer(broken("prod"), {"app": "kafka-broker-dispatcher"})
    assert not any("admits nobody" in m for m in messages), messages


def test_peer_label_from_memory(broken):
    """A dispatcher label an article might suggest: nothing in the render or the rebuilt data plane carries it."""
    messages = dispatcher_peer(broken("prod"), {"app": "kafka-dispatcher"})
    assert any(
        m.startswith(DELIVERIES) and "matches no pod in namespace(s) knative-eventing" in m and "left out" not in m
        for m in messages
    ), messages


def test_peer_in_a_left_out_asset_without_sources_names_the_asset(broken):
    render = broken("prod")
    render.stand_ins, render.stood_in = [], []  # no upstream source tree: nothing stands in for the asset
    messages = dispatcher_peer(render, {"app": "kafka-broker-dispatcher"})
    assert any(m.startswith(DELIVERIES) and "eventing-kafka-broker.yaml" in m and "left out" in m for m in messages), (
        messages
    )


def test_app_port_bypassing_queue_proxy(broken):
    render = broken("prod")
    deliveries(render)["spec"]["ingress"][0]["ports"][0]["port"] = 8080
    messages = [str(f) for f in run_check(network_policy.check_network_policies, render)]
    assert any(m.startswith(DELIVERIES) and "opens port 8080" in m for m in messages), messages


def test_missing_default_deny_in_prod(broken):
    render = broken("prod")
    render.objects.remove(obj(render, NP, "NetworkPolicy", NS, "default-deny-ingress"))
    messages = [str(f) for f in run_check(network_policy.check_default_deny, render)]
    assert any(
        m.startswith(f"[prod] Namespace {NS} (base/eventing/namespace.yaml)") and "no default-deny ingress" in m
        for m in messages
    ), messages


@pytest.mark.parametrize(
    ("peer_index", "expected"),
    [(0, "kourier-system/3scale-kourier-gateway on port 8012"), (1, "knative-serving/activator on port 8012")],
)
def test_delivery_peer_dropped(broken, peer_index, expected):
    render = broken("prod")
    deliveries(render)["spec"]["ingress"][0]["from"].pop(peer_index)
    messages = [str(f) for f in run_check(network_policy.check_knative_pods_reachable, render)]
    assert any(
        m.startswith(f"[prod] Service.serving.knative.dev {NS}/notifications (apps/notifications/deploy/service.yaml)")
        and expected in m
        for m in messages
    ), messages


def test_autoscaler_scrapes_blocked(broken):
    render = broken("dev")
    render.objects.remove(obj(render, NP, "NetworkPolicy", NS, "notifications-autoscaler-metrics"))
    messages = [str(f) for f in run_check(network_policy.check_knative_pods_reachable, render)]
    assert any("[dev] Service.serving.knative.dev" in m and "autoscaler on port 9090" in m for m in messages), messages
