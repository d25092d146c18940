"""Argo CD delivery checks: argocd-app.yaml against the renders, sync waves, prune guards, health checks.

Environment checks look at one render (what Argo CD applies, in which wave, what it may prune). Repository checks
read argocd-app.yaml and argocd/*.yaml (see gitops.argocd_sync) and compare them with every render: the
Applications point at paths that render, the AppProject allows exactly what the renders contain, and the
ignoreDifferences rules match what Knative rewrites at runtime.
"""

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops import argocd_health, manifests
from gitops.argocd_sync import (
    APP_FILE,
    BUILTIN_HEALTH,
    IN_CLUSTER,
    ArgoDoc,
    applications,
    is_namespaced,
    load_docs,
    projects,
    references,
    rule_matches,
    rule_paths,
    sources,
    sync_options,
    wave,
    whitelist_matches,
)
from gitops.checks import EnvCheck, EnvContext, Finding, RepoCheck, RepoContext
from gitops.manifests import Obj, ObjKey
from gitops.paths import environments


@dataclass(frozen=True)
class EnvPolicy:
    automated: bool  # dev deploys every push; prod is synced by a person
    destination: dict[str, str]


ENV_POLICY = {
    "dev": EnvPolicy(automated=True, destination={"server": IN_CLUSTER}),
    "prod": EnvPolicy(automated=False, destination={"name": "prod"}),
}
# Environments whose clusters have no LoadBalancer implementation: a LoadBalancer Service there stays Progressing
# (no external IP) and every later sync wave waits forever (components/kourier-nodeport).
NO_LOAD_BALANCER_ENVS = frozenset({"dev"})
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
ARGO = "argocd"


def _finding(check: str, doc: ArgoDoc, message: str, env: str = ARGO) -> Finding:
    return Finding(check, env, doc.ref, doc.path, message)


def _upstream(ctx: EnvContext, obj: Obj) -> bool:
    return ctx.render.origin(obj).startswith(("http://", "https://"))


# --- environment checks --------------------------------------------------------------------------------------


def check_sync_waves(ctx: EnvContext) -> Iterator[Finding]:
    """CRDs before the custom resources of their group; the upstream install before anything of ours; every
    object after what it needs to become Ready (sink, subscriber, dead-letter sink, Broker, config, namespace)."""
    name = "argocd-waves"
    waves: dict[ObjKey, int] = {}
    for obj in ctx.objects:
        try:
            waves[ObjKey.of(obj)] = wave(obj)
        except ValueError:
            yield ctx.finding(name, obj, "argocd.argoproj.io/sync-wave is not an integer")
    crds = [o for o in ctx.objects if o.get("kind") == "CustomResourceDefinition"]
    crd_groups: dict[str, list[Obj]] = {}
    for crd in crds:
        crd_groups.setdefault(manifests.dig(crd, "spec", "group") or "", []).append(crd)
    for obj in ctx.objects:
        key = ObjKey.of(obj)
        for crd in crd_groups.get(key.group, []):
            crd_wave = waves.get(ObjKey.of(crd), 0)
            if crd_wave >= waves.get(key, 0):
                yield ctx.finding(
                    name,
                    obj,
                    f"sync wave {waves.get(key, 0)} is not after CustomResourceDefinition {manifests.meta(crd)['name']} "
                    f"(wave {crd_wave}): every CRD must be Established before a resource of its group is applied",
                )
                break
    upstream = [o for o in ctx.objects if _upstream(ctx, o)]
    if upstream:
        last = max(upstream, key=lambda o: waves.get(ObjKey.of(o), 0))
        last_wave = waves.get(ObjKey.of(last), 0)
        for obj in ctx.objects:
            if not _upstream(ctx, obj) and waves.get(ObjKey.of(obj), 0) <= last_wave:
                yield ctx.finding(
                    name,
                    obj,
                    f"sync wave {waves.get(ObjKey.of(obj), 0)} is not after the upstream install "
                    f"({ObjKey.of(last)} is in wave {last_wave}): Argo CD does not wait for webhook pods within a wave",
                )
    by_key = {ObjKey.of(o): o for o in ctx.objects}
    for obj in ctx.objects:
        key = ObjKey.of(obj)
        needs = [(f, ObjKey(g, k, ns, n)) for f, g, k, ns, n in references(obj)]
        if key.namespace:
            needs.append(("metadata.namespace", ObjKey("", "Namespace", "", key.namespace)))
        for field, needed in needs:
            if needed not in by_key:
                continue
            # A ConfigMap or Namespace in the same wave is fine: Argo CD applies those kinds before custom
            # resources within a wave. A custom resource must be Ready first, which only a wave boundary waits for.
            same_wave_ok = needed.kind in ("ConfigMap", "Namespace")
            mine, theirs = waves.get(key, 0), waves.get(needed, 0)
            if theirs > mine or (theirs == mine and not same_wave_ok):
                yield ctx.finding(
                    name,
                    obj,
                    f"sync wave {mine} is not after {needed} (wave {theirs}), which it needs via {field}: "
                    "Knative reports it Ready=False until that exists and is Ready, so this wave would never "
                    "become healthy",
                )


