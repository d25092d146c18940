"""Argo CD access model: each broken bootstrap fails validate with env, object and file named; the real one passes."""

import copy
from pathlib import Path

import pytest
import yaml

from gitops.core import releases
from gitops.core.paths import POST_INSTALL_KUSTOMIZATION, REPO_ROOT
from gitops.core.render import RenderResult
from gitops.model.argocd import APP_FILE, IN_CLUSTER
from gitops.validate import kubeconform, schemas
from gitops.validate.checks import argocd_access as access
from gitops.validate.findings import RepoContext
from tests.validate.checks.argocd_support import (
    DEV_APP,
    DEV_PROJECT,
    IN_FILE,
    PROD_APP,
    PROJECT,
    edit_app_file,
    has,
    repo_findings,
)


def access_findings(root: Path, renders: dict[str, RenderResult]) -> list[str]:
    ctx = RepoContext(root, renders)
    checks = [
        access.check_auto_sync_cannot_write_argocd,
        access.check_project_wildcards,
        access.check_unique_destinations,
        access.check_no_sync_time_kustomize,
        access.check_sync_identity,
    ]
    return [str(f) for check in checks for f in check(ctx)]


def test_real_bootstrap_passes(renders) -> None:
    assert access_findings(REPO_ROOT, renders) == []


# --- 1. an auto-synced Application that can write Argo CD's own objects ---------------------------------------


def test_auto_synced_app_whose_project_allows_applications_fails(tree_copy, renders) -> None:
    edit_app_file(
        tree_copy,
        lambda d: d["AppProject knative-kafka-dev"]["spec"]["namespaceResourceWhitelist"].append(
            {"group": "argoproj.io", "kind": "Application"}
        ),
    )
    found = access_findings(tree_copy, renders)
    assert has(found, "[argocd]", DEV_APP, IN_FILE, "syncs automatically with project knative-kafka-dev")
    assert has(found, DEV_APP, "kind(s) Application", "any commit on deploy/dev could rewrite Argo CD's own")


def test_auto_synced_app_reaching_argocd_namespace_fails(tree_copy, renders) -> None:
    edit_app_file(
        tree_copy,
        lambda d: d["AppProject knative-kafka-dev"]["spec"]["destinations"].append(
            {"server": IN_CLUSTER, "namespace": "argocd"}
        ),
    )
    assert has(access_findings(tree_copy, renders), DEV_APP, "Argo CD's namespace argocd")


def test_auto_synced_app_without_kind_whitelist_fails(tree_copy, renders) -> None:
    edit_app_file(tree_copy, lambda d: d["AppProject knative-kafka-dev"]["spec"].pop("namespaceResourceWhitelist"))
    assert has(access_findings(tree_copy, renders), DEV_APP, "every namespaced kind (no namespaceResourceWhitelist)")


def test_manual_app_is_not_an_auto_sync_risk(tree_copy, renders) -> None:
    edit_app_file(
        tree_copy,
        lambda d: d["AppProject knative-kafka-prod"]["spec"]["namespaceResourceWhitelist"].append(
            {"group": "argoproj.io", "kind": "Application"}
        ),
    )
    assert not has(access_findings(tree_copy, renders), PROD_APP, "syncs automatically")


# --- 2. wildcards in a project --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "sourceRepos",
            "https://github.com/example-org/*",
            "sourceRepos 'https://github.com/example-org/*' allows any",
        ),
        ("destinations", {"name": "prod", "namespace": "*"}, "destination {'name': 'prod', 'namespace': '*'} uses '*'"),
        ("clusterResourceWhitelist", {"group": "*", "kind": "*"}, "whitelist entry {'group': '*', 'kind': '*'} uses"),
        ("namespaceResourceWhitelist", {"group": "", "kind": "*"}, "whitelist entry {'group': '', 'kind': '*'} uses"),
    ],
)
def test_project_wildcards_fail(tree_copy, renders, field, value, message) -> None:
    edit_app_file(tree_copy, lambda d: d["AppProject knative-kafka-prod"]["spec"][field].append(value))
    assert has(access_findings(tree_copy, renders), "[argocd]", PROJECT, IN_FILE, message)


def test_project_wildcard_cluster_kinds_fail(tree_copy, renders):
    edit_app_file(
        tree_copy,
        lambda d: d["AppProject knative-kafka-prod"]["spec"]["clusterResourceWhitelist"].append(
            {"group": "*", "kind": "*"}
        ),
    )
    assert has(repo_findings(tree_copy, renders), PROJECT, "whitelist entry {'group': '*', 'kind': '*'} uses '*'")


# --- 3. two Applications, one destination ---------------------------------------------------------------------


