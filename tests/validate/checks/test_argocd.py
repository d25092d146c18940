"""Argo CD checks of one render (sync waves, prune guards, Replace, load balancers, health gating): the real tree
passes; a broken render fails, naming file and object."""

import shutil

from gitops.core import manifests
from gitops.model.argocd import WAVE
from gitops.validate.checks import argocd as checks
from tests.support import obj, run_check
from tests.validate.checks.argocd_support import EV, NS, has


def annotate(o: dict, key: str, value: str) -> None:
    o.setdefault("metadata", {}).setdefault("annotations", {})[key] = value


# --- the real repository ---------------------------------------------------------------------------------------


def test_wave_plan_in_the_render(renders):
    render = renders["dev"]

    def wave_of(kind: str, name: str, group: str = EV) -> str:
        return manifests.annotations(obj(render, group, kind, NS, name)).get(WAVE, "0")

    crd = next(o for o in render.objects if o["kind"] == "CustomResourceDefinition")
    assert manifests.annotations(crd)[WAVE] == "-1"
    assert wave_of("Service", "notifications", "serving.knative.dev") == "1"
    assert wave_of("KafkaSink", "dead-letters") == "2"
    assert wave_of("Broker", "events") == "3"
    assert (wave_of("Trigger", "notifications"), wave_of("Trigger", "loggings")) == ("4", "4")
    # After the Triggers: their consumer groups start at the newest offsets once they are Ready (source-offsets).
    assert wave_of("KafkaSource", "kafka-source", "sources.knative.dev") == "5"
    # prod's Kafka credentials are written in wave 1, before the first reader (the KafkaSink, wave 2).
    credentials = obj(renders["prod"], "external-secrets.io", "ExternalSecret", NS, "kafka-credentials")
    assert manifests.annotations(credentials)[WAVE] == "1"


# --- the render broken -----------------------------------------------------------------------------------------


def test_trigger_before_upstream_fails(broken):
    render = broken("dev")
    annotate(obj(render, EV, "Trigger", NS, "loggings"), WAVE, "0")
    found = [str(f) for f in run_check(checks.check_sync_waves, render)]
    assert has(
        found,
        "Trigger notifications/loggings (base/eventing/triggers.yaml)",
        "sync wave 0 is not after the upstream install",
    )


def test_service_after_its_triggers_fails(broken):
    render = broken("prod")
    annotate(obj(render, "serving.knative.dev", "Service", NS, "notifications"), WAVE, "4")
    found = [str(f) for f in run_check(checks.check_sync_waves, render)]
    assert has(
        found,
        "Trigger notifications/notifications",
        "is not after Service.serving.knative.dev notifications/notifications (wave 4)",
        "spec.subscriber.ref",
    )


def test_dead_letter_sink_after_its_senders_fails(broken):
    render = broken("prod")
    annotate(obj(render, EV, "KafkaSink", NS, "dead-letters"), WAVE, "5")
    found = [str(f) for f in run_check(checks.check_sync_waves, render)]
    for sender in ("Broker notifications/events", "KafkaSource notifications/kafka-source"):
        assert has(found, sender, "KafkaSink notifications/dead-letters (wave 5)", "spec.delivery.deadLetterSink.ref")


def test_kafka_credentials_written_after_a_reader_fails(broken):
    """The ExternalSecret that writes the Kafka credentials in the KafkaSink's wave: the sink would start without
    them; every reader is named with the field it reads the Secret by."""
    render = broken("prod")
    annotate(obj(render, "external-secrets.io", "ExternalSecret", NS, "kafka-credentials"), WAVE, "2")
    found = [str(f) for f in run_check(checks.check_sync_waves, render)]
    assert has(
        found,
        "KafkaSink notifications/dead-letters (base/eventing/dead-letters.yaml)",
        "sync wave 2 is not after ExternalSecret notifications/kafka-credentials (wave 2)",
        "spec.auth.secret.ref.name",
    )
    assert not any("ConfigMap notifications/kafka-broker-config" in f for f in found), found


