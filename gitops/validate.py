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

from gitops import admission, deployer_rbac, hydrate, kubeconform, manifests, releases, schemas, waivers
from gitops.argocd_sync import argocd_paths
from gitops.checks import EnvContext, Finding, RepoContext, env_checks, repo_checks
from gitops.paths import REPO_ROOT, argocd_crds_dir, environments
from gitops.render import RenderError, RenderResult, render_env


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
    for result in kubeconform.run(stream, crd_dir, filename):
        obj = None
        if render is not None:
            obj = next(
                (
                    o
                    for o in render.objects
                    if o.get("kind") == result.kind
                    and manifests.meta(o).get("name") == result.name
                    and o.get("apiVersion") == result.version
                ),
                None,
            )
        ref = str(manifests.ObjKey.of(obj)) if obj else f"{result.kind} {result.name}"
        origin = render.origin(obj) if (render and obj) else filename
        found.append(Finding("schema", env, ref, origin, f"{result.status.removeprefix('status')}: {result.msg}"))
    return found


def _render(root: Path, env: str, hydrated: Path | None = None) -> RenderResult | list[Finding]:
    try:
        render = render_env(env, root)
    except (RenderError, releases.DigestMismatch) as error:
        return [Finding("render", env, "-", f"overlays/{env}", str(error))]
    return render if hydrated is None else _hydrated_render(render, hydrated)


def _hydrated_render(render: RenderResult, directory: Path) -> RenderResult | list[Finding]:
    """The hydrated files as a RenderResult (origins from the fresh render), or why they are not that render."""
    env = render.env
    try:
        text = hydrate.load_hydrated(directory)
    except hydrate.HydrateError as error:
        return [Finding("hydrated", env, "-", str(directory), str(error))]
    objects = manifests.load_stream(text)
    fresh = {manifests.ObjKey.of(o): o for o in render.objects}
    found = {manifests.ObjKey.of(o): o for o in objects}
    problems = [
        Finding("hydrated", env, str(key), str(directory), message)
        for key, message in [
            *(
                (k, "is in the hydrated files but not in a fresh render of this tree")
                for k in found.keys() - fresh.keys()
            ),
            *(
                (k, "is in a fresh render of this tree but not in the hydrated files")
                for k in fresh.keys() - found.keys()
            ),
            *(
                (k, "differs from a fresh render of this tree")
                for k in found.keys() & fresh.keys()
                if found[k] != fresh[k]
            ),
        ]
    ]
    if len(objects) != len(found):
        problems.append(Finding("hydrated", env, "-", str(directory), "the same object is in more than one file"))
    if problems:
        return sorted(problems, key=lambda f: f.obj)
    return RenderResult(env=env, text=text, objects=objects, omitted=render.omitted, origins=render.origins)


def validate(root: Path = REPO_ROOT, envs: list[str] | None = None, hydrated: dict[str, Path] | None = None) -> Report:
    """hydrated: env -> a `make hydrate` output directory to check instead of the render (after comparing them)."""
    report = Report()
    hydrated = hydrated or {}
    envs = envs or environments(root)
    # Renders and kubeconform runs are subprocess-bound: one thread per environment.
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
        crd_dir = schemas.crd_schemas(crds.values(), sorted(argocd_crds_dir().glob("*.yaml")))
        jobs = [(env, render, render.text, f"overlays/{env}") for env, render in report.renders.items()]
        jobs += [("argocd", None, p.read_text(), str(p.relative_to(root))) for p in argocd_files(root)]
        for found in pool.map(lambda job: schema_findings(*job[:3], crd_dir, job[3]), jobs):
            report.findings += found
    # Stage: Knative's own admission webhooks over every render (gitops/admission.py).
    refused, report.warnings = admission.stage(report.renders)
    report.findings += refused
    for render in report.renders.values():
        ctx = EnvContext(root, render)
        for check in env_checks():
            report.findings += list(check(ctx))
    repo = RepoContext(root, report.renders)
    for check in repo_checks():
        report.findings += list(check(repo))
    report.findings, report.waived = waivers.apply(report.findings, waivers.load(root))
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
    args = parser.parse_args(argv)
    started = time.monotonic()
    hydrated: dict[str, Path] = {}
    for item in args.hydrated:
        env, sep, directory = item.partition("=")
        if not (sep and env and directory):
            parser.error(f"--hydrated {item!r}: expected ENV=DIR")
        hydrated[env] = Path(directory)
    report = validate(envs=args.envs or None, hydrated=hydrated)
    for finding in sorted(report.findings, key=lambda f: (f.env, f.check, f.obj)):
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
        for gap in render.omitted:
            print(f"{env}: NOT RENDERED {gap.url}\n    {gap.reason}")
    verdict = "OK" if report.ok else f"{len(report.findings)} finding(s)"
    print(f"validate: {verdict} in {time.monotonic() - started:.1f}s")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
