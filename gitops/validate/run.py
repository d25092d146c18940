"""`make validate`: render every environment, check it against schemas, then against what schemas cannot see.

With `--hydrated ENV=DIR` the checks run on the files `make hydrate` wrote for ENV (the bytes CI commits to the
deploy branch and Argo CD syncs), after proving they hold exactly the objects of a fresh render.
"""

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gitops.core import manifests, releases
from gitops.core.errors import UserError
from gitops.core.field_diff import field_changes, show
from gitops.core.paths import REPO_ROOT, argocd_crds_dir, environments, upstream_source_dir
from gitops.core.progress import progress
from gitops.core.render import MirrorMissing, RenderError, RenderResult, render_env, report_omitted, stand_in_note
from gitops.delivery import deployer_rbac, hydrate
from gitops.model.argocd import argocd_paths
from gitops.model.retry_budget import retry_budgets
from gitops.validate import admission, kubeconform, schemas, waivers
from gitops.validate.findings import EnvContext, Finding, RepoContext
from gitops.validate.registry import env_checks, finding_order, format_catalogue, repo_checks


@dataclass
class Report:
    renders: dict[str, RenderResult] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    waived: list[tuple[Finding, waivers.Waiver]] = field(default_factory=list)
    warnings: list[admission.AdmissionWarning] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def argocd_files(root: Path) -> list[Path]:
    """Argo CD manifests we ship: the bootstrap, the top level of argocd/ (not health-check fixtures) and the
    deployer RBAC applied to each cluster."""
    return argocd_paths(root) + sorted((root / deployer_rbac.DEPLOYERS_DIR).glob("*.yaml"))


def schema_findings(env: str, render: RenderResult | None, stream: str, crd_dir: Path, filename: str) -> list[Finding]:
    found = []
    named: set[int] = set()
    for result in kubeconform.run(stream, crd_dir, filename):
        obj = _schema_subject(render, result, crd_dir, named) if render is not None else None
        if obj is not None:
            named.add(id(obj))
        ref = str(manifests.ObjKey.of(obj)) if obj else f"{result.kind} {result.name}"
        origin = render.origin(obj) if (render and obj) else filename
        found.append(Finding("schema", env, ref, origin, f"{result.status.removeprefix('status')}: {result.msg}"))
    return found


def _schema_subject(
    render: RenderResult, result: kubeconform.SchemaResult, crd_dir: Path, named: set[int]
) -> manifests.Obj | None:
    """The rendered object a kubeconform result is about. Its report names apiVersion, kind and name but not the
    namespace, and Serving and Eventing both ship a ConfigMap config-logging (and more alike): when several objects
    fit, kubeconform is asked about each alone, so the finding names the namespace and file that are wrong."""
    candidates = [
        o
        for o in render.objects
        if o.get("kind") == result.kind
        and manifests.meta(o).get("name") == result.name
        and o.get("apiVersion") == result.version
        and id(o) not in named
    ]
    if len(candidates) > 1:
        candidates = [o for o in candidates if kubeconform.run(yaml.safe_dump(o), crd_dir)] or candidates
    return candidates[0] if candidates else None


def _render(root: Path, env: str, hydrated: Path | None = None) -> RenderResult | list[Finding]:
    """A render (or its hydrated files), or findings saying why not (a missing mirror stops everything)."""
    try:
        render = render_env(env, root)
    except MirrorMissing:
        raise
    except (RenderError, releases.DigestMismatch) as error:
        message = f"{error.what}; {error.fix}" if error.fix else error.what
        return [Finding("render", env, "-", error.where or f"overlays/{env}", message)]
    return render if hydrated is None else _hydrated_render(render, hydrated, root)


def _edited(fresh: manifests.Obj, hydrated: manifests.Obj, shown: int = 5) -> str:
    """What a hand edit changed, field by field (fresh render → hydrated file): `spec.delivery.retry: 2 → 5`."""
    changes = field_changes(fresh, hydrated)
    fields = "; ".join(f"{c.path}: {show(c.old)} → {show(c.new)}" for c in changes[:shown])
    more = f"; and {len(changes) - shown} more" if len(changes) > shown else ""
    return f"differs from a fresh render of this tree: {fields}{more} (re-run `make hydrate`, never edit these files)"


def _hydrated_render(render: RenderResult, directory: Path, root: Path = REPO_ROOT) -> RenderResult | list[Finding]:
    """The hydrated files as a RenderResult (origins from the fresh render), or why they are not that render:
    their provenance (digest, source commit, lock) first, then object by object against the fresh render."""
    env = render.env
    try:
        text = hydrate.load_hydrated(directory)
    except hydrate.HydrateError as error:
        return [Finding("hydrated", env, "-", str(directory), str(error))]
    tampered = [
        Finding("provenance", env, name, str(directory), message)
        for name, message in hydrate.provenance_problems(directory, env, root)
    ]
    objects = manifests.load_stream(text)
    fresh = {manifests.ObjKey.of(o): o for o in render.objects}
    found = {manifests.ObjKey.of(o): o for o in objects}
    problems = [
        Finding("hydrated", env, str(key), where, message)
        for key, where, message in [
            *(
                (
                    k,
                    str(directory / hydrate.file_name(found[k])),
                    "is in the hydrated files but not in a fresh render of this tree",
                )
                for k in found.keys() - fresh.keys()
            ),
            *(
                (k, str(directory), "is in a fresh render of this tree but not in the hydrated files")
                for k in fresh.keys() - found.keys()
            ),
            *(
                (k, str(directory / hydrate.file_name(found[k])), _edited(fresh[k], found[k]))
                for k in found.keys() & fresh.keys()
                if found[k] != fresh[k]
            ),
        ]
    ]
    if len(objects) != len(found):
        problems.append(Finding("hydrated", env, "-", str(directory), "the same object is in more than one file"))
    if problems or tampered:
        return tampered + sorted(problems, key=lambda f: f.obj)
    return RenderResult(
        env=env,
        text=text,
        objects=objects,
        omitted=render.omitted,
        origins=render.origins,
        setters=render.setters,
        patches=render.patches,
    )


