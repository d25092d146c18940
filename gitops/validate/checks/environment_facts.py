"""The facts that make an environment production agree with each other, so none of them can weaken it alone.

`production: true` in environments.yaml switches on every production check. Flipped off on its own, the
environment would still be deployed as production while the gate judged it as a development cluster. So the other
facts that say "production" are checked against the flag, in both directions:
- manual sync (`automated_sync: false`): a production environment is synced by a person after review, and an
  environment synced by a person is a production one (otherwise the flag is what changed);
- its destination: shared with no other environment, so another environment's sync never writes to it;
- its AppProject: used by no non-production Application, and no non-production project may reach the production
  destination (a wildcard server, or the production cluster's name), so dev's project cannot deploy to prod.
`make diff` marks a change to any of these facts that weakens a production environment DANGEROUS
(gitops/diff/report.py).
"""

import fnmatch
from collections.abc import Iterator

from gitops.core import environments
from gitops.core.environments import Environment
from gitops.model.argocd import ArgoDoc, load_docs, projects
from gitops.validate.checks.argocd_apps import env_apps, finding
from gitops.validate.findings import Finding, RepoContext
from gitops.validate.registry import repo_check

CHECK = "environment-facts"
FILE = environments.FILE
PATTERN_CHARS = "*?["


def _fact(env: str, message: str) -> Finding:
    return Finding(CHECK, env, f"environment {env}", FILE, message)


def reaches(entry: dict, destination: dict[str, str]) -> bool:
    """Whether an AppProject destination entry may deploy to an environment's destination (any namespace). A server
    pattern may match a cluster registered by name, whose URL the repository does not know."""
    server, name = entry.get("server"), entry.get("name")
    if "server" in destination:
        return (server is not None and fnmatch.fnmatchcase(destination["server"], str(server))) or (
            name is not None and any(c in str(name) for c in PATTERN_CHARS) and str(name).strip("*") == ""
        )
    return (name is not None and fnmatch.fnmatchcase(destination["name"], str(name))) or (
        server is not None and any(c in str(server) for c in PATTERN_CHARS)
    )


def _project_findings(envs: dict[str, Environment], docs: list[ArgoDoc]) -> Iterator[Finding]:
    by_project: dict[str, set[str]] = {}
    for app, env in env_apps(docs):
        if env in envs:
            by_project.setdefault(str(app.spec.get("project")), set()).add(env)
    known = projects(docs)
    for name, used_by in sorted(by_project.items()):
        production = sorted(e for e in used_by if envs[e].production)
        other = sorted(e for e in used_by if not envs[e].production)
        project = known.get(name)
        if production and other:
            yield finding(
                CHECK,
                project or next(a for a, e in env_apps(docs) if str(a.spec.get("project")) == name),
                f"project {name} deploys production {', '.join(production)} and non-production {', '.join(other)}: "
                "whoever may sync the one may sync the other; give each production environment its own project",
                production[0],
            )
        if project is None or production:
            continue
        for prod in (e for e in envs.values() if e.production):
            for entry in project.spec.get("destinations") or []:
                if reaches(entry, prod.destination):
                    yield finding(
                        CHECK,
                        project,
                        f"project {name} of {', '.join(sorted(used_by))} allows destination {entry}, which reaches "
                        f"production {prod.name}'s cluster {prod.destination}: its Applications could deploy there "
                        "unreviewed; name only its own cluster",
                        prod.name,
                    )


@repo_check(CHECK)
def check_production_facts(ctx: RepoContext) -> Iterator[Finding]:
    """A production environment is synced by hand, has its own destination and AppProject, and only it is."""
    envs = environments.load(ctx.root).by_name
    for env in envs.values():
        if env.production and env.automated_sync:
            yield _fact(
                env.name,
                "production: true with automated_sync: true: every push would reach it without the review a "
                "production sync needs; set automated_sync: false",
            )
        if not env.production and not env.automated_sync:
            yield _fact(
                env.name,
                "automated_sync: false (synced by a person, as production is) but production: false, which turns "
                "off every production check: if this environment is production, set production: true; if not, let "
                "Argo CD sync it (automated_sync: true)",
            )
        if env.production:
            for other in envs.values():
                if other.name != env.name and other.destination == env.destination:
                    yield _fact(
                        env.name,
                        f"destination {env.destination} is also {other.name}'s: {other.name}'s syncs would write to "
                        "the production cluster; give each environment its own destination",
                    )
    yield from _project_findings(envs, load_docs(ctx.root))
