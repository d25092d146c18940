"""Argo CD delivery checks: the real repo passes; a broken argocd-app.yaml or render fails, naming file and object."""

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops.core import manifests
from gitops.core.paths import REPO_ROOT, argocd_crds_dir
from gitops.core.render import RenderResult
from gitops.model.argocd import APP_FILE, WAVE
from gitops.validate import kubeconform, schemas
from gitops.validate.checks import argocd as checks
from gitops.validate.checks import argocd_access, argocd_apps, argocd_project
from gitops.validate.findings import EnvContext, Finding, RepoContext
from tests.support import MADE_UP_ENV, checks_of, obj, run_check

NS = "notifications"
EV = "eventing.knative.dev"
DEV_APP = "Application argocd/knative-kafka-dev"
PROD_APP = "Application argocd/knative-kafka-prod"
PROJECT = "AppProject argocd/knative-kafka-prod"
DEV_PROJECT = "AppProject argocd/knative-kafka-dev"
IN_FILE = f"({APP_FILE})"

# Every repository-wide Argo CD check (bootstrap, Applications, AppProjects, access).
ARGOCD_REPO_CHECKS = checks_of(argocd_apps, argocd_project, argocd_access, scope="repo")


# --- helpers ---------------------------------------------------------------------------------------------------


def repo_findings(root: Path, renders: dict[str, RenderResult]) -> list[str]:
    ctx = RepoContext(root, renders)
    return [str(f) for check in ARGOCD_REPO_CHECKS for f in check(ctx)]


def edit_app_file(root: Path, edit: Callable[[dict[str, dict[str, Any]]], None]) -> None:
    """Rewrite the bootstrap file after edit(docs_by_kind_and_name) mutates the parsed documents."""
    path = root / APP_FILE
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    edit({f"{d['kind']} {d['metadata']['name']}": d for d in docs})
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def has(findings: list[str], *parts: str) -> bool:
    return any(all(p in f for p in parts) for f in findings)


def annotate(o: dict, key: str, value: str) -> None:
    o.setdefault("metadata", {}).setdefault("annotations", {})[key] = value


# --- the real repository ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("check", checks_of(checks), ids=lambda c: c.__name__)
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_real_tree_passes_env_checks(renders, check, env):
    assert run_check(check, renders[env]) == []


@pytest.mark.parametrize("check", ARGOCD_REPO_CHECKS, ids=lambda c: c.__name__)
def test_real_tree_passes_repo_checks(renders, check):
    assert [str(f) for f in check(RepoContext(REPO_ROOT, renders))] == []


def test_wave_plan_in_the_render(renders):
    render = renders["dev"]

    def wave_of(kind: str, name: str, group: str = EV) -> str:
        return manifests.annotations(obj(render, group, kind, NS, name)).get(WAVE, "0")

    crd = next(o for o in render.objects if o["kind"] == "CustomResourceDefinition")
    assert manifests.annotations(crd)[WAVE] == "-1"
    assert wave_of("Service", "notifications", "serving.knative.dev") == "1"
    assert wave_of("Broker", "events") == "2"
    assert (wave_of("Trigger", "notifications"), wave_of("Trigger", "loggings")) == ("3", "3")
    assert wave_of("KafkaSource", "kafka-source", "sources.knative.dev") == "3"


# --- argocd-app.yaml broken ------------------------------------------------------------------------------------


def test_wrong_deploy_branch_fails(tree_copy, renders):
    edit_app_file(
        tree_copy,
        lambda d: d["Application knative-kafka-dev"]["spec"]["source"].update(targetRevision=f"deploy/{MADE_UP_ENV}"),
    )
    found = repo_findings(tree_copy, renders)
    assert has(found, DEV_APP, IN_FILE, f"environment '{MADE_UP_ENV}' has no overlay (known: dev, prod)")
    assert has(found, "[dev]", "0 Applications deploy overlays/dev")


def test_wrong_revision_fails(tree_copy, renders):
    edit_app_file(
        tree_copy,
        lambda d: d["Application knative-kafka-prod"]["spec"]["source"].update(
            targetRevision="main", path="overlays/prod"
        ),
    )
    assert has(
        repo_findings(tree_copy, renders),
        "[prod]",
        PROD_APP,
        IN_FILE,
        "targetRevision 'main': the prod Application must sync 'deploy/prod'",
    )


