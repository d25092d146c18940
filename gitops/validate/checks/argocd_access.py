"""Argo CD access checks: git write access must not be Argo CD admin, and Argo CD applies only validated bytes.

- an auto-synced Application whose project could create or change Argo CD's own objects (argoproj.io kinds, or
  anything in Argo CD's namespace): a commit could widen a project or add an automated prod Application;
- a project with a wildcard in sourceRepos, destinations or cluster/namespace kinds;
- two Applications with the same destination cluster and namespace (they would prune each other's objects);
- an Application source Argo CD would render with kustomize over remote URLs at sync time (no digest check);
- the sync identity: impersonation on in argocd-cm, each environment's project naming the deployer
  ServiceAccount, and argocd/deployers/<env>.yaml exactly the RBAC derived from the render (left-out assets
  through their stand-ins rebuilt from the upstream sources), no `*`, no stray file.

Argo CD's own docs (projects.md) warn that a project allowed to write Argo CD's namespace is effectively admin.
"""

import fnmatch
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from gitops.core import environments as env_settings
from gitops.core import manifests
from gitops.core.paths import environments
from gitops.delivery import deployer_rbac
from gitops.model.argocd import IN_CLUSTER, ArgoDoc, applications, load_docs, projects, sources
from gitops.validate.checks.argocd_apps import ARGO, env_apps, finding
from gitops.validate.findings import Finding, RepoContext
from gitops.validate.registry import repo_check

ARGO_KINDS = ("AppProject", "Application", "ApplicationSet")
IMPERSONATION_KEY = "application.sync.impersonation.enabled"
KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def is_automated(app: ArgoDoc) -> bool:
    automated = (app.spec.get("syncPolicy") or {}).get("automated")
    return automated is not None and (automated or {}).get("enabled", True) is not False


def _cluster(destination: dict[str, Any]) -> str:
    """One spelling per cluster: Argo CD registers its own as server https://kubernetes.default.svc, name in-cluster."""
    if destination.get("server"):
        return "in-cluster" if destination["server"] == IN_CLUSTER else f"server {destination['server']}"
    return "in-cluster" if destination.get("name") == "in-cluster" else f"name {destination.get('name')}"


def _glob(value: Any, pattern: Any) -> bool:
    return isinstance(pattern, str) and fnmatch.fnmatchcase(str(value), pattern)


def _argocd_reach(project: ArgoDoc, argocd_namespace: str) -> list[str]:
    """What in project lets an Application write Argo CD's own objects (empty: nothing)."""
    spec = project.spec
    reach: list[str] = []
    namespaced = spec.get("namespaceResourceWhitelist")
    if namespaced is None:
        reach.append("every namespaced kind (no namespaceResourceWhitelist), Application and AppProject included")
    for entry in [*(namespaced or []), *(spec.get("clusterResourceWhitelist") or [])]:
        kinds = [k for k in ARGO_KINDS if _glob("argoproj.io", entry.get("group")) and _glob(k, entry.get("kind"))]
        if kinds:
            reach.append(f"kind(s) {', '.join(kinds)} (whitelist entry {entry})")
    for destination in spec.get("destinations") or []:
        on_argo_cluster = _glob(IN_CLUSTER, destination.get("server")) or _glob("in-cluster", destination.get("name"))
        if on_argo_cluster and _glob(argocd_namespace, destination.get("namespace")):
            reach.append(f"Argo CD's namespace {argocd_namespace} (destination {destination})")
    return reach


@repo_check("argocd-access")
def check_auto_sync_cannot_write_argocd(ctx: RepoContext) -> Iterator[Finding]:
    """No automatically synced Application's project may write Argo CD's own objects or namespace."""
    docs = load_docs(ctx.root)
    all_projects = projects(docs)
    for app in applications(docs):
        project = all_projects.get(str(app.spec.get("project")))
        if not is_automated(app) or project is None:
            continue
        argocd_namespace = manifests.meta(app.obj).get("namespace") or "argocd"
        for what in _argocd_reach(project, argocd_namespace):
            yield finding(
                "argocd-access",
                app,
                f"syncs automatically with project {project.name}, which allows {what}: any commit on "
                f"{', '.join(sorted({str(s.get('targetRevision')) for s in sources(app)}))} could rewrite Argo CD's "
                "own AppProjects, Applications or settings (git write access = Argo CD admin); keep Argo CD's "
                "objects in the bootstrap a person applies",
            )


