"""NetworkPolicy checks: the real tree passes; each class of mistake, in several variants and in both environments,
is named with env, object and file."""

import pytest

from gitops.core import manifests
from gitops.validate import waivers
from gitops.validate.checks import network_policy
from gitops.validate.waivers import Waiver
from tests.support import obj, run_check

NS = "notifications"
NP = "networking.k8s.io"
POLICY_FILE = "apps/notifications/deploy/networkpolicy.yaml"
DELIVERIES = f"[prod] NetworkPolicy {NS}/notifications-deliveries ({POLICY_FILE})"
ENVS = ["dev", "prod"]


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


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_missing_default_deny(broken, env):
    """docs/security-model.md: every environment is default-deny, so dev is held to it too."""
    render = broken(env)
    render.objects.remove(obj(render, NP, "NetworkPolicy", NS, "default-deny-ingress"))
    messages = [str(f) for f in run_check(network_policy.check_default_deny, render)]
    assert any(
        m.startswith(f"[{env}] Namespace {NS} (base/eventing/namespace.yaml)") and "no default-deny ingress" in m
        for m in messages
    ), messages


@pytest.mark.parametrize(
    ("peer_index", "expected"),
    [(0, "kourier-system/3scale-kourier-gateway on port 8012"), (1, "knative-serving/activator on port 8012")],
)
def test_delivery_peer_dropped(broken, peer_index, expected):
    render = broken("prod")
    deliveries(render)["spec"]["ingress"][0]["from"].pop(peer_index)
    messages = [str(f) for f in run_check(network_policy.check_event_path_reachable, render)]
    assert any(
        m.startswith(f"[prod] Service.serving.knative.dev {NS}/notifications (apps/notifications/deploy/service.yaml)")
        and expected in m
        for m in messages
    ), messages


def test_autoscaler_scrapes_blocked(broken):
    render = broken("dev")
    render.objects.remove(obj(render, NP, "NetworkPolicy", NS, "notifications-autoscaler-metrics"))
    messages = [str(f) for f in run_check(network_policy.check_event_path_reachable, render)]
    assert any("[dev] Service.serving.knative.dev" in m and "autoscaler on port 9090" in m for m in messages), messages


def _deliveries_rule(render):
    return deliveries(render)["spec"]["ingress"][0]


def _extra_policy(render, name, spec):
    render.objects.append(
        {"apiVersion": f"{NP}/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": NS}, "spec": spec}
    )