def test_hydrated_files_not_at_branch_root_fails(tree_copy, renders):
    edit_app_file(tree_copy, lambda d: d["Application knative-kafka-dev"]["spec"]["source"].update(path="dev"))
    assert has(repo_findings(tree_copy, renders), "[dev]", DEV_APP, "source path 'dev': the hydrated files sit at")


def test_one_project_for_two_environments_fails(tree_copy, renders):
    edit_app_file(tree_copy, lambda d: d["Application knative-kafka-prod"]["spec"].update(project="knative-kafka-dev"))
    found = repo_findings(tree_copy, renders)
    assert has(found, "[argocd]", DEV_PROJECT, IN_FILE, "serves environments dev, prod: one AppProject per environment")


def test_wrong_repo_url_fails(tree_copy, renders):
    edit_app_file(
        tree_copy,
        lambda d: d["Application knative-kafka-dev"]["spec"]["source"].update(
            repoURL="https://github.com/other/fork.git"
        ),
    )
    assert has(repo_findings(tree_copy, renders), DEV_APP, "repoURL 'https://github.com/other/fork.git'", "differ")


def test_wrong_project_fails(tree_copy, renders):
    edit_app_file(tree_copy, lambda d: d["Application knative-kafka-prod"]["spec"].update(project="default"))
    assert has(repo_findings(tree_copy, renders), PROD_APP, f"project 'default' is not an AppProject in {APP_FILE}")


def test_wrong_destination_fails(tree_copy, renders):
    edit_app_file(
        tree_copy,
        lambda d: d["Application knative-kafka-prod"]["spec"].update(
            destination={"server": "https://prod.example:6443", "namespace": NS}
        ),
    )
    found = repo_findings(tree_copy, renders)
    assert has(found, "[prod]", PROD_APP, "expected {'name': 'prod'}")
    assert has(found, "AppProject argocd/knative-kafka", "no destination allows namespace knative-serving")


def test_duplicate_environment_application_fails(tree_copy, renders):
    def duplicate(docs: dict) -> None:
        docs["Application knative-kafka-dev"]["spec"]["sources"] = [
            docs["Application knative-kafka-dev"]["spec"].pop("source")
        ] * 2

    edit_app_file(tree_copy, duplicate)
    assert has(repo_findings(tree_copy, renders), "[dev]", "2 Applications deploy overlays/dev; expected exactly one")


def test_missing_retry_fails(tree_copy, renders):
    edit_app_file(tree_copy, lambda d: d["Application knative-kafka-prod"]["spec"]["syncPolicy"].pop("retry"))
    assert has(repo_findings(tree_copy, renders), PROD_APP, "syncPolicy.retry needs a limit and backoff")


def test_retry_without_backoff_fails(tree_copy, renders):
    edit_app_file(tree_copy, lambda d: d["Application knative-kafka-dev"]["spec"]["syncPolicy"]["retry"].pop("backoff"))
    assert has(repo_findings(tree_copy, renders), DEV_APP, "syncPolicy.retry needs")


def test_dev_without_self_heal_fails(tree_copy, renders):
    edit_app_file(
        tree_copy, lambda d: d["Application knative-kafka-dev"]["spec"]["syncPolicy"]["automated"].pop("selfHeal")
    )
    assert has(
        repo_findings(tree_copy, renders), "[dev]", DEV_APP, "dev must sync automatically with prune and selfHeal"
    )


def test_automated_prod_fails(tree_copy, renders):
    edit_app_file(
        tree_copy, lambda d: d["Application knative-kafka-prod"]["spec"]["syncPolicy"].update(automated={"prune": True})
    )
    assert has(repo_findings(tree_copy, renders), "[prod]", PROD_APP, "remove syncPolicy.automated")


def test_disabled_automation_counts_as_manual(tree_copy, renders):
    edit_app_file(
        tree_copy,
        lambda d: d["Application knative-kafka-prod"]["spec"]["syncPolicy"].update(
            automated={"enabled": False, "prune": True}
        ),
    )
    assert repo_findings(tree_copy, renders) == []


def test_replace_sync_option_fails(tree_copy, renders):
    edit_app_file(
        tree_copy,
        lambda d: d["Application knative-kafka-dev"]["spec"]["syncPolicy"]["syncOptions"].append("Replace=true"),
    )
    assert has(repo_findings(tree_copy, renders), DEV_APP, "Replace=true would replace the upstream install")


