"""Argo CD repository checks on scope: each AppProject allows exactly what its environment's render contains,
and ignoreDifferences covers exactly what Knative rewrites at runtime. (Wildcards and reach into Argo CD's own
objects: gitops.validate.checks.argocd_access.)"""

import fnmatch
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gitops.core import manifests
from gitops.core.manifests import Obj, ObjKey
from gitops.model.argocd import ArgoDoc, is_namespaced, load_docs, projects, rule_matches, rule_paths, whitelist_matches
from gitops.validate.checks.argocd_apps import ARGO, env_apps, finding
from gitops.validate.findings import Finding, RepoContext
from gitops.validate.registry import repo_check

WEBHOOK_PATHS = frozenset(
    {
        ".webhooks[]?.rules",
        ".webhooks[]?.namespaceSelector",
        ".webhooks[]?.clientConfig.caBundle",
        ".webhooks[]?.clientConfig.service.path",
    }
)
CONVERSION_PATHS = frozenset({"/spec/conversion/webhook/clientConfig", ".spec.conversion.webhook.clientConfig"})
RULES_PATHS = frozenset({"/rules", ".rules"})
DELIVERY_PATHS = frozenset({"/spec/delivery", ".spec.delivery"})


def _project_for(docs: list[ArgoDoc], app: ArgoDoc) -> ArgoDoc | None:
    return projects(docs).get(str(app.spec.get("project")))


def _destination_matches(allowed: dict[str, Any], destination: dict[str, Any], namespace: str) -> bool:
    """One AppProject destination entry against an Application destination (by server or by name) + namespace."""
    server_ok = (
        "server" in destination
        and "server" in allowed
        and fnmatch.fnmatchcase(destination["server"], allowed["server"])
    )
    name_ok = "name" in destination and "name" in allowed and fnmatch.fnmatchcase(destination["name"], allowed["name"])
    return (server_ok or name_ok) and fnmatch.fnmatchcase(namespace, allowed.get("namespace", ""))


def _destination_allowed(project: ArgoDoc, destination: dict[str, Any], namespace: str) -> bool:
    return any(_destination_matches(a, destination, namespace) for a in project.spec.get("destinations") or [])


def _scope_findings(
    project: ArgoDoc, deployed: list[tuple[str, dict[str, Any], Obj]], env: str, complete: bool
) -> Iterator[Finding]:
    """deployed: (env, destination, object) for everything Applications of this project apply. Only when every
    environment of the project was rendered (complete) can an unused entry be called broader than needed."""
    name = "argocd-project"
    spec = project.spec
    cluster_list = spec.get("clusterResourceWhitelist") or []
    namespaced_list = spec.get("namespaceResourceWhitelist")
    if namespaced_list is None:
        yield finding(
            name,
            project,
            "no namespaceResourceWhitelist: every namespaced kind is allowed; list the rendered ones",
            env,
        )
        namespaced_list = []
    for entry in cluster_list if complete else []:
        if not any(not is_namespaced(o) and whitelist_matches(entry, o) for _e, _d, o in deployed):
            yield finding(
                name,
                project,
                f"clusterResourceWhitelist entry {entry} matches nothing rendered: broader than needed",
                env,
            )
    for entry in namespaced_list if complete else []:
        if not any(is_namespaced(o) and whitelist_matches({**entry, "name": None}, o) for _e, _d, o in deployed):
            yield finding(
                name,
                project,
                f"namespaceResourceWhitelist entry {entry} matches nothing rendered: broader than needed",
                env,
            )
    used_destinations: set[int] = set()
    for obj_env, destination, obj in deployed:
        key = ObjKey.of(obj)
        if is_namespaced(obj):
            if not any(whitelist_matches({**e, "name": None}, obj) for e in namespaced_list):
                yield finding(
                    name,
                    project,
                    f"{obj_env} renders {key} but namespaceResourceWhitelist does not allow {key.group or 'core'}/{key.kind}",
                    obj_env,
                )
            if not _destination_allowed(project, destination, key.namespace):
                yield finding(
                    name,
                    project,
                    f"{obj_env} renders {key} but no destination allows namespace {key.namespace} on {destination}",
                    obj_env,
                )
            for i, allowed in enumerate(spec.get("destinations") or []):
                if _destination_matches(allowed, destination, key.namespace):
                    used_destinations.add(i)
        elif not any(whitelist_matches(e, obj) for e in cluster_list):
            yield finding(
                name,
                project,
                f"{obj_env} renders cluster-scoped {key} but clusterResourceWhitelist does not allow it",
                obj_env,
            )
    for i, allowed in enumerate(spec.get("destinations") or []):
        if complete and i not in used_destinations and "*" not in str(allowed):
            yield finding(
                name, project, f"destination {allowed} is used by no rendered object: broader than needed", env
            )


@repo_check("argocd-project")
def check_project_scope(ctx: RepoContext) -> Iterator[Finding]:
    """Each AppProject allows exactly the repo, destinations and kinds its Applications' renders contain."""
    docs = load_docs(ctx.root)
    deployed_by = list(env_apps(docs))
    by_project: dict[str, list[tuple[str, dict[str, Any], Obj]]] = {}
    incomplete: set[str] = set()
    for app, env in deployed_by:
        if env not in ctx.renders:
            incomplete.add(str(app.spec.get("project")))
            continue
        destination = app.spec.get("destination") or {}
        by_project.setdefault(str(app.spec.get("project")), []).extend(
            # The stand-ins too: the left-out release assets are what Argo CD applies once their digest is locked
            # (the deployer RBAC is derived from them as well).
            (env, destination, obj)
            for obj in ctx.renders[env].objects + ctx.renders[env].stand_ins
        )
        project = _project_for(docs, app)
        if (
            project
            and destination.get("namespace")
            and not _destination_allowed(project, destination, destination["namespace"])
        ):
            yield finding(
                "argocd-project", app, f"destination {destination} is not allowed by project {project.name}", env
            )
    for project_name, deployed in by_project.items():
        project = projects(docs).get(project_name)
        if project is not None:
            yield from _scope_findings(project, deployed, ARGO, complete=project_name not in incomplete)


