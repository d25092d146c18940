"""The diff engine: each DANGEROUS/WARNING classification fires on the change it is about and stays quiet
otherwise; field paths, long values and Secret values."""

import copy
import dataclasses
from collections.abc import Callable

import pytest

from gitops.core.environments import Environment
from gitops.core.manifests import Obj
from gitops.core.render import RenderResult
from gitops.diff import report
from gitops.diff.engine import (
    DANGEROUS,
    MISSING,
    WARNING,
    FieldChange,
    diff_env,
    environment_flags,
    field_changes,
    show,
    show_change,
)
from tests.diff.diff_support import Mutation, _get, broker_config, diff_prod, set_partitions


def broker(objects: list[Obj]) -> Obj:
    return _get(objects, "eventing.knative.dev", "Broker", "notifications", "events")


def kafka_source(objects: list[Obj]) -> Obj:
    return _get(objects, "sources.knative.dev", "KafkaSource", "notifications", "kafka-source")


def trigger(objects: list[Obj]) -> Obj:
    return _get(objects, "eventing.knative.dev", "Trigger", "notifications", "loggings")


def kservice(objects: list[Obj]) -> Obj:
    return _get(objects, "serving.knative.dev", "Service", "notifications", "notifications")


def dead_letters(objects: list[Obj]) -> Obj:
    return _get(objects, "eventing.knative.dev", "KafkaSink", "notifications", "dead-letters")


def crd(objects: list[Obj]) -> Obj:
    return _get(objects, "apiextensions.k8s.io", "CustomResourceDefinition", "", "brokers.eventing.knative.dev")


def remove(pick: Callable[[list[Obj]], Obj]) -> Mutation:
    return lambda objects: objects.remove(pick(objects))


def drop_annotation(pick: Callable[[list[Obj]], Obj], name: str) -> Mutation:
    return lambda objects: pick(objects)["metadata"]["annotations"].pop(name)


def drop_crd_version(objects: list[Obj]) -> None:
    versions = crd(objects)["spec"]["versions"]
    versions.append({**copy.deepcopy(versions[0]), "name": "v1beta9", "storage": False})


def add_public_service(objects: list[Obj]) -> None:
    extra = copy.deepcopy(kservice(objects))
    extra["metadata"]["name"] = "webhook-inbox"
    extra["metadata"].get("labels", {}).pop("networking.knative.dev/visibility", None)
    objects.append(extra)


FIRES = {
    "broker removed": (remove(broker), DANGEROUS, "Broker notifications/events", "deletes its Kafka topic"),
    "broker spec.config": (
        lambda o: broker(o)["spec"]["config"].__setitem__("name", "other-config"),
        DANGEROUS,
        "Broker notifications/events",
        "spec.config.name changed",
    ),
    "broker class": (
        lambda o: broker(o)["metadata"]["annotations"].__setitem__(
            "eventing.knative.dev/broker.class", "KafkaNamespaced"
        ),
        DANGEROUS,
        "Broker notifications/events",
        "class Kafka → KafkaNamespaced",
    ),
    "broker configmap removed": (
        remove(broker_config),
        DANGEROUS,
        "ConfigMap notifications/kafka-broker-config",
        "spec.config is immutable",
    ),
    "partition decrease": (
        set_partitions("6"),
        DANGEROUS,
        "ConfigMap notifications/kafka-broker-config",
        "decreased 12 → 6",
    ),
    "partition increase": (
        set_partitions("24"),
        WARNING,
        "ConfigMap notifications/kafka-broker-config",
        "no effect on an existing topic",
    ),
    "replication factor": (
        lambda o: broker_config(o)["data"].__setitem__("default.topic.replication.factor", "5"),
        WARNING,
        "ConfigMap notifications/kafka-broker-config",
        "default.topic.replication.factor 3 → 5: no effect on an existing topic",
    ),
    "consumer group": (
        lambda o: kafka_source(o)["spec"].__setitem__("consumerGroup", "knative-notifications-v2"),
        DANGEROUS,
        "KafkaSource notifications/kafka-source",
        "offset reset",
    ),
    "trigger broker": (
        lambda o: trigger(o)["spec"].__setitem__("broker", "other"),
        DANGEROUS,
        "Trigger notifications/loggings",
        "spec.broker events → other: immutable",
    ),
    "dead-letter sink removed": (
        remove(dead_letters),
        DANGEROUS,
        "KafkaSink notifications/dead-letters",
        "deletes its topic with every event in it",
    ),
    "dead-letter topic renamed": (
        lambda o: dead_letters(o)["spec"].__setitem__("topic", "dead-letters-v2"),
        DANGEROUS,
        "KafkaSink notifications/dead-letters",
        "spec.topic changed: immutable on a KafkaSink",
    ),
    "dead-letter partitions": (
        lambda o: dead_letters(o)["spec"].__setitem__("numPartitions", 6),
        DANGEROUS,
        "KafkaSink notifications/dead-letters",
        "spec.numPartitions changed",
    ),
    "crd removed": (
        remove(crd),
        DANGEROUS,
        "CustomResourceDefinition brokers.eventing.knative.dev",
        "deletes every custom resource",
    ),
    "namespace removed": (
        remove(lambda o: _get(o, "", "Namespace", "", "notifications")),
        DANGEROUS,
        "Namespace notifications",
        "deletes everything in it",
    ),
    "prune guard removed": (
        drop_annotation(broker_config, "argocd.argoproj.io/sync-options"),
        DANGEROUS,
        "ConfigMap notifications/kafka-broker-config",
        "prune guard Delete=false/Prune=false removed",
    ),
    "visibility public": (
        lambda o: kservice(o)["metadata"]["labels"].pop("networking.knative.dev/visibility"),
        DANGEROUS,
        "Service.serving.knative.dev notifications/notifications",
        "cluster-local → public",
    ),
    "new public service": (
        add_public_service,
        WARNING,
        "Service.serving.knative.dev notifications/webhook-inbox",
        "new Knative Service is public",
    ),
}


