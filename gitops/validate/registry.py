"""The catalogue of checks: every check registers itself with an id and a one-line docstring.

The id is what a finding prints between <...> and what a waiver names, so a person can look it up in
docs/checks.md (generated from this catalogue by `gitops validate --list --markdown`). Several rules may share an
id when they guard one fact from different sides (e.g. `sender-identity`: the EventPolicy and the audiences).
A check yields only findings of its own id; validate stops with a bug report if one does not, so the catalogue
cannot drift from what the checks print.
"""

import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

from gitops.validate.findings import EnvContext, Finding, RepoContext

Scope = Literal["env", "repo"]
F = TypeVar("F", bound=Callable[..., Iterable[Finding]])

# The check modules under gitops/validate/checks, in the order validate runs them.
CHECK_MODULES = (
    "eventing",
    "dead_letters",
    "alerts",
    "serving",
    "app_settings",
    "policy",
    "network_policy",
    "data_tables",
    "record_size",
    "identity",
    "kafka_credentials",
    "availability",
    # Promises that span two files (issue 32): the render against the app's own settings, environments.yaml
    # and the data plane's client config.
    "windows",
    "ordering",
    "offsets",
    "durability",
    "capacity",
    "shutdown",
    "protocols",
    "pod_security",
    "upstream_install",
    "argocd",
    "release_pins",
    "argocd_apps",
    "argocd_project",
    "argocd_access",
    "environment_facts",
)

# Findings that come from validate's stages rather than from a registered check: id -> what it means.
STAGES = {
    "render": "the environment could not be rendered (kustomize, the lock or the mirror said no)",
    "hydrated": "`--hydrated` files differ from a fresh render of this tree, or cannot be read",
    "provenance": "a `--hydrated` directory's provenance.txt does not match its files (digest), this tree's commit or "
    "its releases lock, or the directory holds a file hydrate does not write",
    "schema": "kubeconform -strict refused an object against the Kubernetes or CRD schema",
    "upstream-admission": "Knative's own admission webhooks (hack/knative-admission) refused an object",
    "pod-template": "Kubernetes' own validation (k8s.io/kubernetes, the API server's create path, in the same Go stage) "
    "refused a pod template: a workload's, or the Deployment serving builds for a Knative Service's Revision",
    "waivers": "a waiver in validation-waivers.yaml is stale: it matches no finding",
}


@dataclass(frozen=True)
class Check:
    id: str
    scope: Scope
    func: Callable[..., Iterable[Finding]]

    @property
    def summary(self) -> str:
        """The first line of the check's docstring: the one-line description the catalogue prints."""
        return (inspect.getdoc(self.func) or "").partition("\n")[0]

    @property
    def where(self) -> str:
        return f"{self.func.__module__}.{self.func.__name__}"

    def run(self, ctx: EnvContext | RepoContext) -> list[Finding]:
        found = list(self.func(ctx))
        for finding in found:
            if finding.check != self.id:
                raise RuntimeError(f"{self.where} is registered as {self.id!r} but reported {finding.check!r}")
        return found


_registered: list[Check] = []


def _register(check_id: str, scope: Scope) -> Callable[[F], F]:
    def register(func: F) -> F:
        if not (func.__doc__ or "").strip():
            raise TypeError(f"check {func.__module__}.{func.__name__} needs a one-line docstring")
        _registered.append(Check(check_id, scope, func))
        return func

    return register


def env_check(check_id: str) -> Callable[[F], F]:
    """Register a check that gets one rendered environment at a time."""
    return _register(check_id, "env")


def repo_check(check_id: str) -> Callable[[F], F]:
    """Register a check that gets every environment at once (facts that span them, such as the Argo CD files)."""
    return _register(check_id, "repo")


def catalogue() -> list[Check]:
    """Every registered check, in the order validate runs them."""
    for module in CHECK_MODULES:
        importlib.import_module(f"gitops.validate.checks.{module}")
    order = {f"gitops.validate.checks.{m}": i for i, m in enumerate(CHECK_MODULES)}
    return sorted(_registered, key=lambda c: order.get(c.func.__module__, len(order)))


