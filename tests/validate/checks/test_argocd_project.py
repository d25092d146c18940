"""Argo CD AppProjects and ignoreDifferences: the real bootstrap passes; a project or ignore rule that does not fit
the render fails, naming file and object."""

import copy

from gitops.core.paths import REPO_ROOT
from gitops.core.render import RenderResult
from gitops.validate.findings import RepoContext
from tests.support import obj
from tests.validate.checks.argocd_support import (
    ARGOCD_REPO_CHECKS,
    DEV_APP,
    EV,
    IN_FILE,
    NS,
    PROD_APP,
    PROJECT,
    edit_app_file,
    has,
    repo_findings,
)

# --- the real repository ---------------------------------------------------------------------------------------


def test_partial_validate_does_not_call_other_environments_unused(renders):
    only_prod = {"prod": renders["prod"]}
    assert [str(f) for check in ARGOCD_REPO_CHECKS for f in check(RepoContext(REPO_ROOT, only_prod))] == []


# --- ignoreDifferences -----------------------------------------------------------------------------------------


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


def test_project_broader_than_render_fails(tree_copy, renders):
    def widen(docs: dict) -> None:
        spec = docs["AppProject knative-kafka-prod"]["spec"]
        spec["namespaceResourceWhitelist"].append({"group": "batch", "kind": "CronJob"})
        spec["clusterResourceWhitelist"].append({"group": "storage.k8s.io", "kind": "StorageClass"})
        spec["destinations"].append({"name": "prod", "namespace": "kube-system"})
        spec["sourceRepos"].append("*")

    edit_app_file(tree_copy, widen)
    found = repo_findings(tree_copy, renders)
    assert has(
        found,
        PROJECT,
        "namespaceResourceWhitelist entry {'group': 'batch', 'kind': 'CronJob'} matches nothing rendered",
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