def test_ignore_differences_without_respect_fails(tree_copy, renders):
    edit_app_file(
        tree_copy,
        lambda d: d["Application knative-kafka-prod"]["spec"]["syncPolicy"]["syncOptions"].remove(
            "RespectIgnoreDifferences=true"
        ),
    )
    assert has(repo_findings(tree_copy, renders), PROD_APP, "without syncOptions RespectIgnoreDifferences=true")


def test_ignore_rule_with_wrong_group_fails(tree_copy, renders):
    # argo-cd #9323: a rule with the wrong group silently ignores nothing.
    edit_app_file(
        tree_copy, lambda d: d["Application knative-kafka-dev"]["spec"]["ignoreDifferences"][0].update(group="apps")
    )
    found = repo_findings(tree_copy, renders)
    assert has(found, DEV_APP, "ignoreDifferences entry apps/MutatingWebhookConfiguration * matches no rendered object")
    assert has(
        found,
        DEV_APP,
        "MutatingWebhookConfiguration webhook.serving.knative.dev needs ignored .webhooks[]?.clientConfig.caBundle",
    )


def test_missing_conversion_rule_fails(tree_copy, renders):
    def drop(docs: dict) -> None:
        rules = docs["Application knative-kafka-prod"]["spec"]["ignoreDifferences"]
        rules[:] = [r for r in rules if r.get("name") != "kafkasources.sources.knative.dev"]

    edit_app_file(tree_copy, drop)
    assert has(
        repo_findings(tree_copy, renders),
        "[prod]",
        PROD_APP,
        "nothing ignores spec.conversion.webhook.clientConfig of CustomResourceDefinition kafkasources.sources.knative.dev",
    )


def test_missing_aggregated_role_rule_fails(tree_copy, renders):
    def drop(docs: dict) -> None:
        rules = docs["Application knative-kafka-dev"]["spec"]["ignoreDifferences"]
        rules[:] = [r for r in rules if r.get("name") != "knative-serving-admin"]

    edit_app_file(tree_copy, drop)
    assert has(repo_findings(tree_copy, renders), DEV_APP, "nothing ignores rules of ClusterRole knative-serving-admin")


def test_broker_delivery_must_be_stated_or_ignored(renders, tree_copy):
    dev = {**renders, "dev": _without_broker_delivery(renders["dev"])}
    assert has(repo_findings(tree_copy, dev), DEV_APP, "nothing ignores spec.delivery", "Broker notifications/events")


def _without_broker_delivery(render: RenderResult) -> RenderResult:
    broken = copy.deepcopy(render)
    obj(broken, EV, "Broker", NS, "events")["spec"].pop("delivery")
    return broken


# --- AppProject scope ------------------------------------------------------------------------------------------


def test_project_missing_a_rendered_kind_fails(tree_copy, renders):
    def drop(docs: dict) -> None:
        allowed = docs["AppProject knative-kafka-prod"]["spec"]["namespaceResourceWhitelist"]
        allowed[:] = [e for e in allowed if e["kind"] != "KafkaSource"]

    edit_app_file(tree_copy, drop)
    assert has(
        repo_findings(tree_copy, renders),
        PROJECT,
        IN_FILE,
        "renders KafkaSource notifications/kafka-source but namespaceResourceWhitelist does not allow sources.knative.dev/KafkaSource",
    )


def test_project_missing_a_cluster_kind_fails(tree_copy, renders):
    def drop(docs: dict) -> None:
        allowed = docs["AppProject knative-kafka-prod"]["spec"]["clusterResourceWhitelist"]
        allowed[:] = [e for e in allowed if e.get("name") != "notifications"]

    edit_app_file(tree_copy, drop)
    assert has(
        repo_findings(tree_copy, renders),
        PROJECT,
        "renders cluster-scoped Namespace notifications but clusterResourceWhitelist does not allow it",
    )


def test_project_wildcard_cluster_kinds_fail(tree_copy, renders):
    edit_app_file(
        tree_copy,
        lambda d: d["AppProject knative-kafka-prod"]["spec"]["clusterResourceWhitelist"].append(
            {"group": "*", "kind": "*"}
        ),
    )
    assert has(repo_findings(tree_copy, renders), PROJECT, "whitelist entry {'group': '*', 'kind': '*'} uses '*'")


