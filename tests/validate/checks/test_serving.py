"""Knative Service, production-policy and upstream-install checks against broken copies of the render."""

import pytest

from gitops.validate import waivers
from gitops.validate.checks import policy, serving, upstream_install
from tests.support import checks_of, obj, run_check

NS = "notifications"


def ksvc(render):
    return obj(render, "serving.knative.dev", "Service", NS, "notifications")


def template_annotations(render):
    return ksvc(render)["spec"]["template"]["metadata"]["annotations"]


def container(render):
    return ksvc(render)["spec"]["template"]["spec"]["containers"][0]


ALL_CHECKS = checks_of(serving, policy, upstream_install)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_real_tree_passes(renders, check, env):
    findings = [f for f in run_check(check, renders[env]) if "envoyproxy/envoy" not in f.message]  # waived upstream tag
    assert findings == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "autoscaling.knative.dev/scale-to-zero",
            "false",
            "not a Knative autoscaling annotation: it is accepted and silently ignored",
        ),
        # Values, ranges, min <= max <= max-scale-limit and placement are serving's webhook rules: see
        # tests/validate/test_admission.py.
        ("autoscaling.knative.dev/class", "hpa.autoscaling.knative.dev", "needs serving-hpa.yaml"),
    ],
)
def test_template_autoscaling_annotations(broken, key, value, expected):
    render = broken("prod")
    template_annotations(render)[key] = value
    findings = run_check(serving.check_autoscaling, render)
    assert any(
        expected in f.message and f.obj == "Service.serving.knative.dev notifications/notifications" for f in findings
    ), findings


def test_legacy_camel_case_keys_are_understood(broken):
    render = broken("prod")
    template_annotations(render)["autoscaling.knative.dev/maxScale"] = "20"
    assert run_check(serving.check_autoscaling, render) == []


def test_visibility_misplaced(broken):
    render = broken("prod")
    service = ksvc(render)
    service["metadata"]["labels"].pop("networking.knative.dev/visibility")
    service["metadata"].setdefault("annotations", {})["networking.knative.dev/visibility"] = "cluster-local"
    assert any("is a label, not an annotation" in f.message for f in run_check(serving.check_visibility, render))
    service["metadata"]["labels"]["networking.knative.dev/visibility"] = "internal"
    assert any(
        "must be cluster-local, got 'internal'" in f.message for f in run_check(serving.check_visibility, render)
    )


def test_probe_path_not_served(broken):
    render = broken("dev")
    container(render)["readinessProbe"]["httpGet"]["path"] = "/ready"
    findings = run_check(serving.check_probe_paths, render)
    assert len(findings) == 1 and "readinessProbe GET /ready is not served by apps/notifications" in findings[0].message
    assert findings[0].origin == "apps/notifications/deploy/service.yaml"


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (
            {"requests": {"memory": "512Mi"}, "limits": {"memory": "256Mi"}},
            "requests 512Mi memory but is limited to 256Mi",
        ),
        ({"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}, "requests 2 cpu but is limited to 1500m"),
        ({"requests": {"memory": "128MB"}}, "'128MB' is not a quantity"),
    ],
)
def test_resources(broken, resources, expected):
    render = broken("dev")
    container(render)["resources"] = resources
    assert any(expected in f.message for f in run_check(serving.check_resources, render))


def test_quantity_parsing():
    assert serving.quantity("1500m") == serving.quantity("1.5")
    assert serving.quantity("1Gi") == 1024 * serving.quantity("1Mi")
    assert serving.quantity("1e3") == 1000
    assert serving.quantity("12 Mi") is None


def test_prod_policy_findings(broken):
    render = broken("prod")
    obj(render, "", "ConfigMap", NS, "kafka-broker-config")["data"]["default.topic.replication.factor"] = "1"
    ksvc(render)["metadata"]["labels"].pop("networking.knative.dev/visibility")
    c = container(render)
    c["image"] = "registry.example.com/platform/notifications:1.2.3"
    c["securityContext"].pop("readOnlyRootFilesystem")
    c["resources"]["limits"].pop("memory")
    obj(render, "eventing.knative.dev", "Broker", NS, "events")["spec"]["delivery"].pop("deadLetterSink")
    messages = [f.message for f in run_check(policy.check_production_policy, render) if "envoy" not in f.message]
    expected = [
        "replication.factor '1' < 3",
        "public in production",
        "image 'registry.example.com/platform/notifications:1.2.3' is not pinned by @sha256 digest",
        "securityContext lacks readOnlyRootFilesystem: true",
        "has no limits.memory",
        "no dead-letter sink",
    ]
    for text in expected:
        assert any(text in m for m in messages), (text, messages)


