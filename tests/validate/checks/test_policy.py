"""Production-policy, Secret and event-egress checks against broken copies of the render."""

import pytest

from gitops.validate import waivers
from gitops.validate.checks import policy
from tests.support import obj, run_check
from tests.validate.checks.ksvc_support import NS, container, ksvc


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