@pytest.mark.parametrize("case", sorted(FIRES))
def test_classification_fires(renders: dict[str, RenderResult], case: str) -> None:
    mutate, severity, key, reason = FIRES[case]
    result = diff_prod(renders, mutate)
    hits = [f for f in result.flags if str(f.key) == key and reason in f.reason]
    assert hits, f"{case}: expected {severity} on {key} ({reason}); got {result.flags}"
    assert {f.severity for f in hits} == {severity}
    if severity == WARNING:
        assert not result.dangerous, f"{case} must not be DANGEROUS: {result.dangerous}"


def test_crd_version_removal_warns(renders: dict[str, RenderResult]) -> None:
    result = diff_prod(renders, lambda o: crd(o)["spec"]["versions"].pop(), before=drop_crd_version)
    assert [(f.severity, f.reason.split(":")[0]) for f in result.flags] == [(WARNING, "CRD version(s) v1beta9 removed")]


def test_cluster_local_default_domain_removal(renders: dict[str, RenderResult]) -> None:
    def domain(o: list[Obj]) -> Obj:
        return _get(o, "", "ConfigMap", "knative-serving", "config-domain")

    result = diff_prod(
        renders,
        lambda o: domain(o)["data"].pop("svc.cluster.local"),
        before=lambda o: domain(o)["data"].__setitem__("svc.cluster.local", ""),
    )
    assert [str(f.key) for f in result.dangerous] == ["ConfigMap knative-serving/config-domain"]


QUIET = {
    "broker delivery": lambda o: broker(o)["spec"]["delivery"].__setitem__("retry", 3),
    "trigger filter": lambda o: trigger(o)["spec"]["filter"]["attributes"].__setitem__("type", "x"),
    "source ordering": lambda o: kafka_source(o)["spec"].__setitem__("ordering", "unordered"),
    "service scale": lambda o: kservice(o)["spec"]["template"]["metadata"]["annotations"].__setitem__(
        "autoscaling.knative.dev/max-scale", "30"
    ),
    "trigger removed": remove(trigger),
    "kafka source removed": remove(kafka_source),
}


@pytest.mark.parametrize("case", sorted(QUIET))
def test_benign_change_is_listed_but_not_flagged(renders: dict[str, RenderResult], case: str) -> None:
    result = diff_prod(renders, QUIET[case])
    assert not result.empty
    assert result.flags == []


def test_identical_renders_have_no_changes(renders: dict[str, RenderResult]) -> None:
    for env, render in renders.items():
        result = diff_env(env, render.objects, copy.deepcopy(render.objects))
        assert result.empty and result.flags == []


def test_new_environment_is_all_added_and_removed_one_all_removed(renders: dict[str, RenderResult]) -> None:
    objects = renders["dev"].objects
    added, removed = diff_env("dev", [], objects), diff_env("dev", objects, [])
    assert len(added.added) == len(objects) and not added.dangerous
    assert len(removed.removed) == len(objects)
    assert "Broker notifications/events" in {str(f.key) for f in removed.dangerous}


def test_field_paths_name_list_items() -> None:
    old = {"spec": {"containers": [{"name": "app", "image": "a:1"}, {"name": "side", "image": "s"}]}}
    new = {"spec": {"containers": [{"name": "side", "image": "s"}, {"name": "app", "image": "a:2"}]}}
    assert field_changes(old, new) == [FieldChange("spec.containers[app].image", "a:1", "a:2")]
    annotated = field_changes({"metadata": {"annotations": {"a.b/c": "1"}}}, {"metadata": {"annotations": {}}})
    assert [(c.path, c.new) for c in annotated] == [("metadata.annotations[a.b/c]", MISSING)]
    assert show("x" * 200) == "x" * 200


