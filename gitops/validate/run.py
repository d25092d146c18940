"""`make validate`: render every environment, check it against schemas, then against what schemas cannot see.

With `--hydrated ENV=DIR` the checks run on the files `make hydrate` wrote for ENV (the bytes CI commits to the
deploy branch and Argo CD syncs), after proving they hold exactly the objects of a fresh render.
"""

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

from gitops.core import cache as result_cache
from gitops.core import manifests, releases
from gitops.core.errors import UserError
from gitops.core.field_diff import field_changes, show
from gitops.core.paths import REPO_ROOT, environments, upstream_source_dir
from gitops.core.progress import progress
from gitops.core.render import MirrorMissing, RenderError, RenderResult, render_env, report_omitted, stand_in_note
from gitops.core.tools import pinned_versions
from gitops.delivery import deployer_rbac, hydrate, placeholders
from gitops.model.argocd import argocd_paths
from gitops.model.retry_budget import retry_budgets
from gitops.validate import admission, kubeconform, schemas, waivers
from gitops.validate.findings import EnvContext, Finding, RepoContext, by_cause, message_fields
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


def schema_findings(
    env: str,
    render: RenderResult | None,
    stream: str,
    crd_dir: Path,
    filename: str,
    cache: result_cache.ResultCache | None = None,
) -> list[Finding]:
    """kubeconform's findings on one stream (a render's text, or an Argo CD file) named after their objects."""
    return schema_stage([(env, render, stream, filename)], crd_dir, cache or result_cache.disabled()).findings


@dataclass
class SchemaStage:
    findings: list[Finding]
    documents: int  # documents across every stream
    distinct: int  # distinct documents (by content)
    checked: int  # distinct documents kubeconform ran on (not in the cache)


def schema_stage(
    jobs: list[tuple[str, RenderResult | None, str, str]], crd_dir: Path, cache: result_cache.ResultCache
) -> SchemaStage:
    """kubeconform -strict over every document of every stream, each distinct document once: the platform's
    upstream objects are the same bytes in every environment. A document's result depends only on its bytes,
    kubeconform, its flags and the schemas (the CRD schema directory's name is their digest), so results are
    stored under those and mapped back to every environment and file holding the document.

    jobs: (env, its render or None for a repository file, the stream, the file to name when there is no render)."""
    config = result_cache.digest(
        "kubeconform-v1",
        result_cache.tool_identity(kubeconform.command(crd_dir)[0], pinned_versions().get("KUBECONFORM_VERSION", "")),
        *kubeconform.command(crd_dir)[1:],
        result_cache.code_digest(kubeconform, schemas),
    )
    placed: list[tuple[str, RenderResult | None, str, manifests.Obj | None, str]] = []  # (env, render, file, obj, key)
    texts: dict[str, str] = {}
    for env, render, stream, filename in jobs:
        docs = kubeconform.documents(stream)
        objects: list[manifests.Obj | None] = list(render.objects) if render is not None else [None] * len(docs)
        if render is not None and not _aligned(docs, render.objects):
            docs = [yaml.safe_dump(o) for o in render.objects]  # one document per object, whatever the stream's layout
        for doc, obj in zip(docs, objects, strict=True):
            key = result_cache.digest(config, doc)
            texts.setdefault(key, doc)
            placed.append((env, render, filename, obj, key))
    results: dict[str, list[dict[str, str]]] = {}
    for key in texts:
        stored = cache.get("kubeconform", key)
        if isinstance(stored, list):
            results[key] = stored
    pending = {key: text for key, text in texts.items() if key not in results}
    for key, found in kubeconform.run_documents(pending, crd_dir).items():
        results[key] = [{"kind": r.kind, "name": r.name, "status": r.status, "msg": r.msg} for r in found]
        cache.put("kubeconform", key, results[key])
    findings = []
    for env, render, filename, obj, key in placed:
        for result in results[key]:
            if render is not None and obj is not None:
                ref, origin = str(manifests.ObjKey.of(obj)), render.fields_origin(obj, message_fields(result["msg"]))
            else:
                ref, origin = f"{result['kind']} {result['name']}", filename
            message = f"{result['status'].removeprefix('status')}: {result['msg']}"
            findings.append(Finding("schema", env, ref, origin, message))
    return SchemaStage(findings, len(placed), len(texts), len(pending))


