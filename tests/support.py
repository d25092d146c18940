"""Helpers shared by the tests: a made-up environment, running one check, finding an object, adding an environment."""

import copy
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from gitops.core import manifests
from gitops.core.paths import REPO_ROOT
from gitops.core.render import RenderResult
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import catalogue, registered

TREE = ("base", "overlays", "components", "apps", "argocd", "validation-waivers.yaml", "environments.yaml")


# An environment name no fork would pick, for tests that add one to a copy of the tree.
MADE_UP_ENV = "zz-test-env"


def checks_of(*modules: object, scope: str | None = None) -> list[Callable]:
    """The registered check functions of these modules (scope "env" or "repo": only those), in validate's order."""
    names = {getattr(m, "__name__", m) for m in modules}
    return [c.func for c in catalogue() if c.func.__module__ in names and scope in (None, c.scope)]


def run_check(check: Callable[[EnvContext], Iterable[Finding]], render: RenderResult) -> list[Finding]:
    """Run one environment check through its catalogue entry, which also fails on a finding of another id."""
    return registered(check).run(EnvContext(REPO_ROOT, render))


def obj(render: RenderResult, group: str, kind: str, namespace: str, name: str) -> manifests.Obj:
    found = manifests.find(render.objects, group, kind, namespace, name)
    assert found is not None, f"{kind} {namespace}/{name} not in the {render.env} render"
    return found


def add_environment(root: Path, env: str, like: str, **facts: object) -> None:
    """Add overlays/<env> (a copy of <like>'s) and its environments.yaml entry (<like>'s facts, then `facts`)."""
    from ruamel.yaml import YAML

    shutil.copytree(root / "overlays" / like, root / "overlays" / env)
    yaml = YAML()
    path = root / "environments.yaml"
    doc = yaml.load(path.read_text())
    doc["environments"][env] = {**copy.deepcopy(dict(doc["environments"][like])), **facts}
    yaml.dump(doc, path)