# Each breaks the real policies the way a person plausibly would; the check must name what the rule now admits.
WIDENINGS = {
    "empty rule": (lambda r: deliveries(r)["spec"].__setitem__("ingress", [{}]), "every pod and every address"),
    "rule without from": (lambda r: _deliveries_rule(r).pop("from"), "every pod and every address"),
    "empty namespaceSelector": (
        lambda r: _deliveries_rule(r)["from"][0].__setitem__("namespaceSelector", {}),
        "labelled {app=3scale-kourier-gateway} in every namespace",
    ),
    "empty podSelector": (
        lambda r: _deliveries_rule(r)["from"][1].__setitem__("podSelector", {}),
        "every pod in namespace knative-serving",
    ),
    "namespaceSelector without podSelector": (
        lambda r: _deliveries_rule(r)["from"][1].pop("podSelector"),
        "every pod in namespace knative-serving",
    ),
    "podSelector {} alone (own namespace)": (
        lambda r: _deliveries_rule(r)["from"].append({"podSelector": {}}),
        "every pod in namespace notifications",
    ),
    "namespace picked by a settable label": (
        lambda r: _deliveries_rule(r)["from"][1].__setitem__(
            "namespaceSelector", {"matchLabels": {"app.kubernetes.io/name": "knative-serving"}}
        ),
        "in any namespace labelled {app.kubernetes.io/name=knative-serving}",
    ),
    "podSelector Exists": (
        lambda r: _deliveries_rule(r)["from"][1].__setitem__(
            "podSelector", {"matchExpressions": [{"key": "app", "operator": "Exists"}]}
        ),
        "labelled {app=<any value>} in namespace knative-serving",
    ),
    "podSelector In with a second app": (
        lambda r: _deliveries_rule(r)["from"][1].__setitem__(
            "podSelector", {"matchExpressions": [{"key": "app", "operator": "In", "values": ["activator", "webhook"]}]}
        ),
        "labelled {app=webhook} in namespace knative-serving",
    ),
    "namespace and pod selectors split into two peers (OR, not AND)": (
        lambda r: _deliveries_rule(r).__setitem__(
            "from",
            [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kourier-system"}}},
                {"podSelector": {"matchLabels": {"app": "3scale-kourier-gateway"}}},
            ],
        ),
        "every pod in namespace kourier-system",
    ),
    "peer without its namespaceSelector (the policy's own namespace)": (
        lambda r: _deliveries_rule(r)["from"][1].pop("namespaceSelector"),
        "labelled {app=activator} in namespace notifications",
    ),
    "podSelector NotIn": (
        lambda r: _deliveries_rule(r)["from"][1].__setitem__(
            "podSelector", {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["webhook"]}]}
        ),
        "every pod in namespace knative-serving",
    ),
    "namespaceSelector NotIn": (
        lambda r: _deliveries_rule(r)["from"][0].__setitem__(
            "namespaceSelector",
            {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["x"]}]},
        ),
        "in any namespace labelled {kubernetes.io/metadata.name NotIn ['x']}",
    ),
    "UDP instead of TCP": (lambda r: _deliveries_rule(r)["ports"][0].__setitem__("protocol", "UDP"), "on UDP 8012"),
    "autoscaler admitted on the request port": (
        lambda r: _deliveries_rule(r)["from"].append(
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "knative-serving"}},
                "podSelector": {"matchLabels": {"app": "autoscaler"}},
            }
        ),
        "labelled {app=autoscaler} in namespace knative-serving to Service.serving.knative.dev notifications/notifications on TCP 8012",
    ),
    "ipBlock 0.0.0.0/0": (
        lambda r: _deliveries_rule(r)["from"].append({"ipBlock": {"cidr": "0.0.0.0/0"}}),
        "ipBlock 0.0.0.0/0 (every IPv4 address",
    ),
    "ipBlock ::/0": (
        lambda r: _deliveries_rule(r)["from"].append({"ipBlock": {"cidr": "::/0"}}),
        "ipBlock ::/0 (every IPv6 address",
    ),
    "ipBlock 0.0.0.0/0 with except": (
        lambda r: _deliveries_rule(r)["from"].append({"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}),
        "ipBlock 0.0.0.0/0 except ['10.0.0.0/8']",
    ),
    "wide ipBlock 10.0.0.0/8": (
        lambda r: _deliveries_rule(r)["from"].append({"ipBlock": {"cidr": "10.0.0.0/8"}}),
        "ipBlock 10.0.0.0/8 (16777216 addresses",
    ),
    "named port user-port (the app, past queue-proxy)": (
        lambda r: _deliveries_rule(r)["ports"].append({"port": "user-port"}),
        "on TCP 8080 (notifications's user-port)",
    ),
    "named port http-usermetric": (
        lambda r: _deliveries_rule(r)["ports"].__setitem__(0, {"port": "http-usermetric"}),
        "on TCP 9091 (queue-proxy's http-usermetric)",
    ),
    "numeric app port": (lambda r: _deliveries_rule(r)["ports"][0].__setitem__("port", 8080), "on TCP 8080"),
    "port range": (
        lambda r: _deliveries_rule(r)["ports"][0].__setitem__("endPort", 9100),
        "on TCP 8013-9100 (including TCP 8080 (notifications's user-port)",
    ),
    "port without number": (lambda r: _deliveries_rule(r)["ports"][0].pop("port"), "on every port"),
    "no ports at all": (lambda r: _deliveries_rule(r).pop("ports"), "on every port"),
    "a second policy admitting the namespace (union)": (
        lambda r: _extra_policy(
            r, "allow-same-namespace", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}
        ),
        "every pod in namespace notifications",
    ),
    "a second policy without policyTypes (defaults to Ingress)": (
        lambda r: _extra_policy(
            r,
            "allow-monitoring",
            {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"port": 9091}]}]},
        ),
        "every pod in every namespace",
    ),
    "default-deny turned allow-all": (
        lambda r: obj(r, NP, "NetworkPolicy", NS, "default-deny-ingress")["spec"].__setitem__("ingress", [{}]),
        "every pod and every address",
    ),
}


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("mistake", list(WIDENINGS))
def test_policy_admitting_more_than_the_event_path_needs(broken, env, mistake):
    render = broken(env)
    widen, admitted = WIDENINGS[mistake]
    widen(render)
    messages = [str(f) for f in run_check(network_policy.check_admitted_senders, render)]
    assert any(
        m.startswith(f"[{env}] NetworkPolicy {NS}/") and admitted in m and "wider than the senders" in m
        for m in messages
    ), messages
    assert all("Service.serving.knative.dev notifications/notifications" in m for m in messages), messages