@repo_check("argocd-project")
def check_project_wildcards(ctx: RepoContext) -> Iterator[Finding]:
    """No AppProject uses '*' for repositories, destinations or resource kinds."""
    name = "argocd-project"
    for project in projects(load_docs(ctx.root)).values():
        spec = project.spec
        for url in spec.get("sourceRepos") or []:
            if "*" in str(url):
                yield finding(name, project, f"sourceRepos {url!r} allows any repository; list this repository only")
        for destination in spec.get("destinations") or []:
            if any("*" in str(destination.get(k, "")) for k in ("server", "name", "namespace")):
                yield finding(name, project, f"destination {destination} uses '*'; list the clusters and namespaces")
        for field in ("clusterResourceWhitelist", "namespaceResourceWhitelist"):
            for entry in spec.get(field) or []:
                if "*" in str(entry.get("group", "")) + str(entry.get("kind", "")) or entry.get("name") == "*":
                    yield finding(
                        name, project, f"whitelist entry {entry} uses '*'; list the kinds the render contains"
                    )


@repo_check("argocd-destination")
def check_unique_destinations(ctx: RepoContext) -> Iterator[Finding]:
    """No two Applications share a cluster and namespace (both would prune each other's objects)."""
    seen: dict[tuple[str, str], ArgoDoc] = {}
    for app in applications(load_docs(ctx.root)):
        destination = app.spec.get("destination") or {}
        key = (_cluster(destination), str(destination.get("namespace", "")))
        if key in seen:
            yield finding(
                "argocd-destination",
                app,
                f"same destination ({key[0]}, namespace {key[1]}) as Application {seen[key].name}: both would "
                "manage, diff and prune the same objects; give each environment its own cluster or namespace",
            )
        else:
            seen[key] = app


def _remote_resources(directory: Path, root: Path, seen: set[Path]) -> list[str]:
    """Remote URLs a kustomize build of directory would fetch (through local bases and components)."""
    kustomization = next((directory / n for n in KUSTOMIZATIONS if (directory / n).is_file()), None)
    if kustomization is None or directory in seen:
        return []
    seen.add(directory)
    doc = yaml.safe_load(kustomization.read_text()) or {}
    remote: list[str] = []
    for entry in [*(doc.get("resources") or []), *(doc.get("components") or [])]:
        if not isinstance(entry, str):
            continue
        if entry.startswith(("http://", "https://", "git@", "github.com/")) or "://" in entry:
            remote.append(entry)
        elif (directory / entry).is_dir():
            remote += _remote_resources((directory / entry).resolve(), root, seen)
    return remote


@repo_check("argocd-source")
def check_no_sync_time_kustomize(ctx: RepoContext) -> Iterator[Finding]:
    """Argo CD applies hydrated files from a deploy branch; it never builds kustomize at sync time.

    Argo CD must apply hydrated files, not build them: a kustomize source with remote URLs fetches release
    assets at sync time with no digest check, so prod would run bytes `make validate` never saw."""
    for app in applications(load_docs(ctx.root)):
        for source in sources(app):
            tools = [tool for tool in ("kustomize", "helm", "plugin") if source.get(tool) is not None]
            path = ctx.root / str(source.get("path", ""))
            remote = _remote_resources(path.resolve(), ctx.root, set()) if source.get("path") else []
            if remote:
                yield finding(
                    "argocd-source",
                    app,
                    f"source {source.get('path')!r} is a kustomization Argo CD would build at sync, fetching "
                    f"{len(remote)} remote URL(s) with no digest check (first: {remote[0]}); sync the hydrated "
                    "deploy branch as a plain directory instead",
                )
            elif tools:
                yield finding(
                    "argocd-source",
                    app,
                    f"source sets {', '.join(tools)}: Argo CD would render at sync time instead of applying the "
                    "hydrated files `make validate` passed; use a plain directory source",
                )