def check_prune_guards(ctx: EnvContext) -> Iterator[Finding]:
    """Objects whose deletion loses data refuse pruning and cascade deletion (Prune=false|confirm, Delete=...)."""
    broker_configs = {
        ObjKey("", "ConfigMap", ns, n) for o in ctx.objects for f, _g, _k, ns, n in references(o) if f == "spec.config"
    }
    for obj in ctx.objects:
        key = ObjKey.of(obj)
        reason = {
            "CustomResourceDefinition": "deleting a CRD deletes every resource of its kind",
            "Namespace": "deleting a namespace deletes everything in it",
            "Broker": "deleting a Kafka Broker deletes its topic and every buffered event",
        }.get(key.kind)
        if key in broker_configs:
            reason = "a Broker's spec.config points here and is immutable"
        if reason is None:
            continue
        options = sync_options(obj)
        missing = [option for option in ("Prune", "Delete") if options.get(option) not in ("false", "confirm")]
        if missing:
            wanted = ",".join(f"{option}=false" for option in missing)
            yield ctx.finding(
                "argocd-prune-guard",
                obj,
                f"needs argocd.argoproj.io/sync-options {wanted} (or =confirm): {reason}",
            )


def check_no_replace(ctx: EnvContext) -> Iterator[Finding]:
    for obj in ctx.objects:
        options = sync_options(obj)
        for option in ("Replace", "Force"):
            if options.get(option) == "true":
                yield ctx.finding(
                    "argocd-no-replace",
                    obj,
                    f"{option}=true deletes or replaces the live object, wiping what controllers filled in "
                    "(the webhook certificate Secrets ship empty); use a normal apply",
                )


def check_health_gating(ctx: EnvContext) -> Iterator[Finding]:
    """Every custom resource of ours has a health check, or the waves after it would not wait for it."""
    custom = {(c.group, c.kind) for c in argocd_health.discover(ctx.root)} | BUILTIN_HEALTH
    crd_kinds = {
        (manifests.dig(c, "spec", "group"), manifests.dig(c, "spec", "names", "kind"))
        for c in ctx.objects
        if c.get("kind") == "CustomResourceDefinition"
    }
    seen: set[tuple[str, str]] = set()
    for obj in ctx.objects:
        key = ObjKey.of(obj)
        gk = (key.group, key.kind)
        if _upstream(ctx, obj) or gk not in crd_kinds or gk in custom or gk in seen:
            continue
        seen.add(gk)
        yield ctx.finding(
            "argocd-health",
            obj,
            f"Argo CD has no health check for {key.group}/{key.kind}: it counts as healthy once applied, so "
            f"later sync waves do not wait for it (add argocd/resource_customizations/{key.group}/{key.kind}/health.lua)",
        )


def check_no_load_balancer(ctx: EnvContext) -> Iterator[Finding]:
    if ctx.env not in NO_LOAD_BALANCER_ENVS:
        return
    for obj in ctx.objects:
        if (
            obj.get("kind") == "Service"
            and manifests.group_of(obj) == ""
            and manifests.dig(obj, "spec", "type") == "LoadBalancer"
        ):
            yield ctx.finding(
                "argocd-load-balancer",
                obj,
                f"type LoadBalancer in {ctx.env}, whose cluster has no load balancer: it stays Progressing and "
                "blocks every later sync wave (use components/kourier-nodeport)",
            )


# --- repository checks ----------------------------------------------------------------------------------------