def test_two_applications_with_one_destination_fail(tree_copy, renders) -> None:
    path = tree_copy / APP_FILE
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    twin = copy.deepcopy(
        next(d for d in docs if (d["kind"], d["metadata"]["name"]) == ("Application", "knative-kafka-dev"))
    )
    twin["metadata"]["name"] = "knative-kafka-dev-twin"
    twin["spec"]["destination"] = {"name": "in-cluster", "namespace": "notifications"}  # the same cluster, by name
    path.write_text(yaml.safe_dump_all([*docs, twin], sort_keys=False))
    assert has(
        access_findings(tree_copy, renders),
        "Application argocd/knative-kafka-dev-twin",
        IN_FILE,
        "same destination (in-cluster, namespace notifications) as Application knative-kafka-dev",
    )


# --- 4. kustomize over remote URLs at sync time ----------------------------------------------------------------


def test_source_building_remote_kustomize_at_sync_fails(tree_copy, renders) -> None:
    edit_app_file(
        tree_copy,
        lambda d: d["Application knative-kafka-prod"]["spec"]["source"].update(
            targetRevision="deploy/prod", path="overlays/prod", directory=None
        ),
    )
    assert has(
        access_findings(tree_copy, renders),
        PROD_APP,
        IN_FILE,
        "source 'overlays/prod' is a kustomization Argo CD would build at sync, fetching "
        # the overlay's own build: the post-install kustomization is added by our render only
        f"{sum(p != REPO_ROOT / POST_INSTALL_KUSTOMIZATION for p in releases.referenced_urls(REPO_ROOT).values())} "
        "remote URL(s) with no digest",
        "https://github.com/knative/serving/releases/download/",
    )


def test_source_with_a_render_tool_fails(tree_copy, renders) -> None:
    edit_app_file(
        tree_copy, lambda d: d["Application knative-kafka-dev"]["spec"]["source"].update(kustomize={"namePrefix": "x-"})
    )
    assert has(access_findings(tree_copy, renders), DEV_APP, "source sets kustomize: Argo CD would render at sync")


# --- the sync identity ----------------------------------------------------------------------------------------


def test_impersonation_switched_off_fails(tree_copy, renders) -> None:
    cm = tree_copy / "argocd/argocd-cm.yaml"
    cm.write_text(cm.read_text().replace('application.sync.impersonation.enabled: "true"', ""))
    assert has(
        access_findings(tree_copy, renders),
        "ConfigMap argocd/argocd-cm (argocd/argocd-cm.yaml)",
        'needs data application.sync.impersonation.enabled: "true"',
    )


def test_project_impersonating_another_account_fails(tree_copy, renders) -> None:
    edit_app_file(
        tree_copy,
        lambda d: d["AppProject knative-kafka-dev"]["spec"]["destinationServiceAccounts"][0].update(
            defaultServiceAccount="kube-system:default"
        ),
    )
    assert has(
        access_findings(tree_copy, renders),
        "[dev]",
        DEV_PROJECT,
        "must map namespace 'notifications' to knative-kafka-deployer:deployer",
        "kube-system:default",
    )


def test_deployer_rbac_missing_a_rendered_kind_fails(tree_copy, renders, broken) -> None:
    prod = broken("prod")
    # A kind the render does not hold yet (NetworkPolicy, the original example here, now is rendered).
    prod.objects.append(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "notifications", "namespace": "notifications"},
            "spec": {"hard": {"pods": "40"}},
        }
    )
    found = access_findings(tree_copy, {**renders, "prod": prod})
    assert has(
        found,
        "[prod] ClusterRole knative-kafka-prod-deployer (argocd/deployers/prod.yaml)",
        "is not exactly the RBAC derived from the render",
        ".venv/bin/gitops deployer-rbac --write",
    )
    assert not has(found, "[dev]")


def test_deployer_rbac_file_missing_fails(tree_copy, renders) -> None:
    (tree_copy / "argocd/deployers/dev.yaml").unlink()
    assert has(access_findings(tree_copy, renders), "[dev] ClusterRole knative-kafka-dev-deployer", "missing")


# --- argocd-app.yaml and its signed-commits switch (in the file, commented out) --------------------------------

KEYS = ("4AEE18F83AFDEB23", "B5690EEEBB952194")


def switch_on_signed_commits(path: Path, projects: int | None = None, keys: tuple[str, ...] = KEYS) -> None:
    """Uncomment the `sourceIntegrity` block of the first `projects` AppProjects (all by default), as
    docs/argocd.md says, and put `keys` in place of the placeholders."""
    lines, out, switched, inside = path.read_text().splitlines(keepends=True), [], 0, False
    for line in lines:
        if line == "  # sourceIntegrity:\n":
            inside = projects is None or switched < projects
            switched += inside
        elif not line.startswith("  #   "):
            inside = False
        out.append("  " + line[4:] if inside else line)
    text = "".join(out)
    placeholders = ("REPLACE-WITH-CI-SIGNING-KEY-ID", "REPLACE-WITH-GITHUB-WEB-FLOW-KEY-ID")
    for placeholder, key in zip(placeholders, keys or placeholders, strict=True):
        text = text.replace(f"- {placeholder}\n", f"- {key}\n")
    path.write_text(text)


