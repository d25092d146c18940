"""Argo CD Applications and their sync policy: the real argocd-app.yaml passes; a broken one fails, naming file and
object."""

from pathlib import Path

from gitops.core.paths import environments
from gitops.model.argocd import APP_FILE
from gitops.validate.checks.argocd_apps import check_health_tests
from gitops.validate.findings import RepoContext
from tests.support import MADE_UP_ENV
from tests.validate.checks.argocd_support import (
    DEV_APP,
    DEV_PROJECT,
    IN_FILE,
    NS,
    PROD_APP,
    edit_app_file,
    has,
    repo_findings,
)

# --- the real repository ---------------------------------------------------------------------------------------


# --- argocd-app.yaml broken ------------------------------------------------------------------------------------


def test_wrong_deploy_branch_fails(tree_copy, renders):
    edit_app_file(
        tree_copy,
        lambda d: d["Application knative-kafka-dev"]["spec"]["source"].update(targetRevision=f"deploy/{MADE_UP_ENV}"),
    )
    found = repo_findings(tree_copy, renders)
    assert has(
        found, DEV_APP, IN_FILE, f"environment '{MADE_UP_ENV}' has no overlay (known: {', '.join(environments())})"
    )
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


# --- an automated prod Application (also listed with the access checks in docs/argocd.md) ----------------------


def test_automated_prod_application_fails(tree_copy, renders) -> None:
    edit_app_file(
        tree_copy,
        lambda d: d["Application knative-kafka-prod"]["spec"]["syncPolicy"].update(automated={"selfHeal": True}),
    )
    assert has(repo_findings(tree_copy, renders), "[prod]", PROD_APP, IN_FILE, "remove syncPolicy.automated")


# --- health_test.yaml cases, run by validate -------------------------------------------------------------------


def test_validate_reports_a_failing_case(tree_copy: Path, renders):
    script = tree_copy / "argocd/resource_customizations/sources.knative.dev/KafkaSource/health.lua"
    script.write_text(script.read_text().replace('hs.status = "Degraded"', 'hs.status = "Progressing"'))
    found = [str(f) for f in check_health_tests(RepoContext(tree_copy, renders))]
    assert found == [
        "[argocd] sources.knative.dev/KafkaSource:testdata/degraded-offsets.yaml "
        "(argocd/resource_customizations/sources.knative.dev/KafkaSource/health_test.yaml): expected Degraded "
        "'InitialOffsetsNotCommitted: failed to initialize consumer group offset: kafka: client has run out of "
        "available brokers to talk to', health.lua says Progressing 'InitialOffsetsNotCommitted: failed to "
        "initialize consumer group offset: kafka: client has run out of available brokers to talk to'  <argocd-health>"
    ]