def test_project_broader_than_render_fails(tree_copy, renders):
    def widen(docs: dict) -> None:
        spec = docs["AppProject knative-kafka-prod"]["spec"]
        spec["namespaceResourceWhitelist"].append({"group": "batch", "kind": "Job"})
        spec["clusterResourceWhitelist"].append({"group": "storage.k8s.io", "kind": "StorageClass"})
        spec["destinations"].append({"name": "prod", "namespace": "kube-system"})
        spec["sourceRepos"].append("*")

    edit_app_file(tree_copy, widen)
    found = repo_findings(tree_copy, renders)
    assert has(
        found, PROJECT, "namespaceResourceWhitelist entry {'group': 'batch', 'kind': 'Job'} matches nothing rendered"
    )
    assert has(
        found,
        PROJECT,
        "clusterResourceWhitelist entry {'group': 'storage.k8s.io', 'kind': 'StorageClass'} matches nothing",
    )
    assert has(found, PROJECT, "'namespace': 'kube-system'} is used by no rendered object")
    assert has(found, PROJECT, "sourceRepos '*' allows any repository")
    assert not has(found, PROJECT, "'namespace': 'kube-system'} uses '*'")


def test_project_missing_namespace_destination_fails(tree_copy, renders):
    def drop(docs: dict) -> None:
        dests = docs["AppProject knative-kafka-prod"]["spec"]["destinations"]
        dests[:] = [d for d in dests if not (d.get("name") == "prod" and d["namespace"] == "kourier-system")]

    edit_app_file(tree_copy, drop)
    assert has(
        repo_findings(tree_copy, renders),
        "[prod]",
        PROJECT,
        "no destination allows namespace kourier-system on {'name': 'prod'",
    )


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
    annotate(obj(render, "serving.knative.dev", "Service", NS, "notifications"), WAVE, "3")
    found = [str(f) for f in run_check(checks.check_sync_waves, render)]
    assert has(
        found,
        "Trigger notifications/notifications",
        "is not after Service.serving.knative.dev notifications/notifications (wave 3)",
        "spec.subscriber.ref",
    )
    assert has(found, "Broker notifications/events", "spec.delivery.deadLetterSink.ref")


def test_kafka_source_with_its_broker_fails(broken):
    render = broken("dev")
    annotate(obj(render, "sources.knative.dev", "KafkaSource", NS, "kafka-source"), WAVE, "2")
    found = [str(f) for f in run_check(checks.check_sync_waves, render)]
    assert has(
        found,
        "KafkaSource notifications/kafka-source (base/eventing/kafka-source.yaml)",
        "Broker notifications/events (wave 2)",
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
    found = [str(f) for f in checks.check_health_gating(EnvContext(tree_copy, renders["dev"]))]
    assert has(found, "Broker notifications/events", "no health check for eventing.knative.dev/Broker")


# --- schema ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def argocd_schemas() -> Path:
    return schemas.crd_schemas([], sorted(argocd_crds_dir().glob("*.yaml")))


def test_argocd_files_are_schema_valid(argocd_schemas):
    for name in (APP_FILE, "argocd/argocd-cm.yaml"):
        assert kubeconform.run((REPO_ROOT / name).read_text(), argocd_schemas, name) == []


def test_schema_rejects_a_misspelt_field(argocd_schemas):
    text = (REPO_ROOT / APP_FILE).read_text().replace("selfHeal: true", "selfheal: true")
    results = kubeconform.run(text, argocd_schemas, APP_FILE)
    assert sorted((r.kind, r.name) for r in results) == [("Application", "knative-kafka-dev")]
    assert all("additional properties 'selfheal' not allowed" in r.msg for r in results)


def test_findings_name_file_and_object():
    finding = Finding("argocd-app", "argocd", DEV_APP, APP_FILE, "x")
    assert str(finding).startswith(f"[argocd] Application argocd/knative-kafka-dev ({APP_FILE}): x")


def test_partial_validate_does_not_call_other_environments_unused(renders):
    only_prod = {"prod": renders["prod"]}
    assert [str(f) for check in ARGOCD_REPO_CHECKS for f in check(RepoContext(REPO_ROOT, only_prod))] == []
