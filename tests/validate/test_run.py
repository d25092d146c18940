"""make validate end to end: the real tree passes; a broken tree, overlay or waiver fails, naming file and object."""

import subprocess
import sys

from gitops.core.paths import REPO_ROOT
from gitops.validate.run import validate


def test_make_validate_passes_on_the_real_tree():
    proc = subprocess.run([sys.executable, "-m", "gitops.validate.run"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validate: OK" in proc.stdout
    assert "NOT RENDERED https://github.com/knative-extensions/eventing-kafka-broker" in proc.stdout
    assert "WAIVED [prod] Deployment kourier-system/3scale-kourier-gateway" in proc.stdout


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