def _aligned(docs: list[str], objects: list[manifests.Obj]) -> bool:
    """Whether the stream's documents are the render's objects, one for one and in order."""
    return len(docs) == len(objects) and all(f"kind: {o.get('kind')}" in d for d, o in zip(docs, objects, strict=True))


def _render(
    root: Path, env: str, hydrated: Path | None = None, cache: result_cache.ResultCache | None = None
) -> RenderResult | list[Finding]:
    """A render (or its hydrated files), or findings saying why not (a missing mirror stops everything)."""
    try:
        render = render_env(env, root, cache=cache)
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


class Clock:
    """Each stage's wall time: one line per stage (and environment) as it ends, on stderr when it is a terminal (a
    person sees where the time goes while validate runs; logs stay clean, and bad input stays one line); the totals
    per stage go on validate's last line, everywhere."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None and stream.isatty() else None
        self.totals: dict[str, float] = {}

    def record(self, stage: str, seconds: float, detail: str = "") -> None:
        self.totals[stage] = self.totals.get(stage, 0.0) + seconds
        if self.stream is not None:
            print(f"validate: {stage}{' ' + detail if detail else ''} {seconds:.1f}s", file=self.stream, flush=True)

    def summary(self) -> str:
        return ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in self.totals.items())


def validate(
    root: Path = REPO_ROOT,
    envs: list[str] | None = None,
    hydrated: dict[str, Path] | None = None,
    *,
    cache: result_cache.ResultCache | None = None,
    clock: Clock | None = None,
) -> Report:
    """hydrated: env -> a `make hydrate` output directory to check instead of the render (after comparing them).

    cache: where stage results are stored by content (default: none, every result proved from scratch; `make
    validate` passes the repository's .cache). Results are the same either way (tests/validate/test_cache.py)."""
    report = Report()
    hydrated = hydrated or {}
    cache = cache or result_cache.disabled()
    clock = clock or Clock()
    known = environments(root)  # environments.yaml and the overlays must agree (UserError otherwise)
    for env in envs or []:
        if env not in known:
            raise UserError(f"unknown environment {env!r} (known: {', '.join(known)})", where="environments.yaml")
    envs = envs or known

    def timed_render(env: str) -> tuple[RenderResult | list[Finding], float]:
        started = time.monotonic()
        return _render(root, env, hydrated.get(env), cache), time.monotonic() - started

    # Renders are kustomize processes, each busy on a core: one at a time per core. More only queue: eight renders
    # at once on two cores took 18 % more CPU and 10 % more wall time than two at a time (docs/benchmarks.md).
    progress(f"rendering {', '.join(envs)} (kustomize build)")
    with ThreadPoolExecutor(max_workers=max(1, min(len(envs), os.cpu_count() or 1))) as pool:
        rendered_envs = list(pool.map(timed_render, envs))  # a render that stops validate does so before any line
        for env, (rendered, seconds) in zip(envs, rendered_envs, strict=True):
            if isinstance(rendered, list):
                report.findings += rendered
                clock.record("render", seconds, f"{env} failed")
            else:
                report.renders[env] = rendered
                clock.record("render", seconds, f"{env} ({len(rendered.objects)} objects)")
    check_renders(report, root, cache, clock, envs, known)
    return report


def check_renders(
    report: Report,
    root: Path,
    cache: result_cache.ResultCache,
    clock: Clock,
    envs: list[str] | None = None,
    known: list[str] | None = None,
) -> None:
    """Every stage after the renders, over report.renders: schemas, kubeconform, admission, checks, waivers
    (only those of `envs`, the environments validated, among `known`)."""
    started = time.monotonic()
    crds = {
        manifests.meta(o).get("name"): o
        for render in report.renders.values()
        for o in manifests.of_kind(render.objects, "apiextensions.k8s.io", "CustomResourceDefinition")
    }
    progress("building JSON schemas from the rendered CRDs (cached in .cache/schemas)")
    crd_dir = schemas.crd_schemas(crds.values(), schemas.extra_crd_files())
    clock.record("schemas", time.monotonic() - started)
    started = time.monotonic()
    jobs = [(env, render, render.text, f"overlays/{env}") for env, render in report.renders.items()]
    jobs += [("argocd", None, p.read_text(), str(p.relative_to(root))) for p in argocd_files(root)]
    progress(f"kubeconform -strict over {len(jobs)} stream(s)")
    checked = schema_stage(jobs, crd_dir, cache)
    report.findings += checked.findings
    clock.record(
        "kubeconform",
        time.monotonic() - started,
        f"({checked.documents} documents, {checked.distinct} distinct, {checked.checked} checked)",
    )
    # Stage: Knative's own admission webhooks over every render (gitops/validate/admission.py).
    started = time.monotonic()
    progress("Knative admission webhooks")
    refused, report.warnings = admission.stage(report.renders, cache=cache)
    report.findings += refused
    clock.record("admission", time.monotonic() - started, f"({len(report.renders)} environment(s))")
    progress("semantic checks")
    for render in report.renders.values():
        started = time.monotonic()
        ctx = EnvContext(root, render, cache)
        for check in env_checks():
            report.findings += check.run(ctx)
        clock.record("checks", time.monotonic() - started, render.env)
    started = time.monotonic()
    repo = RepoContext(root, report.renders)
    for check in repo_checks():
        report.findings += check.run(repo)
    clock.record("checks", time.monotonic() - started, "repository")
    started = time.monotonic()
    report.findings, report.waived = waivers.apply(
        report.findings,
        # A waiver of an environment that did not render is not stale: its findings could not be looked for.
        waivers.judged(
            waivers.load(root),
            [env for env in envs or list(report.renders) if env in report.renders],
            known or list(report.renders),
        ),
    )
    clock.record("waivers", time.monotonic() - started)
    cache.prune()


def placeholder_warning(root: Path, envs: list[str]) -> str | None:
    """One line for every fork placeholder left in these environments: this repository keeps them (it has no
    real registry, domain or organisation), so validate only warns; `make preflight` fails on them."""
    found = {env: placeholders.left_in(env, root) for env in envs}
    lines = list(dict.fromkeys(p for left in found.values() for p in left))
    if not lines:
        return None
    return (
        f"fork placeholders left in {', '.join(env for env, left in found.items() if left)}: "
        f"{placeholders.summary(lines)}; fine for this repository, but a fork replaces them: "
        "`make preflight ENV=<env>` fails until it has (docs/forking.md)"
    )


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
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="prove every result from scratch: neither read nor write the stage results stored in .cache/results",
    )
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
    cache = result_cache.ResultCache(enabled=not args.no_cache)
    clock = Clock(sys.stderr)
    report = validate(envs=args.envs or None, hydrated=hydrated, cache=cache, clock=clock)
    # Root causes first; one line per cause, naming every environment it reaches (a base file's mistake is one).
    for cause in by_cause(sorted(report.findings, key=finding_order)):
        print(f"FAIL {cause}")
    for warning in report.warnings:
        print(f"WARN {warning}")
    left = placeholder_warning(REPO_ROOT, list(report.renders))
    if left:
        print(f"WARN {left}")
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
    hits, lookups = cache.hit_rate()
    reuse = f"cache {hits}/{lookups} hits ({100 * hits // lookups}%)" if lookups and cache.enabled else "no cache"
    print(f"validate: {verdict} in {time.monotonic() - started:.1f}s ({clock.summary()}; {reuse})")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
