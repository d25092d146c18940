"""make validate end to end: schemas (kubeconform -strict, offline), semantic checks, waivers, exit codes."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gitops.core import manifests
from gitops.core.paths import REPO_ROOT, argocd_crds_dir
from gitops.validate import kubeconform, schemas, waivers
from gitops.validate.checks import release_pins
from gitops.validate.findings import Finding, RepoContext
from gitops.validate.run import schema_findings, validate


@pytest.fixture(scope="module")
def crd_dir(renders) -> Path:
    crds = [o for o in renders["prod"].objects if o["kind"] == "CustomResourceDefinition"]
    return schemas.crd_schemas(crds, sorted(argocd_crds_dir().glob("*.yaml")))


def invalid(stream: str, crd_dir: Path) -> list[kubeconform.SchemaResult]:
    return [r for r in kubeconform.run(stream, crd_dir) if r.status != "statusValid"]


def test_make_validate_passes_on_the_real_tree():
    proc = subprocess.run([sys.executable, "-m", "gitops.validate.run"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validate: OK" in proc.stdout
    assert "NOT RENDERED https://github.com/knative-extensions/eventing-kafka-broker" in proc.stdout
    assert "WAIVED [prod] Deployment kourier-system/3scale-kourier-gateway" in proc.stdout


def test_schemas_are_really_enforced(renders, crd_dir):
    text = renders["prod"].text
    assert invalid(text, crd_dir) == []
    typo_core = text.replace("      containers:\n      - args:", "      containers:\n      - argz:", 1)
    wrong_type = text.replace("  consumerGroup: knative-notifications-kafka-source", "  consumerGroup: 42")
    typo_crd = text.replace("  consumerGroup: knative-notifications-kafka-source", "  consumerGroupp: x")
    top_level = text.replace("kind: Broker\nmetadata:", "kind: Broker\nspc: {}\nmetadata:", 1)
    for broken, needle in [
        (typo_core, "additional properties 'argz' not allowed"),
        (wrong_type, "got number, want string"),
        (typo_crd, "additional properties 'consumerGroupp' not allowed"),
        (top_level, "additional properties 'spc' not allowed"),
    ]:
        assert broken != text
        assert any(needle in r.msg for r in invalid(broken, crd_dir)), needle


def test_no_kind_passes_for_lack_of_a_schema(crd_dir):
    stream = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: notifications}\n"
    results = invalid(stream, crd_dir)
    assert [r.status for r in results] == ["statusError"] and "could not find schema" in results[0].msg


def test_knative_service_is_not_checked_against_the_core_service_schema(crd_dir):
    ksvc = "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec: {type: ClusterIP}\n"
    core = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec: {template: {}}\n"
    assert "'type' not allowed" in invalid(ksvc, crd_dir)[0].msg
    assert "'template' not allowed" in invalid(core, crd_dir)[0].msg


def test_broken_tree_fails_validate_naming_file_and_resource(tree_copy):
    triggers = tree_copy / "base/eventing/triggers.yaml"
    triggers.write_text(triggers.read_text().replace("kafka-source#loggings", "kafka-sourceloggings"))
    report = validate(tree_copy)
    lines = [str(f) for f in report.findings]
    assert not report.ok
    assert any(
        line.startswith("[dev] Trigger notifications/loggings (base/eventing/triggers.yaml): filter matches no event")
        for line in lines
    )
    assert any(line.startswith("[prod] Trigger notifications/loggings (base/eventing/triggers.yaml)") for line in lines)


def test_overlay_breaking_prod_policy_fails_only_prod(tree_copy):
    kafka = tree_copy / "overlays/prod/kafka.yaml"
    kafka.write_text(
        kafka.read_text().replace('default.topic.replication.factor: "3"', 'default.topic.replication.factor: "2"')
    )
    report = validate(tree_copy, envs=["dev", "prod"])
    assert [(f.env, f.check, f.obj) for f in report.findings] == [
        ("prod", "prod-policy", "ConfigMap notifications/kafka-broker-config")
    ]


def test_stale_waiver_is_a_finding(tree_copy):
    (tree_copy / "validation-waivers.yaml").write_text(
        "waivers:\n  - {check: prod-policy, env: prod, object: Deployment x/y, message_contains: z, reason: r}\n"
    )
    report = validate(tree_copy, envs=["prod"])
    checks = sorted(f.check for f in report.findings)
    assert checks == ["prod-policy", "waivers"]  # the Envoy tag is no longer waived, and the waiver is stale


def test_waiver_needs_exact_object_and_message():
    finding = Finding("prod-policy", "prod", "Deployment a/b", "x", "image 'e:1' is not pinned")
    waiver = waivers.Waiver("prod-policy", "prod", "Deployment a/b", "'e:1'", "why")
    assert waivers.apply([finding], [waiver]) == ([], [(finding, waiver)])
    other = waivers.Waiver("prod-policy", "dev", "Deployment a/b", "'e:1'", "why")
    failing, waived = waivers.apply([finding], [other])
    assert waived == [] and [f.check for f in failing] == ["prod-policy", "waivers"]


def test_release_pins_one_version_and_an_exact_lock(tree_copy):
    kustomization = tree_copy / "base/platform/kustomization.yaml"
    text = kustomization.read_text()
    kustomization.write_text(
        text.replace("net-kourier/releases/download/knative-v1.23.0", "net-kourier/releases/download/knative-v1.22.0")
    )
    findings = list(release_pins.check_release_pins(RepoContext(tree_copy, {})))
    messages = sorted(f.message for f in findings)
    assert any("mix release tags: knative-v1.22.0 (1 assets), knative-v1.23.0 (5 assets)" in m for m in messages)
    assert any("not in base/platform/releases.lock.yaml" in m for m in messages)
    assert any("locked but no kustomization references it (stale)" in m for m in messages)
    assert list(release_pins.check_release_pins(RepoContext(REPO_ROOT, {}))) == []


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


def test_schema_finding_names_the_namespace_kubeconform_leaves_out(renders, crd_dir):
    """Serving and Eventing both ship ConfigMap config-logging; kubeconform's report does not say which one is
    wrong, the finding must (the serving one here, rendered after the eventing one)."""
    render = copy.deepcopy(renders["dev"])
    serving_logging = manifests.find(render.objects, "", "ConfigMap", "knative-serving", "config-logging")
    eventing_logging = manifests.find(render.objects, "", "ConfigMap", "knative-eventing", "config-logging")
    assert render.objects.index(eventing_logging) < render.objects.index(serving_logging)
    serving_logging["data"]["zap-logger-config"] = 42  # ConfigMap data values are strings
    stream = yaml.safe_dump_all(render.objects)
    (finding,) = schema_findings("dev", render, stream, crd_dir, "overlays/dev")
    assert finding.obj == "ConfigMap knative-serving/config-logging"
    assert finding.origin == render.origin(serving_logging) != render.origin(eventing_logging)