def test_dev_is_not_held_to_prod_policy(broken):
    render = broken("dev")
    container(render)["image"] = "notifications:latest"
    assert run_check(policy.check_production_policy, render) == []


def test_secret_with_data_in_git(broken):
    render = broken("dev")
    render.objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "kafka-credentials", "namespace": NS},
            "stringData": {"password": "hunter2"},
        }
    )
    findings = run_check(policy.check_secrets_not_in_git, render)
    assert [f.obj for f in findings] == ["Secret notifications/kafka-credentials"]


def test_upstream_empty_secrets_are_fine(renders):
    secrets = [o for o in renders["prod"].objects if o["kind"] == "Secret"]
    assert secrets, "upstream ships webhook certificate Secrets"
    assert run_check(policy.check_secrets_not_in_git, renders["prod"]) == []


def test_example_checksum_matches_knative_pkg(renders):
    cms = [
        o for o in renders["dev"].objects if "knative.dev/example-checksum" in (o["metadata"].get("annotations") or {})
    ]
    assert len(cms) > 10
    for cm in cms:
        assert (
            upstream_install.example_checksum(cm["data"]["_example"])
            == cm["metadata"]["annotations"]["knative.dev/example-checksum"]
        )


def test_edited_example_is_reported(broken):
    render = broken("dev")
    network = obj(render, "", "ConfigMap", "knative-serving", "config-network")
    network["data"]["_example"] = network["data"]["_example"].replace("ingress-class", "ingress.class", 1)
    findings = run_check(upstream_install.check_config_examples_untouched, render)
    assert [f.obj for f in findings] == [
        "ConfigMap knative-serving/config-network"
    ] and "_example was edited" in findings[0].message


def test_missing_kourier_ingress_class(broken):
    render = broken("prod")
    del obj(render, "", "ConfigMap", "knative-serving", "config-network")["data"]["ingress-class"]
    assert any("ingress-class is None" in f.message for f in run_check(upstream_install.check_ingress_class, render))


def test_namespaced_object_without_namespace(broken):
    render = broken("dev")
    del ksvc(render)["metadata"]["namespace"]
    cm = obj(render, "", "ConfigMap", NS, "kafka-broker-config")
    cm["metadata"]["namespace"] = "notification"
    messages = [f.message for f in run_check(upstream_install.check_namespaces, render)]
    assert any("without metadata.namespace" in m for m in messages)
    assert any("namespace 'notification' is neither in the render" in m for m in messages)


def test_kafka_source_without_its_data_plane(broken):
    """The original article applied only the controller: KafkaSources were accepted but never dispatched."""
    render = broken("dev")
    render.objects.remove(obj(render, "apps", "StatefulSet", "knative-eventing", "kafka-source-dispatcher"))
    findings = run_check(upstream_install.check_data_planes, render)
    assert [f.obj for f in findings] == ["KafkaSource notifications/kafka-source"]
    assert "eventing-kafka-source.yaml" in findings[0].message
    render.omitted.clear()  # the broker data plane is left out offline; if it were silently missing, that is a finding
    assert any("kafka-broker-dispatcher" in f.message for f in run_check(upstream_install.check_data_planes, render))


