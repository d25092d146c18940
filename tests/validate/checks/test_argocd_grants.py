"""Everything an AppProject role or a deployer role grants is checked (issue 22 item 3).

The deployer RBAC is compared exactly with the RBAC derived from the render, also offline: the objects of the
release asset an offline render leaves out (the Kafka Broker data plane) count through their stand-ins rebuilt
from the 1.23 sources. Each broken file below fails with environment, object and file named; the real tree passes.
"""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops.core.paths import REPO_ROOT
from gitops.core.render import RenderResult
from gitops.delivery import deployer_rbac
from gitops.validate.checks import argocd_access as access
from gitops.validate.findings import RepoContext
from tests.validate.checks.argocd_support import DEV_PROJECT, IN_FILE, PROJECT, edit_app_file, has

BROKER_ASSET_NAME = "eventing-kafka-broker.yaml"


def identity_findings(root: Path, renders: dict[str, RenderResult]) -> list[str]:
    return [str(f) for f in access.check_sync_identity(RepoContext(root, renders))]


def role_findings(root: Path, renders: dict[str, RenderResult]) -> list[str]:
    return [str(f) for f in access.check_project_roles(RepoContext(root, renders))]


def edit_deployer(root: Path, env: str, edit) -> None:
    path = root / deployer_rbac.deployer_file(env)
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    edit(docs)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def cluster_role(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "ClusterRole")


# --- the deployer ClusterRole, exactly ------------------------------------------------------------------------


def test_real_deployer_files_pass_exactly_while_offline(renders) -> None:
    """Offline the broker asset is left out, yet the comparison is exact: its objects come from the stand-ins."""
    for env, render in renders.items():
        assert any(gap.url.endswith(BROKER_ASSET_NAME) for gap in render.omitted), env
        assert deployer_rbac.unrebuilt(render) == []
        assert (REPO_ROOT / deployer_rbac.deployer_file(env)).read_text() == deployer_rbac.render_file(render)
    assert identity_findings(REPO_ROOT, renders) == []


def test_the_left_out_data_plane_is_derived_from_its_sources(renders) -> None:
    """The broker data plane's own ClusterRole is only in the stand-ins, and the derived role covers it."""
    render = renders["dev"]
    stand_in_roles = {o["metadata"]["name"] for o in render.stand_ins if o.get("kind") == "ClusterRole"} - {
        o["metadata"]["name"] for o in render.objects if o.get("kind") == "ClusterRole"
    }
    assert "knative-kafka-broker-data-plane" in stand_in_roles
    role = cluster_role(deployer_rbac.derive(render))
    escalate = next(r for r in role["rules"] if r["verbs"] == ["escalate"] and r["resources"] == ["clusterroles"])
    assert "knative-kafka-broker-data-plane" in escalate["resourceNames"]
    without = copy.deepcopy(render)
    without.stand_ins = []
    assert deployer_rbac.render_file(without) != deployer_rbac.render_file(render)