@repo_check("argocd-identity")
def check_sync_identity(ctx: RepoContext) -> Iterator[Finding]:
    """Impersonation on; each environment syncs as the deployer ServiceAccount; its RBAC is exactly the derived one."""
    docs = load_docs(ctx.root)
    cm = next((d for d in docs if d.kind == "ConfigMap" and d.name == "argocd-cm"), None)
    if cm is None or str((cm.obj.get("data") or {}).get(IMPERSONATION_KEY)) != "true":
        yield Finding(
            "argocd-identity",
            ARGO,
            "ConfigMap argocd/argocd-cm",
            cm.path if cm else "argocd/argocd-cm.yaml",
            f'needs data {IMPERSONATION_KEY}: "true", or every sync runs with the Argo CD controller\'s own '
            "(cluster-admin-like) rights and destinationServiceAccounts do nothing",
        )
    all_projects = projects(docs)
    for app, env in env_apps(docs):
        project = all_projects.get(str(app.spec.get("project")))
        if project is None:
            continue
        namespace = (app.spec.get("destination") or {}).get("namespace", "")
        accounts = [
            a.get("defaultServiceAccount")
            for a in project.spec.get("destinationServiceAccounts") or []
            if _glob(namespace, a.get("namespace"))
        ]
        if not accounts or accounts[0] != deployer_rbac.IMPERSONATED:
            yield finding(
                "argocd-identity",
                project,
                f"{env}: destinationServiceAccounts must map namespace {namespace!r} to "
                f"{deployer_rbac.IMPERSONATED} (first match wins; found {accounts or 'none'})",
                env,
            )
    for env, render in ctx.renders.items():
        path = deployer_rbac.deployer_file(env)
        wanted = deployer_rbac.render_file(render)
        shipped = (ctx.root / path).read_text() if (ctx.root / path).is_file() else None
        role = f"ClusterRole {deployer_rbac.role_name(env)}"
        for url in deployer_rbac.unrebuilt(render):
            yield Finding(
                "argocd-identity",
                env,
                role,
                path.as_posix(),
                f"cannot be compared exactly: {url} is left out of the render and has no stand-in rebuilt from its "
                "sources, so its kinds are unknown; mirror the asset or add its sources (gitops/core/upstream_source.py)",
            )
        if shipped is not None:
            yield from _wildcard_grants(env, path, shipped)
        if shipped == wanted:
            continue
        yield Finding(
            "argocd-identity",
            env,
            role,
            path.as_posix(),
            (
                "missing"
                if shipped is None
                else "is not exactly the RBAC derived from the render: " + _grant_difference(shipped, wanted)
            )
            + "; regenerate with `.venv/bin/gitops deployer-rbac --write` and have a cluster admin re-apply it",
        )
    known = {deployer_rbac.deployer_file(env).name for env in environments(ctx.root)}
    for stray in sorted((ctx.root / deployer_rbac.DEPLOYERS_DIR).glob("*")):
        if stray.name not in known:
            yield Finding(
                "argocd-identity",
                ARGO,
                "-",
                (deployer_rbac.DEPLOYERS_DIR / stray.name).as_posix(),
                "is no environment's deployer RBAC: a cluster admin applying the directory would grant what no "
                "render derives; remove it",
            )


Grant = tuple[
    str, str, str, str, str, str
]  # (kind, namespace/name of the role or binding, group, resource, verb, name)


def _grants(text: str) -> set[Grant]:
    """Every (object, group, resource, verb, resourceName) a deployer file grants, and each binding's subject and
    role as a pseudo-grant, so any widening, extra rule, extra role or binding is a difference."""
    out: set[Grant] = set()
    for doc in yaml.safe_load_all(text):
        if not isinstance(doc, dict):
            continue
        kind, meta = str(doc.get("kind")), doc.get("metadata") or {}
        ref = f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))
        for rule in doc.get("rules") or []:
            for g in rule.get("apiGroups") or [""] if rule.get("nonResourceURLs") else rule.get("apiGroups") or []:
                for r in rule.get("resources") or rule.get("nonResourceURLs") or []:
                    for v in rule.get("verbs") or []:
                        for n in rule.get("resourceNames") or ["*"]:
                            out.add((kind, ref, str(g), str(r), str(v), str(n)))
        if kind.endswith("Binding"):
            role_ref = doc.get("roleRef") or {}
            for subject in doc.get("subjects") or []:
                out.add(
                    (
                        kind,
                        ref,
                        "subject",
                        f"{subject.get('kind')} {subject.get('namespace', '')}/{subject.get('name')}",
                        "bound to",
                        f"{role_ref.get('kind')} {role_ref.get('name')}",
                    )
                )
        elif kind not in ("ClusterRole", "Role"):
            out.add((kind, ref, "object", "", "", ""))
    return out


def _grant_difference(shipped: str, wanted: str) -> str:
    try:
        have, want = _grants(shipped), _grants(wanted)
    except (yaml.YAMLError, AttributeError, TypeError):
        return "it is not valid YAML of RBAC objects"

    def show(g: Grant) -> str:
        kind, ref, group, resource, verb, name = g
        if group == "subject":
            return f"{kind} {ref}: {resource} {verb} {name}"
        if group == "object":
            return f"{kind} {ref}"
        target = f"{group or 'core'}/{resource}" + ("" if name == "*" else f" named {name}")
        return f"{kind} {ref}: {verb} {target}"

    extra, lacking = sorted(have - want), sorted(want - have)
    parts = []
    if extra:
        parts.append(f"grants {len(extra)} more (e.g. {'; '.join(map(show, extra[:3]))})")
    if lacking:
        parts.append(f"lacks {len(lacking)} (e.g. {'; '.join(map(show, lacking[:3]))})")
    return ", ".join(parts) or "same grants, different text (hand-edited comments or order)"