def validate(root: Path = REPO_ROOT, envs: list[str] | None = None, hydrated: dict[str, Path] | None = None) -> Report:
    """hydrated: env -> a `make hydrate` output directory to check instead of the render (after comparing them)."""
    report = Report()
    hydrated = hydrated or {}
    known = environments(root)  # environments.yaml and the overlays must agree (UserError otherwise)
    for env in envs or []:
        if env not in known:
            raise UserError(f"unknown environment {env!r} (known: {', '.join(known)})", where="environments.yaml")
    envs = envs or known
    # Renders and kubeconform runs are subprocess-bound: one thread per environment.
    progress(f"rendering {', '.join(envs)} (kustomize build)")
    with ThreadPoolExecutor(max_workers=len(envs) or 1) as pool:
        for env, rendered in zip(envs, pool.map(lambda e: _render(root, e, hydrated.get(e)), envs), strict=True):
            if isinstance(rendered, list):
                report.findings += rendered
            else:
                report.renders[env] = rendered
        crds = {
            manifests.meta(o).get("name"): o
            for render in report.renders.values()
            for o in manifests.of_kind(render.objects, "apiextensions.k8s.io", "CustomResourceDefinition")
        }
        progress("building JSON schemas from the rendered CRDs (cached in .cache/schemas)")
        crd_dir = schemas.crd_schemas(crds.values(), sorted(argocd_crds_dir().glob("*.yaml")))
        jobs = [(env, render, render.text, f"overlays/{env}") for env, render in report.renders.items()]
        jobs += [("argocd", None, p.read_text(), str(p.relative_to(root))) for p in argocd_files(root)]
        progress(f"kubeconform -strict over {len(jobs)} stream(s)")
        for found in pool.map(lambda job: schema_findings(*job[:3], crd_dir, job[3]), jobs):
            report.findings += found
    # Stage: Knative's own admission webhooks over every render (gitops/validate/admission.py).
    progress("Knative admission webhooks")
    refused, report.warnings = admission.stage(report.renders)
    report.findings += refused
    progress("semantic checks")
    for render in report.renders.values():
        ctx = EnvContext(root, render)
        for check in env_checks():
            report.findings += check.run(ctx)
    repo = RepoContext(root, report.renders)
    for check in repo_checks():
        report.findings += check.run(repo)
    judged = waivers.judged(waivers.load(root), envs, known)
    report.findings, report.waived = waivers.apply(report.findings, judged)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("envs", nargs="*", help="environments to validate (default: every overlay)")
    parser.add_argument(
        "--hydrated",
        action="append",
        default=[],
        metavar="ENV=DIR",
        help="check the files `make hydrate` wrote to DIR for ENV (the bytes Argo CD syncs) instead of ENV's render",
    )
    parser.add_argument("--list", action="store_true", help="print the catalogue of checks (ids, scope, rule) and exit")
    parser.add_argument("--markdown", action="store_true", help="with --list: as the page docs/checks.md")
    args = parser.parse_args(argv)
    if args.markdown and not args.list:
        parser.error("--markdown goes with --list")
    if args.list:
        print(format_catalogue(markdown=args.markdown), end="")
        return 0
    started = time.monotonic()
    hydrated: dict[str, Path] = {}
    for item in args.hydrated:
        env, sep, directory = item.partition("=")
        if not (sep and env and directory):
            parser.error(f"--hydrated {item!r}: expected ENV=DIR")
        hydrated[env] = Path(directory)
    report = validate(envs=args.envs or None, hydrated=hydrated)
    for finding in sorted(report.findings, key=finding_order):  # root causes first
        print(f"FAIL {finding}")
    for warning in report.warnings:
        print(f"WARN {warning}")
    for finding, waiver in report.waived:
        print(f"WAIVED {finding}\n    because: {waiver.reason}")
    print()
    for env, render in report.renders.items():
        what = f"hydrated ({hydrated[env]})" if env in hydrated else "rendered"
        print(
            f"{env}: {len(render.objects)} objects {what}, schema-checked (Kubernetes {schemas.KUBERNETES_VERSION}) and checked"
        )
        for budget in retry_budgets(render.objects):
            print(f"{env}: {budget.describe()}")
        if render.omitted:
            print(
                f"{env}: NOT RENDERED {', '.join(gap.url.rsplit('/', 1)[-1] for gap in render.omitted)} (see the warning)"
            )
        if render.stood_in:
            print(
                f"    its {len(render.stand_ins)} objects rebuilt from {upstream_source_dir().name} were checked "
                f"(availability, NetworkPolicy, Pod Security): {stand_in_note(render.stood_in[0])}"
            )
    sys.stdout.flush()
    report_omitted(list(report.renders.values()))
    verdict = "OK" if report.ok else f"{len(report.findings)} finding(s)"
    print(f"validate: {verdict} in {time.monotonic() - started:.1f}s")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