def _coverage(
    app: ArgoDoc, env: str, objects: Iterable[Obj], wanted: frozenset[str], what: str, select: Callable[[Obj], bool]
) -> Iterator[Finding]:
    rules = app.spec.get("ignoreDifferences") or []
    for obj in objects:
        if not select(obj):
            continue
        if not any(rule_matches(r, obj) and (wanted & rule_paths(r)) for r in rules):
            yield finding(
                "argocd-ignore-differences",
                app,
                f"{env}: nothing ignores {what} of {ObjKey.of(obj)}, which Knative rewrites at runtime (endless OutOfSync/self-heal fight)",
                env,
            )


@repo_check("argocd-ignore-differences")
def check_ignore_differences(ctx: RepoContext) -> Iterator[Finding]:
    """Every ignore rule matches a rendered object; every field Knative rewrites is ignored (or stated in git)."""
    name = "argocd-ignore-differences"
    for app, env in env_apps(load_docs(ctx.root)):
        render = ctx.renders.get(env)
        if render is None:
            continue
        objects = render.objects
        rules = app.spec.get("ignoreDifferences") or []
        for rule in rules:
            if not any(rule_matches(rule, o) for o in objects):
                yield finding(
                    name,
                    app,
                    f"{env}: ignoreDifferences entry {rule.get('group', '')}/{rule.get('kind')} "
                    f"{rule.get('name', '*')} matches no rendered object (wrong group or name? it would silently do nothing)",
                    env,
                )
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            for obj in (o for o in objects if o.get("kind") == kind):
                covered = set().union(*(rule_paths(r) for r in rules if rule_matches(r, obj)))
                missing = sorted(WEBHOOK_PATHS - covered)
                if missing:
                    yield finding(
                        name,
                        app,
                        f"{env}: {ObjKey.of(obj)} needs ignored {', '.join(missing)} (the Knative webhook rewrites them)",
                        env,
                    )
        yield from _coverage(
            app,
            env,
            objects,
            CONVERSION_PATHS,
            "spec.conversion.webhook.clientConfig",
            lambda o: (
                o.get("kind") == "CustomResourceDefinition"
                and manifests.dig(o, "spec", "conversion", "strategy") == "Webhook"
            ),
        )
        yield from _coverage(
            app,
            env,
            objects,
            RULES_PATHS,
            "rules",
            lambda o: o.get("kind") == "ClusterRole" and bool(o.get("aggregationRule")),
        )
        yield from _coverage(
            app,
            env,
            objects,
            DELIVERY_PATHS,
            "spec.delivery (not stated in git, so the eventing webhook defaults it)",
            lambda o: o.get("kind") == "Broker" and not manifests.dig(o, "spec", "delivery"),
        )


PLACEHOLDER_KEY = "REPLACE-WITH-"


def _integrity_without_repos(spec: dict[str, Any]) -> Any:
    """A project's sourceIntegrity with the repository URLs left out (checked by argocd-project against
    sourceRepos): what must be the same in every AppProject."""
    integrity = spec.get("sourceIntegrity")
    if not isinstance(integrity, dict):
        return integrity
    policies = ((integrity.get("git") or {}).get("policies")) or []
    return [{k: v for k, v in p.items() if k != "repos"} for p in policies if isinstance(p, dict)]


@repo_check("argocd-signatures")
def check_signed_commits_everywhere_or_nowhere(ctx: RepoContext) -> Iterator[Finding]:
    """Signed commits are on in every AppProject or in none, cover each project's repositories, use no placeholder.

    One project left out would deploy unsigned commits to its cluster."""
    found = sorted(projects(load_docs(ctx.root)).values(), key=lambda p: p.name)
    if not found:
        return
    first = found[0]
    for project in found:
        integrity = project.spec.get("sourceIntegrity")
        if _integrity_without_repos(project.spec) != _integrity_without_repos(first.spec):
            state = "on" if integrity else "off"
            other = "on" if first.spec.get("sourceIntegrity") else "off"
            yield finding(
                "argocd-signatures",
                project,
                f"sourceIntegrity differs from AppProject {first.name}'s (signed commits {state} here, {other} "
                "there): uncomment or edit the block the same way in every AppProject of the file",
            )
        if not integrity:
            continue
        for policy in (integrity.get("git") or {}).get("policies") or []:
            repos = sorted(str(r.get("url")) for r in policy.get("repos") or [])
            if repos != sorted(str(r) for r in project.spec.get("sourceRepos") or []):
                yield finding(
                    "argocd-signatures",
                    project,
                    f"sourceIntegrity covers {repos} but sourceRepos is {project.spec.get('sourceRepos')}: the "
                    "unsigned repositories would still sync",
                )
            keys = [str(k) for k in (policy.get("gpg") or {}).get("keys") or []]
            if not keys or any(k.startswith(PLACEHOLDER_KEY) for k in keys):
                yield finding(
                    "argocd-signatures",
                    project,
                    f"signed commits are on but the gpg keys are {keys}: put in your key IDs (a placeholder "
                    "matches no key and blocks every sync)",
                )