WIDENINGS = {
    "verbs-star": (lambda role: role["rules"][0].update(verbs=["*"]), "grants `*` in verbs"),
    "resources-star": (lambda role: role["rules"][0].update(resources=["*"]), "grants `*` in resources"),
    "groups-star": (lambda role: role["rules"][0].update(apiGroups=["*"]), "grants `*` in apiGroups"),
    "all-star": (
        lambda role: role["rules"].append({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}),
        "grants `*` in apiGroups, resources, verbs",
    ),
    "extra-verb": (
        lambda role: role["rules"][0]["verbs"].append("impersonate"),
        "ClusterRole knative-kafka-{env}-deployer: impersonate core/configmaps",
    ),
    "escalate-any-name": (
        lambda role: next(r for r in role["rules"] if r["verbs"] == ["escalate"]).pop("resourceNames"),
        "is not exactly the RBAC derived from the render: grants 1 more",
    ),
    "extra-rule": (
        lambda role: role["rules"].append(
            {"apiGroups": ["argoproj.io"], "resources": ["applications"], "verbs": ["create"]}
        ),
        "create argoproj.io/applications",
    ),
    "lost-resource": (lambda role: role["rules"][0]["resources"].pop(0), "lacks"),
}


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize("case", sorted(WIDENINGS))
def test_deployer_role_not_exactly_derived_fails(tree_copy, renders, env, case) -> None:
    edit, needle = WIDENINGS[case]
    edit_deployer(tree_copy, env, lambda docs: edit(cluster_role(docs)))
    found = identity_findings(tree_copy, renders)
    where = f"[{env}] ClusterRole knative-kafka-{env}-deployer (argocd/deployers/{env}.yaml)"
    assert has(found, where, needle.format(env=env)), found
    assert has(found, where, "gitops deployer-rbac --write")
    other = "prod" if env == "dev" else "dev"
    assert not has(found, f"[{other}]")


def test_extra_binding_to_cluster_admin_fails(tree_copy, renders) -> None:
    edit_deployer(
        tree_copy,
        "prod",
        lambda docs: docs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "deployer-admin"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "knative-kafka-deployer"}],
            }
        ),
    )
    assert has(
        identity_findings(tree_copy, renders),
        "[prod] ClusterRole knative-kafka-prod-deployer (argocd/deployers/prod.yaml)",
        "bound to ClusterRole cluster-admin",
    )


def test_stray_deployer_file_fails(tree_copy, renders) -> None:
    stray = tree_copy / deployer_rbac.DEPLOYERS_DIR / "break-glass.yaml"
    stray.write_text((tree_copy / deployer_rbac.deployer_file("dev")).read_text())
    assert has(
        identity_findings(tree_copy, renders),
        "[argocd] - (argocd/deployers/break-glass.yaml)",
        "is no environment's deployer RBAC",
    )


def test_a_left_out_asset_without_stand_in_cannot_pass(tree_copy, renders, broken) -> None:
    """Before: a superset was accepted whenever an asset was left out. Now an asset whose objects are unknown
    fails, even with the shipped file unchanged."""
    dev = broken("dev")
    dev.stand_ins, dev.stood_in = [], []
    found = identity_findings(tree_copy, {**renders, "dev": dev})
    assert has(found, "[dev] ClusterRole knative-kafka-dev-deployer", "cannot be compared exactly", BROKER_ASSET_NAME)


# --- AppProject roles -----------------------------------------------------------------------------------------


def add_role(root: Path, project: str, *policies: str, name: str = "ci") -> None:
    edit_app_file(
        root,
        lambda d: (
            d[f"AppProject {project}"]["spec"]
            .setdefault("roles", [])
            .append({"name": name, "description": "test", "policies": list(policies), "groups": ["example-org:ci"]})
        ),
    )


def test_real_projects_pass(renders) -> None:
    assert role_findings(REPO_ROOT, renders) == []


@pytest.mark.parametrize(
    ("project", "policy"),
    [
        ("knative-kafka-dev", "p, proj:knative-kafka-dev:ci, applications, get, knative-kafka-dev/*, allow"),
        (
            "knative-kafka-dev",
            "p, proj:knative-kafka-dev:ci, applications, sync, knative-kafka-dev/knative-kafka-dev, allow",
        ),
        (
            "knative-kafka-prod",
            "p, proj:knative-kafka-prod:ci, applications, get, knative-kafka-prod/knative-kafka-prod, allow",
        ),
        ("knative-kafka-prod", "p, proj:knative-kafka-prod:ci, logs, get, knative-kafka-prod/*, allow"),
        ("knative-kafka-prod", "p, proj:knative-kafka-prod:ci, applications, sync, knative-kafka-prod/*, deny"),
    ],
)
def test_roles_within_the_rule_pass(tree_copy, renders, project, policy) -> None:
    add_role(tree_copy, project, policy)
    assert role_findings(tree_copy, renders) == []


