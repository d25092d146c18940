"""`make validate`: render every environment, check it against schemas, then against what schemas cannot see."""

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gitops import admission, kubeconform, manifests, releases, schemas, waivers
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
    """Argo CD manifests we ship: argocd-app.yaml and the top level of argocd/ (not health-check fixtures)."""
    files = [root / "argocd-app.yaml"] if (root / "argocd-app.yaml").is_file() else []
    return files + sorted((root / "argocd").glob("*.yaml"))


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


def _render(root: Path, env: str) -> RenderResult | Finding:
    try:
        return render_env(env, root)
    except (RenderError, releases.DigestMismatch) as error:
        return Finding("render", env, "-", f"overlays/{env}", str(error))


def validate(root: Path = REPO_ROOT, envs: list[str] | None = None) -> Report:
    report = Report()
    envs = envs or environments(root)
    # Renders and kubeconform runs are subprocess-bound: one thread per environment.
    with ThreadPoolExecutor(max_workers=len(envs) or 1) as pool:
        for env, rendered in zip(envs, pool.map(lambda e: _render(root, e), envs), strict=True):
            if isinstance(rendered, Finding):
                report.findings.append(rendered)
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
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = validate(envs=args.envs or None)
    for finding in sorted(report.findings, key=lambda f: (f.env, f.check, f.obj)):
        print(f"FAIL {finding}")
    for warning in report.warnings:
        print(f"WARN {warning}")
    for finding, waiver in report.waived:
        print(f"WAIVED {finding}\n    because: {waiver.reason}")
    print()
    for env, render in report.renders.items():
        print(
            f"{env}: {len(render.objects)} objects rendered, schema-checked (Kubernetes {schemas.KUBERNETES_VERSION}) and checked"
        )
        for gap in render.omitted:
            print(f"{env}: NOT RENDERED {gap.url}\n    {gap.reason}")
    verdict = "OK" if report.ok else f"{len(report.findings)} finding(s)"
    print(f"validate: {verdict} in {time.monotonic() - started:.1f}s")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