def test_event_policy_before_its_senders_fails(broken):
    """An EventPolicy whose `from` names a Trigger of a later wave: the policy is Degraded (SubjectsNotResolved)
    until the Trigger exists, so its own wave never becomes healthy and the sync stalls (seen live in `make e2e`)."""
    render = broken("prod")
    annotate(obj(render, EV, "EventPolicy", NS, "dead-letters-senders"), WAVE, "2")
    found = [str(f) for f in run_check(checks.check_sync_waves, render)]
    assert has(
        found,
        "EventPolicy notifications/dead-letters-senders (overlays/prod/eventpolicy.yaml)",
        "sync wave 2 is not after Trigger notifications/notifications (wave 4)",
        "spec.from[0].ref",
    )


def test_kafka_source_with_its_broker_fails(broken):
    render = broken("dev")
    annotate(obj(render, "sources.knative.dev", "KafkaSource", NS, "kafka-source"), WAVE, "3")
    found = [str(f) for f in run_check(checks.check_sync_waves, render)]
    assert has(
        found,
        "KafkaSource notifications/kafka-source (base/eventing/kafka-source.yaml)",
        "Broker notifications/events (wave 3)",
        "spec.sink.ref",
    )


def test_crd_after_its_resources_fails(broken):
    render = broken("dev")
    crd = next(o for o in render.objects if manifests.meta(o).get("name") == "triggers.eventing.knative.dev")
    annotate(crd, WAVE, "5")
    found = [str(f) for f in run_check(checks.check_sync_waves, render)]
    assert has(
        found,
        "Trigger notifications/notifications",
        "not after CustomResourceDefinition triggers.eventing.knative.dev (wave 5)",
    )


def test_unparsable_wave_fails(broken):
    render = broken("dev")
    annotate(obj(render, EV, "Broker", NS, "events"), WAVE, "two")
    assert has(
        [str(f) for f in run_check(checks.check_sync_waves, render)], "Broker notifications/events", "is not an integer"
    )


def test_missing_prune_guards_fail(broken):
    render = broken("prod")
    manifests.annotations(obj(render, EV, "Broker", NS, "events")).pop("argocd.argoproj.io/sync-options")
    crd = next(o for o in render.objects if o["kind"] == "CustomResourceDefinition")
    manifests.annotations(crd)["argocd.argoproj.io/sync-options"] = "Prune=false"
    found = [str(f) for f in run_check(checks.check_prune_guards, render)]
    assert has(
        found,
        "Broker notifications/events (base/eventing/broker.yaml)",
        "Prune=false,Delete=false",
        "deletes its topic",
    )
    assert has(
        found,
        f"CustomResourceDefinition {manifests.meta(crd)['name']}",
        "needs argocd.argoproj.io/sync-options Delete=false",
    )


def test_prune_guard_on_broker_config_fails(broken):
    render = broken("dev")
    manifests.annotations(obj(render, "", "ConfigMap", NS, "kafka-broker-config")).pop(
        "argocd.argoproj.io/sync-options"
    )
    assert has(
        [str(f) for f in run_check(checks.check_prune_guards, render)],
        "ConfigMap notifications/kafka-broker-config",
        "a Broker's spec.config points here",
    )


def test_replace_annotation_fails(broken):
    render = broken("dev")
    secret = obj(render, "", "Secret", "knative-serving", "webhook-certs")
    annotate(secret, "argocd.argoproj.io/sync-options", "Replace=true")
    assert has(
        [str(f) for f in run_check(checks.check_no_replace, render)],
        "Secret knative-serving/webhook-certs",
        "Replace=true",
    )


def test_load_balancer_in_dev_fails(broken):
    render = broken("dev")
    obj(render, "", "Service", "kourier-system", "kourier")["spec"]["type"] = "LoadBalancer"
    assert has(
        [str(f) for f in run_check(checks.check_no_load_balancer, render)],
        "[dev] Service kourier-system/kourier",
        "type LoadBalancer in dev",
    )


def test_kind_without_health_check_fails(renders, tree_copy):
    shutil.rmtree(tree_copy / "argocd/resource_customizations/eventing.knative.dev/Broker")
    found = [str(f) for f in run_check(checks.check_health_gating, renders["dev"], tree_copy)]
    assert has(found, "Broker notifications/events", "no health check for eventing.knative.dev/Broker")