def _wildcard_grants(env: str, path: Path, shipped: str) -> Iterator[Finding]:
    """A `*` in a deployer rule's groups, resources or verbs grants kinds no render contains (and, on verbs,
    escalate/bind/impersonate): named on its own, since it is the widening that matters."""
    try:
        docs = [d for d in yaml.safe_load_all(shipped) if isinstance(d, dict)]
    except yaml.YAMLError:
        return
    for doc in docs:
        meta = doc.get("metadata") or {}
        for i, rule in enumerate(doc.get("rules") or []):
            wild = [f for f in ("apiGroups", "resources", "verbs", "nonResourceURLs") if "*" in (rule.get(f) or [])]
            if wild:
                yield Finding(
                    "argocd-identity",
                    env,
                    f"{doc.get('kind')} {meta.get('name')}",
                    path.as_posix(),
                    f"rule {i} grants `*` in {', '.join(wild)}: the deployer may touch kinds and verbs no render "
                    "contains (a sync could then create RBAC, webhooks or Argo CD's own objects)",
                )


# AppProject roles (spec.roles): who may act on this project's Applications through Argo CD's API (a JWT token or
# an SSO group), by Casbin policy lines `p, proj:<project>:<role>, <resource>, <action>, <project>/<object>,
# <allow|deny>` (Argo CD docs: user-guide/projects.md, operator-manual/rbac.md). The rule (docs/argocd.md):
ROLE_RESOURCES = ("applications", "logs")  # everything else (exec, applicationsets, repositories, clusters) is out
ROLE_READ = "get"
ROLE_SYNC = "sync"  # non-production only: prod moves by a reviewed merge and a person's manual sync
ROLE_EFFECTS = ("allow", "deny")


def _role_policy_problems(project: str, role: str, policy: str, production: bool, apps: set[str]) -> list[str]:
    """Why one policy line of role `role` of `project` breaks the rule (empty: it does not)."""
    parts = [p.strip() for p in policy.split(",")]
    if len(parts) != 6 or parts[0] != "p":
        return ["is not `p, proj:<project>:<role>, <resource>, <action>, <object>, <allow|deny>` (Argo CD drops it)"]
    _, subject, resource, action, target, effect = parts
    problems = []
    if subject != f"proj:{project}:{role}":
        problems.append(f"names subject {subject!r}; a role's policies must name proj:{project}:{role}")
    if effect not in ROLE_EFFECTS:
        problems.append(f"effect {effect!r} is neither allow nor deny")
    target_project, _, target_app = target.partition("/")
    if target_project != project or not target_app:
        problems.append(f"object {target!r} is not {project}/<application>: a role reaches only its own project")
    elif effect == "allow" and target_app != "*" and target_app not in apps:
        problems.append(f"object {target!r} names no Application of {project} (its Applications: {sorted(apps)})")
    if effect == "deny":
        return problems  # a deny only narrows what others grant
    if resource not in ROLE_RESOURCES:
        problems.append(f"allows resource {resource!r}; project roles may only read applications and logs")
    elif action == ROLE_SYNC and resource == "applications":
        if production:
            problems.append(
                "allows sync in a production project: prod changes by a reviewed merge and a person's manual sync, "
                "never by a token or group role"
            )
    elif action != ROLE_READ:
        problems.append(
            f"allows action {action!r}; the rule permits get (and sync outside production) only: "
            "create/update/delete/override/action/* let a token change or deploy what `make validate` never passed"
        )
    return problems


@repo_check("argocd-project-roles")
def check_project_roles(ctx: RepoContext) -> Iterator[Finding]:
    """AppProject roles grant only get on their own project's Applications and logs, plus sync outside production."""
    docs = load_docs(ctx.root)
    envs = env_settings.load(ctx.root)
    apps_of: dict[str, set[str]] = {}
    envs_of: dict[str, set[str]] = {}
    for app in applications(docs):
        apps_of.setdefault(str(app.spec.get("project")), set()).add(app.name)
    for app, env in env_apps(docs):
        envs_of.setdefault(str(app.spec.get("project")), set()).add(env)
    for name, project in projects(docs).items():
        served = envs_of.get(name, set())
        # A project no environment's Application uses could be pointed at prod by the next commit: judged as prod.
        production = not served or any(env not in envs.names or envs.is_production(env) for env in served)
        where = ", ".join(sorted(served)) or "no environment"
        for i, role in enumerate(project.spec.get("roles") or []):
            role_name = str((role or {}).get("name", f"#{i}"))
            policies = (role or {}).get("policies") or []
            if not isinstance(policies, list):
                yield finding("argocd-project-roles", project, f"role {role_name}: policies is not a list")
                continue
            for policy in policies:
                for problem in _role_policy_problems(
                    name, role_name, str(policy), production, apps_of.get(name, set())
                ):
                    yield finding(
                        "argocd-project-roles",
                        project,
                        f"role {role_name} ({where}{', production' if production else ''}): policy "
                        f"{str(policy)!r} {problem}",
                    )
