"""alert-rules: each mistake an alert can carry is named with env, object and file."""

import pytest

from gitops.validate.checks import alerts
from tests.support import obj, run_check

RULE = "PrometheusRule notifications/knative-kafka-events (base/monitoring/alerts.yaml)"


def _rule(render):
    return obj(render, "monitoring.coreos.com", "PrometheusRule", "notifications", "knative-kafka-events")


def _alert(render, name):
    for group in _rule(render)["spec"]["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return rule
    raise AssertionError(name)


def _messages(render):
    return [str(f) for f in run_check(alerts.check_alert_rules, render)]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_metric_nothing_exports(broken, env):
    render = broken(env)
    rule = _alert(render, "KnativeKafkaDeadLetterSinkFailing")
    # A name from memory: OpenCensus-era Knative called it event_dispatch_latencies.
    rule["expr"] = rule["expr"].replace("kn_eventing_dispatch_latency_ms_count", "event_dispatch_latencies_count")
    messages = _messages(render)
    assert any(
        m.startswith(f"[{env}] {RULE}")
        and "KnativeKafkaDeadLetterSinkFailing" in m
        and "metric 'event_dispatch_latencies_count' is exported by nothing here" in m
        for m in messages
    ), messages


def test_label_the_component_does_not_set(broken):
    render = broken("prod")
    rule = _alert(render, "KnativeKafkaTriggerDeliveryFailing")
    rule["expr"] = rule["expr"].replace("kn_trigger_name!=", "trigger!=")
    messages = _messages(render)
    assert any(m.startswith(f"[prod] {RULE}") and "label 'trigger' is carried by none of" in m for m in messages)


def test_label_replace_from_a_label_the_client_metrics_lack(broken):
    """The lag alert derives its consumer_group from the Kafka client's client_id: a source label Micrometer never
    sets (the Kafka metric tag is client-id, exported client_id) is named; the derived label itself is not."""
    render = broken("dev")
    rule = _alert(render, "KnativeKafkaConsumerGroupLag")
    rule["expr"] = rule["expr"].replace('"client_id"', '"group_id"')
    messages = _messages(render)
    assert any(
        m.startswith(f"[dev] {RULE}")
        and "KnativeKafkaConsumerGroupLag" in m
        and "label 'group_id' is carried by none of kafka_consumer_fetch_manager_records_lag" in m
        for m in messages
    ), messages
    assert not any("'consumer_group'" in m for m in messages), messages


def test_kube_state_metrics_name_not_in_its_source(broken):
    """kube-state-metrics' names come from its source at the pinned version: its v1 name for available replicas
    (kube_deployment_status_replicas_available is the real one) is reported."""
    render = broken("prod")
    rule = _alert(render, "KnativeEventingBelowExpectedReplicas")
    rule["expr"] = rule["expr"].replace("kube_statefulset_status_replicas_ready", "kube_statefulset_replicas_ready")
    messages = _messages(render)
    assert any(
        m.startswith(f"[prod] {RULE}")
        and "KnativeEventingBelowExpectedReplicas" in m
        and "metric 'kube_statefulset_replicas_ready' is exported by nothing here" in m
        for m in messages
    ), messages


def test_kube_state_metrics_names_are_read_from_its_source(tmp_path, monkeypatch):
    from gitops.core.errors import UserError
    from gitops.model import metrics

    known = metrics.kube_state_metrics_exported()
    assert known["kube_deployment_spec_replicas"] == {"namespace", "deployment"}
    assert known["kube_statefulset_status_replicas_ready"] == {"namespace", "statefulset"}
    metrics.kube_state_metrics_exported.cache_clear()
    monkeypatch.setenv("GOMODCACHE", str(tmp_path))
    try:
        with pytest.raises(UserError, match="kube-state-metrics' source is not in the Go module cache"):
            metrics.kube_state_metrics_exported()
    finally:
        metrics.kube_state_metrics_exported.cache_clear()


def test_annotation_label_the_expression_drops(broken):
    render = broken("dev")
    rule = _alert(render, "NotificationsSubscriberErrors")
    rule["annotations"]["summary"] = "{{ $labels.kn_trigger_name }} failing"
    messages = _messages(render)
    assert any("NotificationsSubscriberErrors" in m and "label 'kn_trigger_name'" in m for m in messages), messages


def test_severity_against_the_production_fact(broken):
    render = broken("prod")
    _alert(render, "KnativeKafkaEventsDeadLettered")["labels"]["severity"] = "ticket"
    messages = _messages(render)
    assert any(
        m.startswith("[prod] PrometheusRule notifications/knative-kafka-events")
        and "severity 'ticket', but prod is a production environment" in m
        and "components/alerts-page" in m
        for m in messages
    ), messages


def test_missing_annotations_and_runbook_anchor(broken):
    render = broken("dev")
    rule = _alert(render, "KnativeKafkaDataPlaneDown")
    del rule["annotations"]["description"]
    rule["annotations"]["runbook_url"] = rule["annotations"]["runbook_url"].replace("#knative", "#no-such-")
    messages = _messages(render)
    assert any(m.startswith(f"[dev] {RULE}") and "no annotation 'description'" in m for m in messages), messages
    assert any("is not a heading of docs/operations.md" in m for m in messages), messages


def test_the_shipped_rules_pass(renders):
    for env in ("dev", "prod"):
        assert _messages(renders[env]) == []


DASHBOARD = "ConfigMap notifications/knative-kafka-events-dashboard (base/monitoring/dashboard.yaml)"


def _dashboard(render):
    import json

    config = obj(render, "", "ConfigMap", "notifications", "knative-kafka-events-dashboard")
    return config, json.loads(config["data"]["knative-kafka-events.json"])


@pytest.mark.parametrize(
    "mistake, expected",
    [
        (
            lambda t: t.update(expr=t["expr"].replace("notifications_events_total", "notifications_events")),
            "metric 'notifications_events'",
        ),
        (lambda t: t.update(legendFormat="{{trigger}}"), "label 'trigger'"),
    ],
    ids=["metric-without-_total", "legend-label"],
)
def test_dashboard_panel_names_what_nothing_exports(broken, mistake, expected):
    import json

    render = broken("dev")
    config, dashboard = _dashboard(render)
    panel = next(p for p in dashboard["panels"] if p["title"] == "Subscriber outcomes per route")
    mistake(panel["targets"][0])
    config["data"]["knative-kafka-events.json"] = json.dumps(dashboard)
    messages = [str(f) for f in run_check(alerts.check_dashboard_queries, render)]
    assert any(
        m.startswith(f"[dev] {DASHBOARD}") and "'Subscriber outcomes per route'" in m and expected in m
        for m in messages
    ), messages


def test_dashboard_that_is_not_json(broken):
    render = broken("prod")
    config, _ = _dashboard(render)
    config["data"]["knative-kafka-events.json"] = "{not json"
    messages = [str(f) for f in run_check(alerts.check_dashboard_queries, render)]
    assert any(m.startswith(f"[prod] {DASHBOARD}") and "is not JSON" in m for m in messages), messages


def test_the_shipped_dashboard_passes(renders):
    for env in ("dev", "prod"):
        assert [str(f) for f in run_check(alerts.check_dashboard_queries, renders[env])] == []