BAD_POLICIES = [
    # (project, policy, needle)
    (
        "knative-kafka-prod",
        "p, proj:knative-kafka-prod:ci, applications, sync, knative-kafka-prod/*, allow",
        "allows sync in a production project",
    ),
    (
        "knative-kafka-prod",
        "p, proj:knative-kafka-prod:ci, applications, *, knative-kafka-prod/*, allow",
        "allows action '*'",
    ),
    (
        "knative-kafka-dev",
        "p, proj:knative-kafka-dev:ci, applications, override, knative-kafka-dev/*, allow",
        "allows action 'override'",
    ),
    (
        "knative-kafka-dev",
        "p, proj:knative-kafka-dev:ci, applications, delete, knative-kafka-dev/*, allow",
        "allows action 'delete'",
    ),
    (
        "knative-kafka-dev",
        "p, proj:knative-kafka-dev:ci, applications, action/apps/Deployment/restart, knative-kafka-dev/*, allow",
        "allows action 'action/apps/Deployment/restart'",
    ),
    (
        "knative-kafka-prod",
        "p, proj:knative-kafka-prod:ci, exec, create, knative-kafka-prod/*, allow",
        "allows resource 'exec'",
    ),
    ("knative-kafka-dev", "p, proj:knative-kafka-dev:ci, *, get, knative-kafka-dev/*, allow", "allows resource '*'"),
    (
        "knative-kafka-dev",
        "p, proj:knative-kafka-dev:ci, applications, get, knative-kafka-prod/*, allow",
        "a role reaches only its own project",
    ),
    (
        "knative-kafka-prod",
        "p, proj:knative-kafka-prod:ci, applications, get, *, allow",
        "a role reaches only its own project",
    ),
    (
        "knative-kafka-prod",
        "p, proj:knative-kafka-prod:ci, applications, get, knative-kafka-prod/other-app, allow",
        "names no Application of knative-kafka-prod",
    ),
    (
        "knative-kafka-dev",
        "p, proj:knative-kafka-prod:ci, applications, get, knative-kafka-dev/*, allow",
        "a role's policies must name proj:knative-kafka-dev:ci",
    ),
    (
        "knative-kafka-dev",
        "p, proj:knative-kafka-dev:ci, applications, get, knative-kafka-dev/*, maybe",
        "effect 'maybe'",
    ),
    ("knative-kafka-dev", "g, proj:knative-kafka-dev:ci, role:admin", "Argo CD drops it"),
]


@pytest.mark.parametrize(("project", "policy", "needle"), BAD_POLICIES)
def test_roles_beyond_the_rule_fail(tree_copy, renders, project, policy, needle) -> None:
    add_role(tree_copy, project, policy)
    ref = PROJECT if project.endswith("prod") else DEV_PROJECT
    env = "prod" if project.endswith("prod") else "dev"
    found = role_findings(tree_copy, renders)
    assert has(found, f"[argocd] {ref} {IN_FILE}", f"role ci ({env}", needle), found


def test_a_project_no_environment_uses_is_judged_as_production(tree_copy, renders) -> None:
    def add_project(d):
        extra = copy.deepcopy(d["AppProject knative-kafka-dev"])
        extra["metadata"]["name"] = "spare"
        extra["spec"]["roles"] = [{"name": "ci", "policies": ["p, proj:spare:ci, applications, sync, spare/*, allow"]}]
        d["AppProject spare"] = extra

    path = tree_copy / "argocd-app.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    by_name = {f"{d['kind']} {d['metadata']['name']}": d for d in docs}
    add_project(by_name)
    docs.append(by_name["AppProject spare"])
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    assert has(
        role_findings(tree_copy, renders),
        "AppProject argocd/spare",
        "role ci (no environment, production)",
        "allows sync in a production project",
    )
