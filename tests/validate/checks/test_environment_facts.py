"""environment-facts: the production flag, manual sync, destination and AppProject agree; each way of weakening prod
through one of them alone is named with env, object and file."""

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from gitops.validate.checks import environment_facts
from gitops.validate.findings import RepoContext
from tests.validate.checks.argocd_support import IN_FILE, edit_app_file

ENV_FILE = "environments.yaml"


def findings(root: Path, renders) -> list[str]:
    return [str(f) for f in environment_facts.check_production_facts(RepoContext(root, renders))]


def set_facts(root: Path, env: str, **facts: object) -> None:
    yaml = YAML()
    path = root / ENV_FILE
    doc = yaml.load(path.read_text())
    doc["environments"][env].update(facts)
    yaml.dump(doc, path)


def test_real_tree_agrees(renders):
    from gitops.core.paths import REPO_ROOT

    assert findings(REPO_ROOT, renders) == []


@pytest.mark.parametrize(
    ("env", "facts", "expected"),
    [
        (
            "prod",
            {"production": False},
            "automated_sync: false (synced by a person, as production is) but production: false",
        ),
        ("prod", {"automated_sync": True}, "production: true with automated_sync: true"),
        ("prod", {"destination": {"server": "https://kubernetes.default.svc"}}, "is also dev's"),
        ("dev", {"destination": {"name": "prod"}}, "is also dev's"),
        ("dev", {"automated_sync": False}, "but production: false, which turns off every production check"),
    ],
    ids=["prod flag flipped off", "prod synced automatically", "prod on dev's cluster", "dev on prod's", "dev manual"],
)
def test_production_facts_disagree(tree_copy, renders, env, facts, expected):
    set_facts(tree_copy, env, **facts)
    found = findings(tree_copy, renders)
    named = "prod" if "is also dev's" in expected else env
    assert any(f.startswith(f"[{named}] environment {named} ({ENV_FILE})") and expected in f for f in found), found


def test_dev_flipped_to_production_shares_nothing_with_prod(tree_copy, renders):
    """Both production, manual, own destinations and projects: consistent (a second production environment)."""
    set_facts(tree_copy, "dev", production=True, automated_sync=False)
    assert findings(tree_copy, renders) == []


def _share_project(docs):
    docs["Application knative-kafka-dev"]["spec"]["project"] = "knative-kafka-prod"


def _dev_project_wildcard_server(docs):
    docs["AppProject knative-kafka-dev"]["spec"]["destinations"].append({"server": "*", "namespace": "notifications"})


def _dev_project_names_prod(docs):
    docs["AppProject knative-kafka-dev"]["spec"]["destinations"].append({"name": "prod", "namespace": "notifications"})


def _dev_project_any_name(docs):
    docs["AppProject knative-kafka-dev"]["spec"]["destinations"].append({"name": "p*", "namespace": "*"})


@pytest.mark.parametrize(
    ("edit", "obj", "expected"),
    [
        (_share_project, "AppProject argocd/knative-kafka-prod", "deploys production prod and non-production dev"),
        (_dev_project_wildcard_server, "AppProject argocd/knative-kafka-dev", "reaches production prod's cluster"),
        (_dev_project_names_prod, "AppProject argocd/knative-kafka-dev", "allows destination {'name': 'prod'"),
        (_dev_project_any_name, "AppProject argocd/knative-kafka-dev", "allows destination {'name': 'p*'"),
    ],
    ids=["one project for dev and prod", "dev project: any server", "dev project: prod by name", "dev: name glob"],
)
def test_projects_keep_production_apart(tree_copy, renders, edit, obj, expected):
    edit_app_file(tree_copy, edit)
    found = findings(tree_copy, renders)
    assert any(f.startswith(f"[prod] {obj} {IN_FILE}") and expected in f for f in found), found