def _env_apps(docs: list[ArgoDoc]) -> Iterator[tuple[ArgoDoc, str]]:
    for app in applications(docs):
        for source in sources(app):
            path = str(source.get("path", "")).strip("/")
            if path.startswith("overlays/"):
                yield app, path.split("/", 1)[1]


def check_applications(ctx: RepoContext) -> Iterator[Finding]:
    """Sources point at paths that exist and render; one repo URL and one revision everywhere; one Application
    per environment; projects exist; destinations are the documented ones."""
    name = "argocd-app"
    docs = load_docs(ctx.root)
    apps = applications(docs)
    if not apps:
        yield Finding(name, ARGO, "-", APP_FILE, "no Argo CD Application found")
        return
    all_projects = projects(docs)
    repo_urls = {s.get("repoURL") for a in apps for s in sources(a)}
    repo_urls |= {url for p in all_projects.values() for url in p.spec.get("sourceRepos") or []}
    revisions = {s.get("targetRevision") for a in apps for s in sources(a)}
    for app in apps:
        if not sources(app):
            yield _finding(name, app, "has no source")
        for source in sources(app):
            if len(repo_urls) > 1:
                yield _finding(
                    name,
                    app,
                    f"repoURL {source.get('repoURL')!r}: the repo URLs and sourceRepos differ ({sorted(map(str, repo_urls))})",
                )
            if len(revisions) > 1:
                yield _finding(
                    name,
                    app,
                    f"targetRevision {source.get('targetRevision')!r}: Applications track different revisions ({sorted(map(str, revisions))})",
                )
            path = str(source.get("path", ""))
            if not (ctx.root / path).is_dir():
                yield _finding(name, app, f"source path {path!r} does not exist in the repository")
            include = manifests.dig(source, "directory", "include")
            if include and not list((ctx.root / path).glob(include)):
                yield _finding(name, app, f"source {path!r} includes {include!r}, which matches no file")
        if app.spec.get("project") not in all_projects:
            yield _finding(name, app, f"project {app.spec.get('project')!r} is not an AppProject in {APP_FILE}")
    per_env: dict[str, list[ArgoDoc]] = {}
    known = environments(ctx.root)
    for app, env in _env_apps(docs):
        per_env.setdefault(env, []).append(app)
        if env not in known:
            yield _finding(name, app, f"source path overlays/{env} is not an environment (known: {', '.join(known)})")
        policy = ENV_POLICY.get(env)
        destination = {k: v for k, v in (app.spec.get("destination") or {}).items() if k in ("server", "name")}
        if policy and destination != policy.destination:
            yield _finding(name, app, f"destination {destination} for {env}; expected {policy.destination}", env)
    for env in known:
        if len(per_env.get(env, [])) != 1:
            yield Finding(
                name,
                env,
                "-",
                APP_FILE,
                f"{len(per_env.get(env, []))} Applications deploy overlays/{env}; expected exactly one",
            )