def app_docs(root: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all((root / APP_FILE).read_text()) if d]


def signature_findings(root: Path) -> list[str]:
    from gitops.validate.checks.argocd_project import check_signed_commits_everywhere_or_nowhere

    return [str(f) for f in check_signed_commits_everywhere_or_nowhere(RepoContext(root, {}))]


def test_argocd_app_yaml_is_one_file_at_the_top_level() -> None:
    """What a person applies once (`kubectl apply -f argocd-app.yaml`): no kustomization to build first."""
    assert APP_FILE == "argocd-app.yaml" and (REPO_ROOT / APP_FILE).is_file()
    assert not (REPO_ROOT / "argocd/bootstrap").exists() and not (REPO_ROOT / "argocd/signed-commits").exists()
    kinds = {d["kind"] for d in app_docs(REPO_ROOT)}
    assert kinds == {"AppProject", "Application"}


def test_signed_commits_are_off_and_ready_in_every_project() -> None:
    projects = [d for d in app_docs(REPO_ROOT) if d["kind"] == "AppProject"]
    assert not any("sourceIntegrity" in p["spec"] for p in projects)
    assert (REPO_ROOT / APP_FILE).read_text().count("  # sourceIntegrity:\n") == len(projects)
    assert signature_findings(REPO_ROOT) == []


def test_switching_signed_commits_on_everywhere_passes_the_check_and_the_schema(tree_copy: Path) -> None:
    switch_on_signed_commits(tree_copy / APP_FILE)
    docs = app_docs(tree_copy)
    projects = [d for d in docs if d["kind"] == "AppProject"]
    for project in projects:
        policy = project["spec"]["sourceIntegrity"]["git"]["policies"][0]
        assert policy["gpg"] == {"mode": "head", "keys": list(KEYS)}
        assert policy["repos"] == [{"url": project["spec"]["sourceRepos"][0]}]
    assert signature_findings(tree_copy) == []
    crd_dir = schemas.crd_schemas([], schemas.extra_crd_files())
    assert kubeconform.run(yaml.safe_dump_all(docs), crd_dir, APP_FILE) == []


def test_signed_commits_on_in_one_project_only_fails_naming_the_other(tree_copy: Path) -> None:
    switch_on_signed_commits(tree_copy / APP_FILE, projects=1)
    found = signature_findings(tree_copy)
    assert found == [
        f"[argocd] AppProject argocd/knative-kafka-prod ({APP_FILE}): sourceIntegrity differs from AppProject "
        "knative-kafka-dev's (signed commits off here, on there): uncomment or edit the block the same way in every "
        "AppProject of the file  <argocd-signatures>"
    ], found


def test_signed_commits_with_placeholder_keys_fail(tree_copy: Path) -> None:
    switch_on_signed_commits(tree_copy / APP_FILE, keys=())
    found = signature_findings(tree_copy)
    assert len(found) == 2 and all("REPLACE-WITH-CI-SIGNING-KEY-ID" in f and "placeholder" in f for f in found)
    assert f"AppProject argocd/knative-kafka-dev ({APP_FILE})" in found[0]


# --- CODEOWNERS: who must review what reaches prod or Argo CD -------------------------------------------------


def codeowner(path: str, rules: list[tuple[str, list[str]]]) -> list[str]:
    """GitHub's rule: the last matching pattern wins (only the anchored forms this file uses: `*`, `/dir/`, `/file`)."""
    owners: list[str] = []
    for pattern, who in rules:
        if pattern == "*" or (pattern.endswith("/") and f"/{path}".startswith(pattern)) or f"/{path}" == pattern:
            owners = who
    return owners


@pytest.mark.parametrize(
    ("path", "team"),
    [
        ("overlays/prod/kustomization.yaml", "@example-org/prod-approvers"),
        ("base/platform/releases.lock.yaml", "@example-org/prod-approvers"),
        ("gitops/delivery/hydrate.py", "@example-org/prod-approvers"),
        ("apps/notifications/deploy/service.yaml", "@example-org/prod-approvers"),
        (APP_FILE, "@example-org/argocd-admins"),
        ("argocd/argocd-cm.yaml", "@example-org/argocd-admins"),
        ("argocd/deployers/prod.yaml", "@example-org/argocd-admins"),
        (".github/workflows/hydrate.yaml", "@example-org/argocd-admins"),
        (".github/CODEOWNERS", "@example-org/argocd-admins"),
    ],
)
def test_codeowners_cover_what_changes_prod_or_argocd(path: str, team: str) -> None:
    rules = [
        (parts[0], parts[1:])
        for line in (REPO_ROOT / ".github/CODEOWNERS").read_text().splitlines()
        if (parts := line.split("#", 1)[0].split())
    ]
    assert (REPO_ROOT / path).exists(), path
    assert codeowner(path, rules) == [team]
    assert codeowner("apps/notifications/src/notifications/app.py", rules) == ["@example-org/knative-kafka-maintainers"]