@pytest.mark.parametrize("env", ENVS)
def test_policy_file_named(broken, env):
    render = broken(env)
    _deliveries_rule(render)["from"].append({"ipBlock": {"cidr": "0.0.0.0/0"}})
    (finding,) = run_check(network_policy.check_admitted_senders, render)
    assert (finding.env, finding.obj, finding.origin) == (
        env,
        f"NetworkPolicy {NS}/notifications-deliveries",
        POLICY_FILE,
    )


@pytest.mark.parametrize("env", ENVS)
def test_every_policy_removed_leaves_the_pods_open(broken, env):
    render = broken(env)
    for policy in list(manifests.of_kind(render.objects, NP, "NetworkPolicy")):
        render.objects.remove(policy)
    messages = [str(f) for f in run_check(network_policy.check_admitted_senders, render)]
    assert any(
        m.startswith(f"[{env}] Service.serving.knative.dev {NS}/notifications (apps/notifications/deploy/service.yaml)")
        and "no ingress NetworkPolicy selects its pods" in m
        for m in messages
    ), messages


@pytest.mark.parametrize("env", ENVS)
def test_exact_senders_pass_in_other_shapes(broken, env):
    """Narrower or equivalent shapes are not wider: In with one value, matchExpressions on the namespace name,
    named ports that resolve to the needed ones, an extra label on the sender."""
    render = broken(env)
    rule = _deliveries_rule(render)
    rule["from"][1] = {
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["knative-serving"]}
            ]
        },
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/name": "knative-serving"},
            "matchExpressions": [{"key": "app", "operator": "In", "values": ["activator"]}],
        },
    }
    rule["ports"] = [{"port": "queue-port"}]
    assert run_check(network_policy.check_admitted_senders, render) == []
    assert run_check(network_policy.check_event_path_reachable, render) == []


@pytest.mark.parametrize("env", ENVS)
def test_waiver_names_an_extra_sender(broken, env):
    """A sender beyond the event path is accepted only through a waiver that matches the finding."""
    render = broken(env)
    _extra_policy(
        render,
        "prometheus",
        {
            "podSelector": {"matchLabels": {"serving.knative.dev/service": "notifications"}},
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                            "podSelector": {"matchLabels": {"app": "prometheus"}},
                        }
                    ],
                    "ports": [{"port": "http-usermetric"}],
                }
            ],
        },
    )
    (finding,) = run_check(network_policy.check_admitted_senders, render)
    waiver = Waiver("network-ingress", env, finding.obj, "{app=prometheus} in namespace monitoring", "scrapes")
    assert waivers.apply([finding], [waiver]) == ([], [(finding, waiver)])


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize(
    ("mistake", "expected"),
    [
        ("named port the Revision pod renames", "names port 'http1', which no container"),
        ("Egress-only policyTypes with ingress rules", "leaves out Ingress: Kubernetes ignores them"),
    ],
)
def test_rules_that_open_nothing(broken, env, mistake, expected):
    render = broken(env)
    if mistake.startswith("named"):
        _deliveries_rule(render)["ports"] = [{"port": "http1"}]
    else:
        deliveries(render)["spec"]["policyTypes"] = ["Egress"]
    messages = [str(f) for f in run_check(network_policy.check_network_policies, render)]
    assert any(
        m.startswith(f"[{env}] NetworkPolicy {NS}/notifications-deliveries ({POLICY_FILE})") and expected in m
        for m in messages
    ), messages
    dropped = [str(f) for f in run_check(network_policy.check_event_path_reachable, render)]
    assert any("3scale-kourier-gateway on port 8012" in m for m in dropped), dropped


