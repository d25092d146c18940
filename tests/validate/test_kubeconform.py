"""kubeconform -strict and offline against the schemas we build (the render's and Argo CD's): a misspelt field,
a wrong type or a kind without a schema fails."""

import subprocess
from pathlib import Path

import pytest

from gitops.core.paths import REPO_ROOT
from gitops.model.argocd import APP_FILE
from gitops.validate import kubeconform, schemas
from gitops.validate.run import schema_findings
from tests.support import assert_stored_results_agree


def invalid(stream: str, crd_dir: Path) -> list[kubeconform.SchemaResult]:
    """kubeconform's verdicts on a stream; validate's stage, which checks each distinct document once and stores
    its result, gives the same ones with the store and read back from it."""
    found = [r for r in kubeconform.run(stream, crd_dir) if r.status != "statusValid"]
    assert_stored_results_agree(
        lambda cache: [f.message for f in schema_findings("test", None, stream, crd_dir, "stream", cache)],
        [f"{r.status.removeprefix('status')}: {r.msg}" for r in found],
    )
    return found


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


def test_the_external_secret_is_checked_against_the_operators_crd(renders, crd_dir):
    """prod's ExternalSecret against external-secrets v0.16.2's CRD, read from its Go module (schemas.py)."""
    text = renders["prod"].text
    assert "kind: ExternalSecret" in text
    typo = text.replace(
        "  secretStoreRef:\n    kind: ClusterSecretStore", "  secretStoreRefs:\n    kind: ClusterSecretStore"
    )
    wrong_enum = text.replace("    creationPolicy: Owner", "    creationPolicy: Own")
    for broken, needle in [
        (typo, "additional properties 'secretStoreRefs' not allowed"),
        (wrong_enum, "creationPolicy"),
    ]:
        assert broken != text
        assert any(needle in r.msg for r in invalid(broken, crd_dir)), needle
    assert [p.name for p in schemas.operator_crd_files()] == ["external-secrets.io_externalsecrets.yaml"]
    modules = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    assert all(
        str(p).startswith(f"{modules}/github.com/external-secrets/external-secrets@v0.16.2/")
        for p in schemas.operator_crd_files()
    )


def test_no_kind_passes_for_lack_of_a_schema(crd_dir):
    stream = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: notifications}\n"
    results = invalid(stream, crd_dir)
    assert [r.status for r in results] == ["statusError"] and "could not find schema" in results[0].msg


def test_knative_service_is_not_checked_against_the_core_service_schema(crd_dir):
    ksvc = "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec: {type: ClusterIP}\n"
    core = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec: {template: {}}\n"
    assert "'type' not allowed" in invalid(ksvc, crd_dir)[0].msg
    assert "'template' not allowed" in invalid(core, crd_dir)[0].msg


def test_a_documents_message_is_the_same_every_run(crd_dir):
    # jsonschema orders these two causes by Go map iteration: 2 runs in 30 swapped them before stable_message.
    core = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec: {template: {}}\n"
    messages = {kubeconform.run(core, crd_dir)[0].msg for _ in range(20)}
    assert len(messages) == 1, messages
    (message,) = messages
    assert message.index("at '/metadata/namespace'") < message.index("at '/spec'")


@pytest.mark.parametrize(
    ("written", "stable"),
    [
        ("failed - at '/b': B - at '/a': A", "failed - at '/a': A - at '/b': B"),
        (
            "failed - at '/b': B   - at '/b/z': Z   - at '/b/a': A2 - at '/a': A",
            "failed - at '/a': A - at '/b': B   - at '/b/a': A2   - at '/b/z': Z",
        ),
        ("could not find schema for Widget", "could not find schema for Widget"),
        ("failed   - at '/a': a cause deeper than its parent", "failed   - at '/a': a cause deeper than its parent"),
    ],
)
def test_stable_message_sorts_the_causes_at_each_level(written, stable):
    assert kubeconform.stable_message(written) == stable


@pytest.fixture(scope="module")
def argocd_schemas() -> Path:
    return schemas.crd_schemas([], schemas.extra_crd_files())


def test_argocd_files_are_schema_valid(argocd_schemas):
    for name in (APP_FILE, "argocd/argocd-cm.yaml"):
        assert kubeconform.run((REPO_ROOT / name).read_text(), argocd_schemas, name) == []


def test_schema_rejects_a_misspelt_field(argocd_schemas):
    text = (REPO_ROOT / APP_FILE).read_text().replace("selfHeal: true", "selfheal: true")
    results = kubeconform.run(text, argocd_schemas, APP_FILE)
    assert sorted((r.kind, r.name) for r in results) == [("Application", "knative-kafka-dev")]
    assert all("additional properties 'selfheal' not allowed" in r.msg for r in results)


@pytest.mark.parametrize(
    ("api_version", "kind", "expected"),
    [
        ("apps/v1beta1", "Deployment", "Deployment is not served at apiVersion apps/v1beta1; served: apps/v1 "),
        (
            "eventing.knative.dev/v2",
            "Trigger",
            "Trigger is not served at apiVersion eventing.knative.dev/v2; served: eventing.knative.dev/v1 ",
        ),
        ("autoscaling/v3", "HorizontalPodAutoscaler", "served: autoscaling/v1, autoscaling/v2 "),
        ("eventing.knative.dev/v1", "Triger", "no schema for kind Triger at any apiVersion: a misspelt kind"),
    ],
)
def test_a_missing_schema_names_the_served_versions(crd_dir, api_version: str, kind: str, expected: str) -> None:
    doc = f"apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: x\n  namespace: notifications\n"
    (result,) = invalid(doc, crd_dir)
    assert expected in result.msg, result.msg
    assert not result.msg.startswith("could not find schema")
