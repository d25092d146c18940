"""make validate end to end: the real tree passes; a broken tree, overlay or waiver fails, naming file and object;
`--hydrated` checks the files `make hydrate` wrote."""

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from gitops.core import manifests, releases
from gitops.core.paths import REPO_ROOT, environments
from gitops.delivery import hydrate
from gitops.validate.findings import by_cause
from gitops.validate.registry import finding_order
from gitops.validate.run import schema_findings, validate
from tests.support import same_with_and_without_cache


def test_make_validate_passes_on_the_real_tree():
    proc = subprocess.run([sys.executable, "-m", "gitops.validate.run"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validate: OK" in proc.stdout
    # Every null lock entry is one loud warning on stderr, once however many environments miss it.
    for url in (u for u, digest in releases.load_lock(REPO_ROOT).items() if digest is None):
        assert proc.stderr.count(f"LEFT OUT {url} ({', '.join(environments())})") == 1, proc.stderr
    assert proc.stderr.count("WARNING:") == 1 and "Fix: `make bump VERSION=1.23.0`" in proc.stderr
    # This repository keeps the fork placeholders: one warning line for all of them, never a failure.
    placeholder_lines = [line for line in proc.stdout.splitlines() if "fork placeholders left" in line]
    assert len(placeholder_lines) == 1 and placeholder_lines[0].startswith("WARN "), proc.stdout
    assert "make preflight ENV=<env>" in placeholder_lines[0]
    # The last line: each stage's time and how much the stored results saved.
    assert re.search(
        r"^validate: OK in [\d.]+s \(render [\d.]+s, schemas [\d.]+s, kubeconform [\d.]+s, admission [\d.]+s, "
        r"checks [\d.]+s, waivers [\d.]+s; cache \d+/\d+ hits \(\d+%\)\)$",
        proc.stdout.splitlines()[-1],
    ), proc.stdout.splitlines()[-1]
    assert "WAIVED [prod] Deployment kourier-system/3scale-kourier-gateway" in proc.stdout


def test_broken_tree_fails_validate_naming_file_and_resource(tree_copy):
    triggers = tree_copy / "base/eventing/triggers.yaml"
    triggers.write_text(triggers.read_text().replace("kafka-source#loggings", "kafka-sourceloggings"))
    report = same_with_and_without_cache(lambda cache: validate(tree_copy, cache=cache))
    lines = [str(f) for f in report.findings]
    assert not report.ok
    assert any(
        line.startswith("[dev] Trigger notifications/loggings (base/eventing/triggers.yaml): filter matches no event")
        for line in lines
    )
    assert any(line.startswith("[prod] Trigger notifications/loggings (base/eventing/triggers.yaml)") for line in lines)


def test_misspelt_kind_reports_the_schema_miss_first(tree_copy):
    """Root causes first: `kind: Triger` is a schema miss; the deployer RBAC and the AppProject no longer covering
    it follow from that (regenerating the RBAC first would bake the typo in), so they come after it."""
    triggers = tree_copy / "base/eventing/triggers.yaml"
    triggers.write_text(triggers.read_text().replace("kind: Trigger", "kind: Triger", 1))
    report = same_with_and_without_cache(lambda cache: validate(tree_copy, envs=["dev"], cache=cache))
    ordered = [(f.check, f.obj) for f in sorted(report.findings, key=finding_order)]
    assert ordered[0] == ("schema", "Triger notifications/notifications"), ordered
    checks = [check for check, _ in ordered]
    assert {"argocd-identity", "argocd-project"} <= set(checks)
    assert checks.index("argocd-identity") > checks.index("schema")
    assert checks.index("argocd-project") > checks.index("schema")
    assert checks.index("argocd-identity") > checks.index("trigger-filter")  # Argo CD's after the event checks


def test_overlay_breaking_prod_policy_fails_only_prod(tree_copy):
    kafka = tree_copy / "overlays/prod/kafka.yaml"
    kafka.write_text(
        kafka.read_text().replace('default.topic.replication.factor: "3"', 'default.topic.replication.factor: "2"')
    )
    report = same_with_and_without_cache(lambda cache: validate(tree_copy, envs=["dev", "prod"], cache=cache))
    # The fixed production floor (RF >= 3) and the relation environments.yaml's kafka_broker_losses 1 asks for
    # (RF 2 < min.insync.replicas 2 + 1 loss: one broker down blocks every write).
    assert [(f.env, f.check, f.obj) for f in report.findings] == [
        ("prod", "prod-policy", "ConfigMap notifications/kafka-broker-config"),
        ("prod", "kafka-durability", "ConfigMap notifications/kafka-broker-config"),
    ]


def test_stale_waiver_is_a_finding(tree_copy):
    (tree_copy / "validation-waivers.yaml").write_text(
        "waivers:\n  - {check: prod-policy, env: prod, object: Deployment x/y, message_contains: z, reason: r}\n"
    )
    report = same_with_and_without_cache(lambda cache: validate(tree_copy, envs=["prod"], cache=cache))
    checks = sorted(f.check for f in report.findings)
    assert checks == ["prod-policy", "waivers"]  # the Envoy tag is no longer waived, and the waiver is stale


def test_validate_checks_the_hydrated_bytes(hydratable: tuple[Path, Path], tmp_path: Path, monkeypatch) -> None:
    root, mirror = hydratable
    monkeypatch.setenv("KNATIVE_RELEASE_MIRROR", str(mirror))
    out = tmp_path / "dev"
    hydrate.hydrate("dev", out, root, mirror=mirror)
    report = validate(root, ["dev"], hydrated={"dev": out})
    assert [f for f in report.findings if f.check == "hydrated"] == []
    assert report.renders["dev"].text == hydrate.load_hydrated(out)
    # A hand edit on the deploy branch is not what validate passed: named with env, object and directory.
    ksvc = out / "notifications--service.serving.knative.dev--notifications.yaml"
    edited = yaml.safe_load(ksvc.read_text())
    edited["metadata"].setdefault("labels", {})["hand-edited"] = "true"
    ksvc.write_text(yaml.safe_dump(edited))
    broker = out / "notifications--broker.eventing.knative.dev--events.yaml"
    retry = yaml.safe_load(broker.read_text())["spec"]["delivery"]["retry"]
    broker.write_text(broker.read_text().replace(f"retry: {retry}\n", f"retry: {retry + 3}\n", 1))
    (out / "_cluster--namespace--extra.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: extra\n")
    report = same_with_and_without_cache(lambda cache: validate(root, ["dev"], hydrated={"dev": out}, cache=cache))
    found = [str(f) for f in report.findings if f.check == "hydrated"]
    assert (
        f"[dev] Namespace extra ({out}/_cluster--namespace--extra.yaml): is in the hydrated files but not in a fresh "
        "render of this tree  <hydrated>" in found
    )
    # The file and the field a hand edit changed, fresh render → hydrated file.
    assert (
        f"[dev] Broker notifications/events ({broker}): differs from a fresh render of this tree: "
        f"spec.delivery.retry: {retry} → {retry + 3} (re-run `make hydrate`, never edit these files)  <hydrated>"
    ) in found, found
    assert any(
        f.startswith(f"[dev] Service.serving.knative.dev notifications/notifications ({ksvc}): differs from a fresh")
        and 'metadata.labels: (absent) → {"hand-edited":"true"}' in f
        for f in found
    ), found


def test_wave_and_health_checks_run_on_the_hydrated_files(
    hydratable: tuple[Path, Path], tmp_path: Path, monkeypatch
) -> None:
    """What Argo CD syncs is the hydrated directory: a Trigger hydrated into the upstream install's wave is
    reported from those files, with env, object and source file named."""
    root, mirror = hydratable
    monkeypatch.setenv("KNATIVE_RELEASE_MIRROR", str(mirror))
    triggers = root / "base" / "eventing" / "triggers.yaml"
    triggers.write_text(
        triggers.read_text().replace('argocd.argoproj.io/sync-wave: "4"', 'argocd.argoproj.io/sync-wave: "0"')
    )
    shutil.rmtree(root / "argocd/resource_customizations/sources.knative.dev/KafkaSource")
    out = tmp_path / "dev"
    hydrate.hydrate("dev", out, root, mirror=mirror)
    report = same_with_and_without_cache(lambda cache: validate(root, ["dev"], hydrated={"dev": out}, cache=cache))
    assert report.renders["dev"].text == hydrate.load_hydrated(out)
    found = [str(f) for f in report.findings]
    assert any(
        f.startswith("[dev] Trigger notifications/loggings (base/eventing/triggers.yaml): sync wave 0 is not after")
        and f.endswith("<argocd-waves>")
        for f in found
    ), found
    assert any(
        "[dev] KafkaSource notifications/kafka-source" in f
        and "no health check for sources.knative.dev/KafkaSource" in f
        for f in found
    ), found


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


def test_validate_builds_each_environment_once(validated_tree):
    """Origins, setters and the output all come from one `kustomize build` per environment."""
    report, built = validated_tree
    assert report.ok
    assert sorted(built) == environments()


def test_a_value_an_overlay_set_is_reported_at_the_overlay(tree_copy):
    """Issue 28: Knative's webhook refuses `backoffDelay: 0.5s` (not ISO 8601) set by overlays/prod/delivery.yaml;
    the finding names that file (the field the refusal names, through kustomize's origin/transformer
    annotations), not base/eventing/broker.yaml where the Broker was loaded from."""
    delivery = tree_copy / "overlays/prod/delivery.yaml"
    delivery.write_text(delivery.read_text().replace("    retry: 8", "    retry: 8\n    backoffDelay: 0.5s"))
    report = same_with_and_without_cache(lambda cache: validate(tree_copy, envs=["prod"], cache=cache))
    refused = [f for f in report.findings if f.check == "upstream-admission"]  # other checks may see it too
    assert [(f.check, f.obj, f.origin) for f in refused] == [
        ("upstream-admission", "Broker notifications/events", "overlays/prod/delivery.yaml")
    ], report.findings
    assert "spec.delivery.backoffDelay" in refused[0].message


def test_a_broken_base_file_is_one_cause_for_every_environment(tree_copy):
    """Issue 28: a YAML error in a base file every overlay builds is one line, at that file, naming both
    environments; prod's waiver is not called stale because prod could not be rendered."""
    triggers = tree_copy / "base/eventing/triggers.yaml"
    triggers.write_text(triggers.read_text().replace("kind: Trigger", "kind: Trigger\n  bad: [", 1))
    report = validate(tree_copy)
    causes = by_cause(sorted(report.findings, key=finding_order))
    assert [(c.check, c.envs, c.origin) for c in causes] == [("render", ("dev", "prod"), "base/eventing/triggers.yaml")]
    assert "kustomize build failed" in causes[0].message and str(causes[0]).startswith("[dev, prod] - (base/")