def test_h2c_revision_needs_8013(broken):
    """queue-port is 8013 when the user port is named h2c: the policy's numeric 8012 then locks the gateway out."""
    render = broken("prod")
    ksvc = obj(render, "serving.knative.dev", "Service", NS, "notifications")
    ksvc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] = "h2c"
    messages = [str(f) for f in run_check(network_policy.check_event_path_reachable, render)]
    assert any("3scale-kourier-gateway on port 8013 (queue-port)" in m for m in messages), messages


def _receiver_policy(render, peer: dict, port="http"):
    """A policy a platform team might add for the Broker receiver (rebuilt from the 1.23 data plane sources)."""
    render.objects.append(
        {
            "apiVersion": f"{NP}/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "broker-receiver", "namespace": "knative-eventing"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "kafka-broker-receiver"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [peer], "ports": [{"port": port}]}],
            },
        }
    )


SOURCE_DISPATCHER = {"podSelector": {"matchLabels": {"app": "kafka-source-dispatcher"}}}


@pytest.mark.parametrize("env", ENVS)
def test_kafka_dispatcher_is_a_needed_sender(broken, env):
    """The KafkaSource dispatcher into the Broker receiver on its `http` port is the event path: not wider."""
    render = broken(env)
    _receiver_policy(render, SOURCE_DISPATCHER)
    assert run_check(network_policy.check_admitted_senders, render) == []
    assert run_check(network_policy.check_event_path_reachable, render) == []


@pytest.mark.parametrize("env", ENVS)
def test_kafka_receiver_policy_wider_or_locking_out(broken, env):
    render = broken(env)
    _receiver_policy(render, {"podSelector": {}}, port="http-metrics")
    wider = [str(f) for f in run_check(network_policy.check_admitted_senders, render)]
    assert any(
        m.startswith(f"[{env}] NetworkPolicy knative-eventing/broker-receiver (?)")
        and "every pod in namespace knative-eventing" in m
        and "TCP 9090 (kafka-broker-receiver's http-metrics)" in m
        for m in wider
    ), wider
    dropped = [str(f) for f in run_check(network_policy.check_event_path_reachable, render)]
    assert any(
        f"[{env}] Deployment knative-eventing/kafka-broker-receiver" in m
        and "none admits knative-eventing/kafka-source-dispatcher on port 8080 (http)" in m
        for m in dropped
    ), dropped


SCRAPER = f"NetworkPolicy {NS}/metrics-scraper (base/monitoring/scrape.yaml)"


def _scraper_rule(render):
    return obj(render, NP, "NetworkPolicy", NS, "metrics-scraper")["spec"]["ingress"][0]


@pytest.mark.parametrize("env", ENVS)
def test_metrics_scraper_passes_and_is_a_needed_sender(broken, env):
    """The scraper named in base/monitoring/scrape.yaml reaches the subscriber's user-port and nothing else; its
    namespace (outside the render) is not reported as matching nothing."""
    render = broken(env)
    for check in (network_policy.check_admitted_senders, network_policy.check_network_policies):
        assert not [str(f) for f in run_check(check, render)]


@pytest.mark.parametrize(
    "widen, admitted",
    [
        (lambda rule: rule["from"][0].pop("podSelector"), "every pod of namespace monitoring"),
        (lambda rule: rule["ports"].append({"protocol": "TCP", "port": 8012}), "TCP 8012"),
        (lambda rule: rule["from"][0].update(namespaceSelector={}), "any namespace"),
    ],
    ids=["any-pod-of-the-namespace", "extra-port", "any-namespace"],
)
def test_metrics_scraper_widened(broken, widen, admitted):
    render = broken("prod")
    widen(_scraper_rule(render))
    messages = [str(f) for f in run_check(network_policy.check_admitted_senders, render)]
    assert any(m.startswith(f"[prod] {SCRAPER}") and "wider than the senders" in m for m in messages), messages


def test_metrics_scraper_port_not_the_podmonitors(broken):
    """The PodMonitor scrapes user-port: a scraper rule on another port leaves the scrape dropped and admits more."""
    render = broken("dev")
    _scraper_rule(render)["ports"] = [{"protocol": "TCP", "port": "queue-port"}]
    messages = [str(f) for f in run_check(network_policy.check_admitted_senders, render)]
    assert any(m.startswith(f"[dev] {SCRAPER}") and "queue-port" in m for m in messages), messages
