"""Argo CD repository checks on the Applications: sources, revisions, environments, sync policy, health checks."""

from collections.abc import Iterator

from gitops.core import environments
from gitops.delivery.hydrate import DEPLOY_BRANCH_PREFIX, deploy_branch
from gitops.model import argocd_health
from gitops.model.argocd import APP_FILE, ArgoDoc, applications, load_docs, projects, sources
from gitops.validate.findings import Finding, RepoContext
from gitops.validate.registry import repo_check

ARGO = "argocd"  # the `env` of findings about argocd-app.yaml / argocd/*.yaml themselves


def finding(check: str, doc: ArgoDoc, message: str, env: str = ARGO) -> Finding:
    return Finding(check, env, doc.ref, doc.path, message)


def source_env(source: dict) -> str | None:
    """The environment a source deploys: its deploy/<env> branch (hydrated), or an overlays/<env> path (which
    check_no_sync_time_kustomize rejects, but it still names the environment)."""
    revision = str(source.get("targetRevision", ""))
    if revision.startswith(DEPLOY_BRANCH_PREFIX):
        return revision.removeprefix(DEPLOY_BRANCH_PREFIX)
    path = str(source.get("path", "")).strip("/")
    return path.split("/", 1)[1] if path.startswith("overlays/") else None


def env_apps(docs: list[ArgoDoc]) -> Iterator[tuple[ArgoDoc, str]]:
    for app in applications(docs):
        for source in sources(app):
            env = source_env(source)
            if env is not None:
                yield app, env


@repo_check("argocd-app")
def check_applications(ctx: RepoContext) -> Iterator[Finding]:
    """Applications point at paths that exist and render, with one repo URL, one revision and one Application per env.

    Sources point at paths that exist and render; one repo URL and one revision everywhere; one Application
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
    for app in apps:
        if not sources(app):
            yield finding(name, app, "has no source")
        for source in sources(app):
            if len(repo_urls) > 1:
                yield finding(
                    name,
                    app,
                    f"repoURL {source.get('repoURL')!r}: the repo URLs and sourceRepos differ ({sorted(map(str, repo_urls))})",
                )
            env = source_env(source)
            path = str(source.get("path", ""))
            if env is not None and source.get("targetRevision") != deploy_branch(env):
                yield finding(
                    name,
                    app,
                    f"targetRevision {source.get('targetRevision')!r}: the {env} Application must sync "
                    f"{deploy_branch(env)!r}, where CI commits the hydrated files `make validate` passed",
                    env,
                )
            elif env is not None and path.strip("/") not in ("", "."):
                yield finding(name, app, f"source path {path!r}: the hydrated files sit at the branch root ('.')", env)
            elif env is None and not (ctx.root / path).is_dir():
                yield finding(name, app, f"source path {path!r} does not exist in the repository")
        if app.spec.get("project") not in all_projects:
            yield finding(name, app, f"project {app.spec.get('project')!r} is not an AppProject in {APP_FILE}")
    per_env: dict[str, list[ArgoDoc]] = {}
    project_envs: dict[str, set[str]] = {}
    facts = environments.load(ctx.root)
    known = facts.names
    for app, env in env_apps(docs):
        per_env.setdefault(env, []).append(app)
        project_envs.setdefault(str(app.spec.get("project")), set()).add(env)
        if env not in known:
            yield finding(name, app, f"environment {env!r} has no overlay (known: {', '.join(known)})")
        if env not in known:
            continue
        wanted = facts.get(env).destination
        destination = {k: v for k, v in (app.spec.get("destination") or {}).items() if k in ("server", "name")}
        if destination != wanted:
            yield finding(name, app, f"destination {destination} for {env}; expected {wanted} (environments.yaml)", env)
    for project, envs in sorted(project_envs.items()):
        if len(envs) > 1:
            yield Finding(
                name,
                ARGO,
                f"AppProject argocd/{project}",
                APP_FILE,
                f"serves environments {', '.join(sorted(envs))}: one AppProject per environment, so dev's "
                "permissions can never reach prod's cluster",
            )
    for env in known:
        if len(per_env.get(env, [])) != 1:
            yield Finding(
                name,
                env,
                "-",
                APP_FILE,
                f"{len(per_env.get(env, []))} Applications deploy overlays/{env}; expected exactly one",
            )


@repo_check("argocd-sync-policy")
def check_sync_policy(ctx: RepoContext) -> Iterator[Finding]:
    """Sync policies retry with backoff; automated sync (prune, self-heal) only where environments.yaml says so.

    retry with backoff everywhere; dev automated with prune and self-heal, prod manual; no Replace/Force;
    RespectIgnoreDifferences wherever there are ignoreDifferences."""
    name = "argocd-sync-policy"
    docs = load_docs(ctx.root)
    envs = {app.name: env for app, env in env_apps(docs)}
    facts = environments.load(ctx.root)
    for app in applications(docs):
        policy = app.spec.get("syncPolicy") or {}
        retry = policy.get("retry") or {}
        backoff = retry.get("backoff") or {}
        if (
            not retry
            or retry.get("limit", 0) == 0
            or not all(backoff.get(k) for k in ("duration", "factor", "maxDuration"))
        ):
            yield finding(
                name,
                app,
                "syncPolicy.retry needs a limit and backoff {duration, factor, maxDuration}: "
                "automated sync never retries a failed sync of the same commit by itself",
            )
        options = set(policy.get("syncOptions") or [])
        for bad in ("Replace=true", "Force=true"):
            if bad in options:
                yield finding(
                    name,
                    app,
                    f"syncOptions {bad} would replace the upstream install and wipe the webhook certificate Secrets",
                )
        if app.spec.get("ignoreDifferences") and "RespectIgnoreDifferences=true" not in options:
            yield finding(
                name,
                app,
                "ignoreDifferences without syncOptions RespectIgnoreDifferences=true: every sync writes "
                "those fields back and Knative rewrites them (endless churn)",
            )
        env = envs.get(app.name)
        if env not in facts.by_name:
            continue
        automated = policy.get("automated")
        enabled = automated is not None and automated.get("enabled", True) is not False
        wants_automated = facts.get(env).automated_sync
        if wants_automated and not (enabled and automated.get("prune") and automated.get("selfHeal")):
            yield finding(name, app, f"{env} must sync automatically with prune and selfHeal", env)
        if not wants_automated and enabled:
            yield finding(name, app, f"{env} is synced deliberately by a person: remove syncPolicy.automated", env)


@repo_check("argocd-health")
def check_health_customizations(ctx: RepoContext) -> Iterator[Finding]:
    """The shipped argocd-cm carries exactly the health.lua files, under their exact keys."""
    for problem in argocd_health.drift(ctx.root):
        yield Finding("argocd-health", ARGO, "ConfigMap argocd/argocd-cm", str(argocd_health.ARGOCD_CM), problem)


@repo_check("argocd-health")
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
