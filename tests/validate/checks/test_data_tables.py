"""Data tables in both directions: topics.py against the KafkaSources and Triggers; OIDC issuers are https URLs.

Each class of mistake in several variants, in both environments, named with env, object and file."""

import pytest

from gitops.validate.checks import data_tables
from tests.support import obj, run_check

NS = "notifications"
EV = "eventing.knative.dev"
TOPICS_FILE = "apps/notifications/src/notifications/topics.py"
KSVC = f"Service.serving.knative.dev {NS}/notifications"
ENVS = ["dev", "prod"]


def source(render):
    return obj(render, "sources.knative.dev", "KafkaSource", NS, "kafka-source")


def trigger(render, name):
    return obj(render, EV, "Trigger", NS, name)


def messages(render):
    return [str(f) for f in run_check(data_tables.check_topic_table, render)]


@pytest.mark.parametrize("env", ENVS)
def test_real_tree_agrees(renders, env):
    assert messages(renders[env]) == []
    assert run_check(data_tables.check_oidc_issuers, renders[env]) == []


def _drop_topic(render):
    source(render)["spec"]["topics"].remove("loggings")


def _drop_trigger(render):
    render.objects.remove(trigger(render, "loggings"))


def _misroute(render):
    trigger(render, "loggings")["spec"]["subscriber"]["uri"] = "/events/notifications"


def _filter_on_other_topic(render):
    attrs = trigger(render, "loggings")["spec"]["filter"]["attributes"]
    attrs["source"] = attrs["source"].replace("#loggings", "#notifications")


# table topic -> cluster: each one leaves a topics.py topic unread or unrouted; the finding is on the Service,
# named after topics.py
TABLE_TO_CLUSTER = {
    "topic dropped from the KafkaSource": (_drop_topic, "lists 'loggings' but no KafkaSource reads it"),
    "Trigger deleted": (_drop_trigger, "lists 'loggings' but no Trigger routes its events to /events/loggings"),
    "Trigger posts to another topic's path": (_misroute, "no Trigger routes its events to /events/loggings"),
    "Trigger filters another topic's source": (
        _filter_on_other_topic,
        "no Trigger routes its events to /events/loggings",
    ),
}


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("mistake", list(TABLE_TO_CLUSTER))
def test_table_topic_missing_in_the_cluster(broken, env, mistake):
    render = broken(env)
    breaks, expected = TABLE_TO_CLUSTER[mistake]
    breaks(render)
    found = messages(render)
    assert any(m.startswith(f"[{env}] {KSVC} ({TOPICS_FILE})") and expected in m for m in found), found


@pytest.mark.parametrize("env", ENVS)
def test_table_topic_nobody_reads_yet_is_the_apps_first_step(broken, env, monkeypatch):
    """A topic added to topics.py alone is step 1 of docs/forking.md's 'Add a topic' (issue 28: the image serves
    the route before any Trigger points at it); nothing reads it, so nothing is lost: not a finding. Read by a
    KafkaSource but routed by no Trigger it is one (test_table_topic_missing_in_the_cluster)."""
    table = {"notifications": "/events/notifications", "loggings": "/events/loggings", "audits": "/events/audits"}
    monkeypatch.setattr(data_tables, "served_topics", lambda app: table)
    assert messages(broken(env)) == []
    render = broken(env)
    source(render)["spec"]["topics"].append("audits")
    found = messages(render)
    assert any(m.startswith(f"[{env}] {KSVC} ({TOPICS_FILE})") and "'audits' but no Trigger routes" in m for m in found)


@pytest.mark.parametrize("env", ENVS)
def test_kafka_source_topic_missing_from_the_table(broken, env):
    render = broken(env)
    source(render)["spec"]["topics"].append("audits")
    found = messages(render)
    assert any(
        m.startswith(f"[{env}] KafkaSource {NS}/kafka-source (base/eventing/kafka-source.yaml)")
        and f"reads topic 'audits', which {TOPICS_FILE} does not list" in m
        for m in found
    ), found


@pytest.mark.parametrize("env", ENVS)
def test_trigger_to_a_path_of_no_topic(broken, env):
    render = broken(env)
    trigger(render, "loggings")["spec"]["subscriber"]["uri"] = "/events/logs"
    found = messages(render)
    assert any(
        m.startswith(f"[{env}] Trigger {NS}/loggings (base/eventing/triggers.yaml)")
        and "to /events/logs, which is no topic" in m
        for m in found
    ), found


@pytest.mark.parametrize("env", ENVS)
def test_trigger_to_another_topics_handler_is_named(broken, env):
    render = broken(env)
    _misroute(render)
    found = messages(render)
    assert any(
        m.startswith(f"[{env}] Trigger {NS}/loggings")
        and "routes events of topic(s) loggings to /events/notifications, the handler of topic 'notifications'" in m
        for m in found
    ), found


def _issuer_env(render):
    ksvc = obj(render, "serving.knative.dev", "Service", NS, "notifications")
    env = ksvc["spec"]["template"]["spec"]["containers"][0].setdefault("env", [])
    found = next((e for e in env if e["name"] == "OIDC_ISSUER"), None)
    if found is None:
        found = {"name": "OIDC_ISSUER", "value": ""}
        env.append(found)
    return found


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize(
    ("issuer", "expected"),
    [
        ("http://kubernetes.default.svc.cluster.local", "uses scheme 'http', not https"),
        ("kubernetes.default.svc.cluster.local", "uses scheme '(none)'"),
        ("https://", "has no host"),
        ("https://kubernetes.default.svc?aud=x", "has a query or fragment"),
        ("https://kubernetes.default.svc#issuer", "has a query or fragment"),
    ],
)
def test_issuer_not_an_https_url(broken, env, issuer, expected):
    render = broken(env)
    _issuer_env(render)["value"] = issuer
    found = [str(f) for f in run_check(data_tables.check_oidc_issuers, render)]
    origin = "overlays/prod/oidc-subscriber.yaml" if env == "prod" else "apps/notifications/deploy/service.yaml"
    assert any(
        m.startswith(f"[{env}] {KSVC} ({origin})") and f"OIDC_ISSUER={issuer!r} {expected}" in m for m in found
    ), found
