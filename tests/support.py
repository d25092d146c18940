"""Helpers shared by the tests: a made-up environment, running one check, finding an object, adding an environment,
a mirror and lock complete enough to hydrate."""

import copy
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from gitops.core import manifests
from gitops.core.paths import RELEASES_LOCK, REPO_ROOT, release_mirror
from gitops.core.render import RenderResult
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import catalogue, registered

TREE = (
    "base",
    "overlays",
    "components",
    "apps",
    "argocd",
    "argocd-app.yaml",
    "validation-waivers.yaml",
    "environments.yaml",
)


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


BROKER_ASSET = (
    "https://github.com/knative-extensions/eventing-kafka-broker/releases/download/knative-v1.23.0/"
    "eventing-kafka-broker.yaml"
)
# Stands in for the Kafka Broker data plane, which no offline copy exists of; made here, hashed here.
TEST_ASSET = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: config-kafka-broker-data-plane
  namespace: knative-eventing
data:
  config-kafka-broker-producer.properties: |
    acks=all
"""


def mirror_with_broker_asset(tmp_path: Path, asset: str = TEST_ASSET) -> Path:
    """A mirror: links to every real mirrored asset plus the test-made broker data plane."""
    mirror = tmp_path / "mirror"
    for src in release_mirror().rglob("*.yaml"):
        dest = mirror / src.relative_to(release_mirror())
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(src)
    target = mirror / "knative-v1.23.0" / "eventing-kafka-broker" / "eventing-kafka-broker.yaml"
    target.write_text(asset)
    return mirror


def lock_digest(root: Path, url: str, digest: str) -> None:
    lock = root / RELEASES_LOCK
    text = lock.read_text()
    assert f"{url}: null" in text
    lock.write_text(text.replace(f"{url}: null", f"{url}: {digest}"))
