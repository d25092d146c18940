"""A finding names its environment, object, source file and check."""

from gitops.core import manifests
from gitops.core.paths import REPO_ROOT
from gitops.model.argocd import APP_FILE
from gitops.validate.findings import Finding
from tests.validate.checks.argocd_support import DEV_APP


def test_finding_names_environment_object_file_and_check(renders):
    ksvc = manifests.find(renders["prod"].objects, "serving.knative.dev", "Service", "notifications", "notifications")
    from gitops.validate.findings import EnvContext

    ctx = EnvContext(REPO_ROOT, renders["prod"])
    text = str(ctx.finding("demo", ksvc, "what is wrong"))
    assert text == (
        "[prod] Service.serving.knative.dev notifications/notifications (apps/notifications/deploy/service.yaml): "
        "what is wrong  <demo>"
    )
    # With the field a check is about, the finding names the one file that set it: an overlay patch...
    scaled = ctx.finding(
        "demo", ksvc, "x", field="spec.template.metadata.annotations[autoscaling.knative.dev/min-scale]"
    )
    assert scaled.origin == "overlays/prod/scale.yaml"
    # ...the kustomization whose `images:` rewrote it, or the object's own file.
    image = ctx.finding("demo", ksvc, "x", field="spec.template.spec.containers[notifications].image")
    assert image.origin == "overlays/prod/kustomization.yaml"
    assert ctx.finding("demo", ksvc, "x", field="spec.template.spec.containers").origin == (
        "apps/notifications/deploy/service.yaml"
    )


def test_findings_name_file_and_object():
    finding = Finding("argocd-app", "argocd", DEV_APP, APP_FILE, "x")
    assert str(finding).startswith(f"[argocd] Application argocd/knative-kafka-dev ({APP_FILE}): x")


def test_findings_that_differ_only_in_environment_are_one_cause():
    from gitops.validate.findings import by_cause

    findings = [
        Finding("topics", "dev", "Service x/y", "apps/a/topics.py", "no Trigger"),
        Finding("topics", "prod", "Service x/y", "apps/a/topics.py", "no Trigger"),
        Finding("topics", "prod", "Service x/y", "apps/a/topics.py", "another cause"),
    ]
    assert [str(c) for c in by_cause(findings)] == [
        "[dev, prod] Service x/y (apps/a/topics.py): no Trigger  <topics>",
        "[prod] Service x/y (apps/a/topics.py): another cause  <topics>",
    ]


def test_the_fields_an_upstream_refusal_names():
    from gitops.validate.findings import message_fields

    # knative.dev/pkg apis.FieldError: "<message>: <path>[, <path>]" per line.
    assert message_fields("validation failed: invalid value: 0.5s: spec.delivery.backoffDelay") == [
        "spec.delivery.backoffDelay"
    ]
    assert message_fields("expected exactly one, got both: spec.delivery.retry, spec.delivery.timeout") == [
        "spec.delivery.retry",
        "spec.delivery.timeout",
    ]
    # kubeconform's jsonschema errors: a JSON pointer, plus the property a strict check refused.
    assert message_fields(
        "at '/spec/template/metadata': additionalProperties 'autoscaling.knative.dev/x' not allowed"
    ) == ["spec.template.metadata[autoscaling.knative.dev/x]"]
    assert message_fields("something without a path") == []


def test_a_refused_field_set_by_an_overlay_names_the_overlay(renders):
    from gitops.validate.findings import EnvContext

    ctx = EnvContext(REPO_ROOT, renders["prod"])
    ksvc = manifests.find(renders["prod"].objects, "serving.knative.dev", "Service", "notifications", "notifications")
    render = ctx.render
    # A Knative path with a dotted annotation key, as serving's webhook writes it.
    assert render.fields_origin(ksvc, ["metadata.annotations.autoscaling.knative.dev/max-scale"]) == (
        "apps/notifications/deploy/service.yaml"
    )
    assert render.fields_origin(ksvc, ["spec.template.metadata.annotations.autoscaling.knative.dev/max-scale"]) == (
        "overlays/prod/scale.yaml"
    )
    assert render.fields_origin(ksvc, ["spec.nothing", "spec.template.metadata.annotations"]) == (
        "overlays/prod/scale.yaml"
    )