@pytest.mark.parametrize(
    ("probe", "handler", "port"),
    [
        ("readinessProbe", "httpGet", 9090),
        ("livenessProbe", "httpGet", "admin"),
        ("livenessProbe", "tcpSocket", 8081),
    ],
)
def test_probe_on_a_port_the_app_does_not_listen_on(broken, probe, handler, port):
    render = broken("prod")
    container(render)[probe] = {handler: {"port": port, **({"path": "/readyz"} if handler == "httpGet" else {})}}
    findings = run_check(serving.check_probe_ports, render)
    assert len(findings) == 1, findings
    found = findings[0]
    assert found.env == "prod" and found.obj == "Service.serving.knative.dev notifications/notifications"
    assert found.origin == "apps/notifications/deploy/service.yaml"
    assert f"{probe} {handler} port {port!r} is not the port the app listens on (8080" in found.message


@pytest.mark.parametrize("port", [8080, "http1", 0])
def test_probe_on_the_serving_port_passes(broken, port):
    render = broken("prod")
    container(render)["readinessProbe"]["httpGet"]["port"] = port
    assert run_check(serving.check_probe_ports, render) == []


def test_probe_port_follows_the_declared_container_port(broken):
    render = broken("dev")
    container(render)["ports"] = [{"name": "h2c", "containerPort": 9000}]
    container(render)["readinessProbe"]["httpGet"]["port"] = 8080
    findings = run_check(serving.check_probe_ports, render)
    assert len(findings) == 1 and "(9000, its containerPort and $PORT)" in findings[0].message


def trigger(render):
    return obj(render, "eventing.knative.dev", "Trigger", NS, "notifications")


def broker(render):
    return obj(render, "eventing.knative.dev", "Broker", NS, "events")


def test_prod_trigger_delivering_outside_the_cluster(broken):
    render = broken("prod")
    trigger(render)["spec"]["subscriber"] = {"uri": "https://hooks.example.com/events"}
    findings = run_check(policy.check_events_stay_in_cluster, render)
    assert len(findings) == 1, findings
    found = findings[0]
    assert (found.check, found.env, found.obj, found.origin) == (
        "event-egress",
        "prod",
        "Trigger notifications/notifications",
        "base/eventing/triggers.yaml",
    )
    assert "spec.subscriber delivers to hooks.example.com, outside the cluster" in found.message


def test_prod_dead_letter_sink_outside_the_cluster(broken):
    render = broken("prod")
    broker(render)["spec"]["delivery"]["deadLetterSink"] = {"uri": "http://10.1.2.3/dead"}
    trigger(render)["spec"]["delivery"] = {"deadLetterSink": {"uri": "https://dlq.example.org"}}
    found = {(f.obj, f.message.split(",")[0]) for f in run_check(policy.check_events_stay_in_cluster, render)}
    assert found == {
        ("Broker notifications/events", "spec.delivery.deadLetterSink delivers to 10.1.2.3"),
        ("Trigger notifications/notifications", "spec.delivery.deadLetterSink delivers to dlq.example.org"),
    }


@pytest.mark.parametrize(
    "uri",
    [
        "http://notifications.notifications.svc.cluster.local/events/notifications",
        "http://notifications.notifications.svc/x",
        "http://notifications/x",
        "http://notifications.notifications/x",
        "http://127.0.0.1:8080/x",
    ],
)
def test_in_cluster_addresses_are_not_egress(broken, uri):
    render = broken("prod")
    trigger(render)["spec"]["subscriber"] = {"uri": uri}
    assert run_check(policy.check_events_stay_in_cluster, render) == []


def test_egress_is_a_prod_rule_and_can_be_waived(broken, tmp_path):
    dev = broken("dev")
    trigger(dev)["spec"]["subscriber"] = {"uri": "https://hooks.example.com/events"}
    assert run_check(policy.check_events_stay_in_cluster, dev) == []
    prod = broken("prod")
    trigger(prod)["spec"]["subscriber"] = {"uri": "https://hooks.example.com/events"}
    (tmp_path / waivers.WAIVERS_FILE).write_text(
        "waivers:\n"
        "  - check: event-egress\n"
        "    env: prod\n"
        "    object: Trigger notifications/notifications\n"
        "    message_contains: hooks.example.com\n"
        "    reason: the partner's webhook is the product\n"
    )
    failing, waived = waivers.apply(run_check(policy.check_events_stay_in_cluster, prod), waivers.load(tmp_path))
    assert failing == [] and [w.reason for _, w in waived] == ["the partner's webhook is the product"]