def registered(func: Callable[..., Iterable[Finding]]) -> Check:
    """The catalogue entry of a check function (tests run checks through it, so a wrong id fails there too)."""
    for check in catalogue():
        if check.func is func:
            return check
    raise LookupError(f"{func.__module__}.{func.__name__} is not a registered check")


def finding_order(finding: Finding) -> tuple[int, str, str]:
    """Root causes first: validate's stages in their order (a render that failed, then schemas, then Knative's
    webhooks), then the checks in the order they run, the Argo CD ones last. A misspelt kind (`kind: Triger`) is
    first a schema miss; that the deployer RBAC or the AppProject no longer cover it follows from it (and
    regenerating the RBAC first would bake the typo in), so those findings come after it."""
    stages = [s for s in STAGES if s != "waivers"]
    ids = [*stages, *dict.fromkeys(c.id for c in catalogue()), "waivers"]
    rank = ids.index(finding.check) if finding.check in ids else len(ids)
    return rank, finding.env, finding.obj


def env_checks() -> list[Check]:
    return [c for c in catalogue() if c.scope == "env"]


def repo_checks() -> list[Check]:
    return [c for c in catalogue() if c.scope == "repo"]


def format_catalogue(markdown: bool = False) -> str:
    """`gitops validate --list`: the stages, then one line per registered check (id, scope, what it guards).

    With markdown, the page docs/checks.md is generated from (a test fails when that page is stale)."""
    checks = catalogue()
    if not markdown:
        width = max(len(c.id) for c in checks)
        lines = [f"{stage:<{width}}  stage  {summary}" for stage, summary in STAGES.items()]
        lines += [f"{c.id:<{width}}  {c.scope:<5}  {c.summary}" for c in checks]
        return "\n".join(lines) + "\n"
    lines = [
        "# The checks `make validate` runs",
        "",
        "GENERATED by `.venv/bin/gitops validate --list --markdown > docs/checks.md` from the registered checks",
        "(gitops/validate/registry.py); tests/validate/test_registry.py fails when this page is stale. A finding prints",
        "its id between `<...>`; a waiver in validation-waivers.yaml names it as `check:`.",
        "",
        "## Stages",
        "",
        "Every environment is rendered, schema-checked and put through Knative's admission webhooks before the checks",
        "below run ([architecture](architecture.md)).",
        "",
        "| id | what a finding means |",
        "|---|---|",
        *(f"| `{stage}` | {summary} |" for stage, summary in STAGES.items()),
        "",
        "## Checks",
        "",
        "`env` checks see one rendered environment at a time; `repo` checks see every environment and the Argo CD",
        "files at once. Rules that guard one fact from different sides share an id.",
        "",
        "| id | scope | rule | code |",
        "|---|---|---|---|",
    ]
    for c in checks:
        path = c.func.__module__.replace(".", "/") + ".py"
        lines.append(f"| `{c.id}` | {c.scope} | {c.summary} | [`{c.func.__name__}`](../{path}) |")
    judgments = [(m, j) for m in dict.fromkeys(c.func.__module__ for c in checks) if (j := _judgment(m))]
    if judgments:
        lines += [
            "",
            "## Judgments",
            "",
            "Where a rule is a judgment rather than a fact of Knative or Kafka, its module states the rule and why, and",
            "an environment's facts in environments.yaml choose where it holds.",
            "",
        ]
        lines += [f"- {j} ([`{m.rsplit('.', 1)[-1]}`](../{m.replace('.', '/')}.py))" for m, j in judgments]
    return "\n".join(lines) + "\n"


def _judgment(module: str) -> str | None:
    """A check module's JUDGMENT: the rule it holds where a rule is a judgment, and why (docs/checks.md prints it)."""
    value = getattr(importlib.import_module(module), "JUDGMENT", None)
    return value if isinstance(value, str) else None