def test_long_values_keep_every_changed_character() -> None:
    """Only text both sides share is elided: the reviewer sees the differing host whole."""
    servers = ",".join(f"kafka-{i}.acme.internal:9092" for i in range(4))
    changed = servers.replace("kafka-2.acme.internal", "kafka-2.acme.example")
    old, new = show_change(servers, changed)
    assert "kafka-2.acme.internal" in old and "kafka-2.acme.example" in new
    assert old.startswith("…") and old.endswith("…") and len(old) < len(servers)
    assert show_change("a" * 100, "b" * 100) == ("a" * 100, "b" * 100)
    assert show_change(MISSING, servers) == ("(absent)", servers)


def test_secret_values_never_printed() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, "data": {"k": "aaa"}}
    changed = copy.deepcopy(secret)
    changed["data"]["k"] = "bbb"
    result = diff_env("dev", [secret], [changed])
    text = report.format_text([report.EnvReport(result, {})], "a", "b", 8)
    assert "aaa" not in text and "bbb" not in text
    assert "data.k: <hidden> → <hidden>" in text


# --- environments.yaml: a production environment weakened through one fact ------------------------------------

PROD = Environment(
    "prod",
    production=True,
    automated_sync=False,
    destination={"name": "prod"},
    load_balancer=True,
    kafka_broker_losses=1,
    scale_to_zero=False,
)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"production": False}, "production true → false: every production check"),
        ({"automated_sync": True}, "automated_sync false → true: pushes reach it without review"),
        ({"destination": {"name": "prod-eu"}}, "destination {'name': 'prod'} → {'name': 'prod-eu'}"),
        (
            {"destination": {"server": "https://kubernetes.default.svc"}},
            "→ {'server': 'https://kubernetes.default.svc'}",
        ),
        ({"kafka_broker_losses": 0}, "kafka_broker_losses 1 → 0: kafka-durability stops holding"),
        ({"scale_to_zero": True}, "scale_to_zero false → true: the no-cold-start promise"),
    ],
    ids=[
        "flag flipped off",
        "automated sync on",
        "destination renamed",
        "destination in-cluster",
        "fewer broker losses",
        "scale to zero",
    ],
)
def test_environment_weakened_is_dangerous(change: dict, expected: str) -> None:
    (flag,) = environment_flags("prod", PROD, dataclasses.replace(PROD, **change))
    assert flag.severity == DANGEROUS and str(flag.key) == "Environment prod" and expected in flag.reason


def test_environment_changes_that_do_not_weaken_production_are_quiet() -> None:
    dev = dataclasses.replace(PROD, name="dev", production=False, automated_sync=True)
    assert environment_flags("prod", PROD, dataclasses.replace(PROD, load_balancer=False)) == []
    assert (
        environment_flags("dev", dev, dataclasses.replace(dev, automated_sync=False, destination={"name": "x"})) == []
    )
    assert environment_flags("dev", dev, dataclasses.replace(dev, production=True)) == []  # strengthened
    assert environment_flags("prod", None, PROD) == []  # a new environment: everything is added anyway


# --- production tuning (issue 28): scale bounds, retries, timeouts are NOTABLE in production ---------------------


def _template_annotations(objects: list[Obj]) -> dict:
    return kservice(objects)["spec"]["template"]["metadata"]["annotations"]


def _misindent_max_scale(objects: list[Obj]) -> None:
    """overlays/prod/scale.yaml with max-scale one level too far out: a key of the template's metadata."""
    value = _template_annotations(objects).pop("autoscaling.knative.dev/max-scale")
    kservice(objects)["spec"]["template"]["metadata"]["autoscaling.knative.dev/max-scale"] = value


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            _misindent_max_scale,
            "production prod scale bound: spec.template.metadata.annotations[autoscaling.knative.dev/max-scale] "
            "20 → (absent)",
        ),
        (
            lambda objects: _template_annotations(objects).__setitem__("autoscaling.knative.dev/min-scale", "0"),
            "production prod scale bound: spec.template.metadata.annotations[autoscaling.knative.dev/min-scale] 2 → 0",
        ),
        (
            lambda objects: broker(objects)["spec"]["delivery"].__setitem__("retry", 3),
            "production prod retries: spec.delivery.retry 8 → 3",
        ),
        (
            lambda objects: trigger(objects)["spec"].setdefault("delivery", {}).__setitem__("timeout", "PT5S"),
            "production prod timeout: spec.delivery.timeout (absent) → PT5S",
        ),
        (
            lambda objects: kservice(objects)["spec"]["template"]["spec"].__setitem__("timeoutSeconds", 10),
            "production prod timeout: spec.template.spec.timeoutSeconds",
        ),
    ],
)
def test_production_tuning_changes_are_notable(renders, mutate, expected):
    from gitops.diff.engine import NOTABLE, production_tuning_flags

    old = copy.deepcopy(renders["prod"].objects)
    new = copy.deepcopy(old)
    mutate(new)
    flags = production_tuning_flags("prod", old, new)
    assert [f.severity for f in flags] == [NOTABLE], flags
    assert flags[0].reason.startswith(expected), flags[0].reason
    assert production_tuning_flags("prod", old, copy.deepcopy(old)) == []
