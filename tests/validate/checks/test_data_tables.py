"""Data tables in both directions: topics.py against the KafkaSources and Triggers; OIDC issuers are https URLs.

Each class of mistake in several variants, in both environments, named with env, object and file."""

import copy

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


# --- topic-trust: who can make a Trigger route a record as their topic's --------------------------------------


def trust(render) -> list[str]:
    return [str(f) for f in run_check(data_tables.check_topic_forgery, render)]


@pytest.mark.parametrize("env", ENVS)
def test_one_writer_set_for_both_topics_is_the_stated_trust(renders, env):
    """Both topics say the same `writers` (topics.py), so one KafkaSource for both and Triggers on type and source
    are what that trust allows."""
    assert trust(renders[env]) == []


@pytest.fixture
def separate_writers(monkeypatch):
    """topics.py saying that different principals write the two topics."""
    monkeypatch.setattr(
        data_tables, "topic_writers", lambda _app: {"notifications": "notify-team", "loggings": "every-service"}
    )


@pytest.mark.parametrize("env", ENVS)
def test_topics_with_different_writers_behind_one_kafka_source_fail(renders, env, separate_writers):
    found = trust(renders[env])
    for name, other, writers in (
        ("notifications", "loggings", "every-service"),
        ("loggings", "notifications", "notify-team"),
    ):
        assert any(
            m.startswith(f"[{env}] Trigger {NS}/{name} (base/eventing/triggers.yaml): routes topic(s) {name} ")
            and f"on attributes a writer of {other} ({writers}) can set too" in m
            and TOPICS_FILE in m
            for m in found
        ), found
    assert len(found) == 2


def _one_source_per_topic(render, overrides: dict[str, dict[str, str]]) -> None:
    """The design that separates the topics: a KafkaSource per topic with its `overrides`, each Trigger filtering
    on the extension `sourcetopic`."""
    original = source(render)
    render.objects.remove(original)
    for topic in ("notifications", "loggings"):
        clone = copy.deepcopy(original)
        clone["metadata"]["name"] = f"kafka-source-{topic}"
        clone["spec"]["topics"] = [topic]
        if overrides.get(topic):
            clone["spec"]["ceOverrides"] = {"extensions": overrides[topic]}
        render.objects.append(clone)
        attributes = trigger(render, topic)["spec"]["filter"]["attributes"]
        attributes["source"] = f"/apis/v1/namespaces/{NS}/kafkasources/kafka-source-{topic}#{topic}"
        attributes["sourcetopic"] = topic


def test_a_kafka_source_per_topic_with_an_override_each_trigger_filters_on_passes(broken, separate_writers):
    render = broken("prod")
    _one_source_per_topic(render, {t: {"sourcetopic": t} for t in ("notifications", "loggings")})
    assert trust(render) == []


def test_an_override_another_source_does_not_set_is_forgeable(broken, separate_writers):
    """The loggings source sets no `sourcetopic`: a writer of loggings can put `sourcetopic: notifications` on a
    CloudEvent record itself, and nothing overwrites it."""
    render = broken("dev")
    _one_source_per_topic(render, {"notifications": {"sourcetopic": "notifications"}})
    found = trust(render)
    assert any(
        m.startswith(f"[dev] Trigger {NS}/notifications (base/eventing/triggers.yaml): ")
        and "a writer of loggings (every-service) can set too" in m
        for m in found
    ), found
