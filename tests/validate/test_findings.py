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
