"""The identity Argo CD syncs each environment as: a ServiceAccount whose RBAC is derived from that render.

With sync impersonation on (argocd-cm `application.sync.impersonation.enabled`), Argo CD applies an
environment's objects as the ServiceAccount its AppProject names in `destinationServiceAccounts`, not as its own
cluster-admin-like controller. `argocd/deployers/<env>.yaml` creates that ServiceAccount and a ClusterRole
allowing exactly the (group, resource) pairs the render contains. A cluster admin applies it once per cluster
(Argo CD cannot grant itself), and `make validate` fails when it no longer matches the render.

`.venv/bin/gitops deployer-rbac --write` regenerates every environment's file from its render.
"""

import argparse
import sys
from pathlib import Path

import yaml

from gitops.core import manifests
from gitops.core.manifests import Obj
from gitops.core.paths import REPO_ROOT, environments
from gitops.core.progress import timed
from gitops.core.render import RenderError, RenderResult, render_env

DEPLOYERS_DIR = Path("argocd/deployers")
NAMESPACE = "knative-kafka-deployer"
SERVICE_ACCOUNT = "deployer"
# The AppProject's destinationServiceAccounts value: `<namespace>:<name>` (Argo CD app-sync-using-impersonation.md).
IMPERSONATED = f"{NAMESPACE}:{SERVICE_ACCOUNT}"
# What a sync does: read and diff (get/list/watch), apply (create/update/patch), prune (delete).
SYNC_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
RBAC = "rbac.authorization.k8s.io"


def deployer_file(env: str) -> Path:
    return DEPLOYERS_DIR / f"{env}.yaml"


def role_name(env: str) -> str:
    return f"knative-kafka-{env}-deployer"


def resource_of(kind: str, crd_plurals: dict[tuple[str, str], str], group: str) -> str:
    """The REST resource of a kind: a rendered CRD's spec.names.plural, else the built-in kinds' rule
    (k8s.io/apimachinery meta.UnsafeGuessKindToResource: lower-case; -s → -ses, -y → -ies, else + s)."""
    if (group, kind) in crd_plurals:
        return crd_plurals[(group, kind)]
    lower = kind.lower()
    if lower.endswith("endpoints"):
        return lower
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + "s"


def _rules(objects: list[Obj]) -> list[dict[str, object]]:
    crd_plurals = {
        (manifests.dig(c, "spec", "group"), manifests.dig(c, "spec", "names", "kind")): manifests.dig(
            c, "spec", "names", "plural"
        )
        for c in manifests.of_kind(objects, "apiextensions.k8s.io", "CustomResourceDefinition")
    }
    by_group: dict[str, set[str]] = {}
    for obj in objects:
        key = manifests.ObjKey.of(obj)
        by_group.setdefault(key.group, set()).add(resource_of(key.kind, crd_plurals, key.group))
    rules: list[dict[str, object]] = [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(SYNC_VERBS)}
        for group, resources in sorted(by_group.items())
    ]
    # Creating a (Cluster)Role that grants what the deployer itself lacks needs `escalate` on it, and a binding
    # needs `bind` on the role it references. Both are limited to the names the render contains or references.
    for kind, resource, binding_kind in (
        ("ClusterRole", "clusterroles", None),
        ("Role", "roles", None),
        (None, "clusterroles", "ClusterRole"),
        (None, "roles", "Role"),
    ):
        names = sorted(
            {manifests.meta(o).get("name", "") for o in manifests.of_kind(objects, RBAC, kind)}
            if kind
            else {
                manifests.dig(o, "roleRef", "name")
                for o in objects
                if o.get("kind") in ("RoleBinding", "ClusterRoleBinding")
                and manifests.dig(o, "roleRef", "kind") == binding_kind
            }
        )
        if names:
            verb = "escalate" if kind else "bind"
            rules.append({"apiGroups": [RBAC], "resources": [resource], "verbs": [verb], "resourceNames": names})
    return rules


def unrebuilt(render: RenderResult) -> list[str]:
    """Left-out assets whose objects are unknown (no stand-in rebuilt from the upstream sources): while any
    remain, the derived role lacks their kinds and cannot be compared exactly."""
    return [gap.url for gap in render.omitted if gap.url not in render.stood_in]


def derive(render: RenderResult) -> list[Obj]:
    """The ServiceAccount, ClusterRole and ClusterRoleBinding that let Argo CD sync exactly this render.

    Objects of a release asset left out of an offline render (the Kafka Broker data plane has no offline copy)
    count through their stand-ins, rebuilt from the pinned release's sources (gitops.core.upstream_source), so the
    role is the same offline as in CI's full render and is compared exactly, never as a superset."""
    name = role_name(render.env)
    labels = {"app.kubernetes.io/part-of": "knative-kafka-gitops", "app.kubernetes.io/component": "argocd-deployer"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE, "labels": labels},
        },
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels},
            "rules": _rules([*render.objects, *render.stand_ins]),
        },
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
        },
    ]


def render_file(render: RenderResult) -> str:
    header = (
        f"# GENERATED from the {render.env} render by `.venv/bin/gitops deployer-rbac --write`; `make validate` fails when\n"
        "# it drifts. The identity Argo CD syncs this environment as (sync impersonation, AppProject\n"
        f"# knative-kafka-{render.env} destinationServiceAccounts). Applied ONCE per cluster by a cluster admin, never by Argo CD:\n"
        f"#   kubectl --context <{render.env} cluster> apply -f {deployer_file(render.env).as_posix()}\n"
        "# One rule per API group: exactly the resources the render contains, with the verbs a sync uses (delete is\n"
        "# for pruning objects removed from git). escalate/bind only on the roles the render creates or binds.\n"
        "# Namespaces are not narrowed here: the AppProject's destinations confine each Application to its own.\n"
    )
    docs = [yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in derive(render)]
    return header + "---\n" + "---\n".join(docs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="*", help="environments (default: every overlay)")
    parser.add_argument("--write", action="store_true", help=f"write {DEPLOYERS_DIR}/<env>.yaml (else print)")
    args = parser.parse_args(argv)
    files: dict[str, str] = {}
    for env in args.envs or environments():
        try:
            with timed("deployer-rbac", f"{env}: rendered, RBAC derived"):
                render = render_env(env)
                files[env] = render_file(render)
        except RenderError as error:
            print(f"deployer-rbac {env}: {error}; nothing was written", file=sys.stderr)
            return 1
        for url in unrebuilt(render):
            print(
                f"deployer-rbac {env}: WARNING {url} is not in the render and has no stand-in, its kinds are not covered",
                file=sys.stderr,
            )
    # Every render first, then the files: a failing environment leaves none of them half-updated.
    for env, text in files.items():
        if args.write:
            (REPO_ROOT / deployer_file(env)).write_text(text)
            print(f"deployer-rbac: wrote {deployer_file(env)}", file=sys.stderr)
        else:
            sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