def check_sync_policy(ctx: RepoContext) -> Iterator[Finding]:
    """retry with backoff everywhere; dev automated with prune and self-heal, prod manual; no Replace/Force;
    RespectIgnoreDifferences wherever there are ignoreDifferences."""
    name = "argocd-sync-policy"
    docs = load_docs(ctx.root)
    envs = {app.name: env for app, env in _env_apps(docs)}
    for app in applications(docs):
        policy = app.spec.get("syncPolicy") or {}
        retry = policy.get("retry") or {}
        backoff = retry.get("backoff") or {}
        if (
            not retry
            or retry.get("limit", 0) == 0
            or not all(backoff.get(k) for k in ("duration", "factor", "maxDuration"))
        ):
            yield _finding(
                name,
                app,
                "syncPolicy.retry needs a limit and backoff {duration, factor, maxDuration}: "
                "automated sync never retries a failed sync of the same commit by itself",
            )
        options = set(policy.get("syncOptions") or [])
        for bad in ("Replace=true", "Force=true"):
            if bad in options:
                yield _finding(
                    name,
                    app,
                    f"syncOptions {bad} would replace the upstream install and wipe the webhook certificate Secrets",
                )
        if app.spec.get("ignoreDifferences") and "RespectIgnoreDifferences=true" not in options:
            yield _finding(
                name,
                app,
                "ignoreDifferences without syncOptions RespectIgnoreDifferences=true: every sync writes "
                "those fields back and Knative rewrites them (endless churn)",
            )
        env = envs.get(app.name)
        if env not in ENV_POLICY:
            continue
        automated = policy.get("automated")
        enabled = automated is not None and automated.get("enabled", True) is not False
        if ENV_POLICY[env].automated and not (enabled and automated.get("prune") and automated.get("selfHeal")):
            yield _finding(name, app, f"{env} must sync automatically with prune and selfHeal", env)
        if not ENV_POLICY[env].automated and enabled:
            yield _finding(name, app, f"{env} is synced deliberately by a person: remove syncPolicy.automated", env)


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
    if any(url == "*" for url in spec.get("sourceRepos") or []):
        yield _finding(name, project, "sourceRepos '*' allows any repository; list this repository only", env)
    cluster_list = spec.get("clusterResourceWhitelist") or []
    namespaced_list = spec.get("namespaceResourceWhitelist")
    if namespaced_list is None:
        yield _finding(
            name,
            project,
            "no namespaceResourceWhitelist: every namespaced kind is allowed; list the rendered ones",
            env,
        )
        namespaced_list = []
    for entry in [*cluster_list, *namespaced_list]:
        if "*" in (entry.get("group"), entry.get("kind")) or entry.get("name") == "*":
            yield _finding(name, project, f"whitelist entry {entry} uses '*'; list the kinds the render contains", env)
    for entry in cluster_list if complete else []:
        if not any(not is_namespaced(o) and whitelist_matches(entry, o) for _e, _d, o in deployed):
            yield _finding(
                name,
                project,
                f"clusterResourceWhitelist entry {entry} matches nothing rendered: broader than needed",
                env,
            )
    for entry in namespaced_list if complete else []:
        if not any(is_namespaced(o) and whitelist_matches({**entry, "name": None}, o) for _e, _d, o in deployed):
            yield _finding(
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
                yield _finding(
                    name,
                    project,
                    f"{obj_env} renders {key} but namespaceResourceWhitelist does not allow {key.group or 'core'}/{key.kind}",
                    obj_env,
                )
            if not _destination_allowed(project, destination, key.namespace):
                yield _finding(
                    name,
                    project,
                    f"{obj_env} renders {key} but no destination allows namespace {key.namespace} on {destination}",
                    obj_env,
                )
            for i, allowed in enumerate(spec.get("destinations") or []):
                if _destination_matches(allowed, destination, key.namespace):
                    used_destinations.add(i)
        elif not any(whitelist_matches(e, obj) for e in cluster_list):
            yield _finding(
                name,
                project,
                f"{obj_env} renders cluster-scoped {key} but clusterResourceWhitelist does not allow it",
                obj_env,
            )
    for i, allowed in enumerate(spec.get("destinations") or []):
        if "*" in (allowed.get("server"), allowed.get("name"), allowed.get("namespace")):
            yield _finding(name, project, f"destination {allowed} uses '*'; list the clusters and namespaces", env)
        elif complete and i not in used_destinations:
            yield _finding(
                name, project, f"destination {allowed} is used by no rendered object: broader than needed", env
            )


def check_project_scope(ctx: RepoContext) -> Iterator[Finding]:
    """Each AppProject allows exactly the repo, destinations and kinds its Applications' renders contain."""
    docs = load_docs(ctx.root)
    env_apps = list(_env_apps(docs))
    by_project: dict[str, list[tuple[str, dict[str, Any], Obj]]] = {}
    incomplete: set[str] = set()
    for app, env in env_apps:
        if env not in ctx.renders:
            incomplete.add(str(app.spec.get("project")))
            continue
        destination = app.spec.get("destination") or {}
        by_project.setdefault(str(app.spec.get("project")), []).extend(
            (env, destination, obj) for obj in ctx.renders[env].objects
        )
        project = _project_for(docs, app)
        if (
            project
            and destination.get("namespace")
            and not _destination_allowed(project, destination, destination["namespace"])
        ):
            yield _finding(
                "argocd-project", app, f"destination {destination} is not allowed by project {project.name}", env
            )
    for project_name, deployed in by_project.items():
        project = projects(docs).get(project_name)
        if project is not None:
            yield from _scope_findings(project, deployed, ARGO, complete=project_name not in incomplete)
    yield from _self_delivery(ctx.root, docs)


def _self_delivery(root: Path, docs: list[ArgoDoc]) -> Iterator[Finding]:
    """argocd-app.yaml and argocd/*.yaml are themselves delivered by an Application whose project allows them."""
    delivered: dict[str, ArgoDoc] = {}
    for app in applications(docs):
        for source in sources(app):
            path = str(source.get("path", ""))
            if path.startswith("overlays/"):
                continue
            include = manifests.dig(source, "directory", "include") or "*.yaml"
            for file in sorted((root / path).glob(include)):
                delivered[str(file.resolve().relative_to(root.resolve()))] = app
    for doc in docs:
        app = delivered.get(doc.path)
        if app is None:
            yield _finding(
                "argocd-self", doc, f"{doc.path} is delivered by no Application: a git push would not update it"
            )
            continue
        project = _project_for(docs, app)
        if project is None:
            continue
        destination = app.spec.get("destination") or {}
        namespace = manifests.meta(doc.obj).get("namespace") or ""
        allowed_kind = any(
            whitelist_matches({**e, "name": None}, doc.obj)
            for e in project.spec.get("namespaceResourceWhitelist") or []
        )
        if not allowed_kind or not _destination_allowed(project, destination, namespace):
            yield _finding(
                "argocd-self",
                doc,
                f"delivered by {app.name}, whose project {project.name} does not allow {doc.kind} in namespace {namespace!r}",
            )


def _coverage(
    app: ArgoDoc, env: str, objects: Iterable[Obj], wanted: frozenset[str], what: str, select: Any
) -> Iterator[Finding]:
    rules = app.spec.get("ignoreDifferences") or []
    for obj in objects:
        if not select(obj):
            continue
        if not any(rule_matches(r, obj) and (wanted & rule_paths(r)) for r in rules):
            yield _finding(
                "argocd-ignore-differences",
                app,
                f"{env}: nothing ignores {what} of {ObjKey.of(obj)}, which Knative rewrites at runtime (endless OutOfSync/self-heal fight)",
                env,
            )


def check_ignore_differences(ctx: RepoContext) -> Iterator[Finding]:
    """Every ignore rule matches a rendered object; every field Knative rewrites is ignored (or stated in git)."""
    name = "argocd-ignore-differences"
    for app, env in _env_apps(load_docs(ctx.root)):
        render = ctx.renders.get(env)
        if render is None:
            continue
        objects = render.objects
        rules = app.spec.get("ignoreDifferences") or []
        for rule in rules:
            if not any(rule_matches(rule, o) for o in objects):
                yield _finding(
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
                    yield _finding(
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


def check_health_customizations(ctx: RepoContext) -> Iterator[Finding]:
    """The shipped argocd-cm carries exactly the health.lua files, under their exact keys."""
    for problem in argocd_health.drift(ctx.root):
        yield Finding("argocd-health", ARGO, "ConfigMap argocd/argocd-cm", str(argocd_health.ARGOCD_CM), problem)


def check_health_tests(ctx: RepoContext) -> Iterator[Finding]:
    """Every health_test.yaml case gives its expected status and message in Lua 5.1 (also run by pytest)."""
    for health_check in argocd_health.discover(ctx.root):
        for case in argocd_health.cases(health_check):
            where = str((health_check.directory / "health_test.yaml").relative_to(ctx.root))
            try:
                got = argocd_health.run(health_check.script, case.fixture)
            except Exception as error:  # a Lua error is a finding, not a crash of make validate
                yield Finding("argocd-health", ARGO, str(case), where, f"health.lua failed: {error}")
                continue
            if (got.status, got.message) != (case.status, case.message):
                yield Finding(
                    "argocd-health",
                    ARGO,
                    str(case),
                    where,
                    f"expected {case.status} {case.message!r}, health.lua says {got.status} {got.message!r}",
                )


ENV_CHECKS: list[EnvCheck] = [
    check_sync_waves,
    check_prune_guards,
    check_no_replace,
    check_health_gating,
    check_no_load_balancer,
]
REPO_CHECKS: list[RepoCheck] = [
    check_applications,
    check_sync_policy,
    check_project_scope,
    check_ignore_differences,
    check_health_customizations,
    check_health_tests,
]
