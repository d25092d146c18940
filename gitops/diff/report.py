"""`make diff BASE=<git ref>`: what a change does to each environment, resource by resource.

Renders every environment at BASE (extracted with `git archive`) and in the working tree, offline with the same
mirror, and prints added/removed/changed resources with their changed fields (whole: only text both sides share
is elided) and the file that set each one; the Argo CD files (validate.argocd_files) are compared as `argocd`. Changes production cannot take
(topic loss, offset reset, CRD removal, going public...) are marked DANGEROUS. Exit 0: nothing dangerous;
3: dangerous changes; 1: the diff could not be computed.
"""

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from gitops.core import environments, manifests, releases
from gitops.core.environments import Environment
from gitops.core.errors import UserError, yaml_error
from gitops.core.manifests import Obj, ObjKey
from gitops.core.paths import REPO_ROOT, overlay_names
from gitops.core.progress import timed
from gitops.core.render import MirrorMissing, RenderError, RenderResult, render_env
from gitops.core.signals import sigterm_unwinds
from gitops.diff.engine import (
    DANGEROUS,
    NOTABLE,
    EnvDiff,
    FieldChange,
    Objects,
    diff_env,
    environment_flags,
    index,
    production_access_flags,
    production_tuning_flags,
    show_change,
)
from gitops.model.retry_budget import retry_budgets
from gitops.validate.checks.argocd_apps import source_env
from gitops.validate.run import argocd_files

EXIT_DANGEROUS = 3
ARGOCD = "argocd"  # the report on argocd-app.yaml and argocd/*.yaml
# Beyond this many changed upstream objects in one environment (a Knative bump), list them one line each.
UPSTREAM_DETAIL_LIMIT = 15
MARKDOWN_LIMIT = 60_000  # a GitHub comment holds 65,536 characters
COMMENT_MARKER = "<!-- gitops-diff -->"


class DiffError(RuntimeError):
    pass


@dataclass
class Side:
    label: str
    root: Path | None  # None: the environment does not exist on this side


@dataclass
class EnvReport:
    diff: EnvDiff
    origins: dict[ObjKey, str]
    # The file that set a changed field (an overlay patch, say), from the render's kustomize annotations.
    field_origin: Callable[[ObjKey, str], str] | None = None


def extract_ref(repo: Path, ref: str, dest: Path) -> str:
    """Write the tree of `ref` into dest; returns the short commit id."""
    rev = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--short", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if rev.returncode != 0:
        raise UserError(f"unknown git ref {ref!r}{_missing_remote(repo, ref)}", fix=_ref_hint(repo, ref))
    commit = rev.stdout.strip()
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit], capture_output=True)
    if archive.returncode != 0:
        raise DiffError(f"git archive {ref} failed: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return commit


def _missing_remote(repo: Path, ref: str) -> str:
    """ " (this clone has no remote 'origin')" when `ref` names a remote branch of a remote that does not exist."""
    remote = ref.split("/", 1)[0] if "/" in ref else None
    remotes = subprocess.run(["git", "-C", str(repo), "remote"], capture_output=True, text=True).stdout.split()
    return f" (this clone has no remote {remote!r})" if remote and remote not in remotes else ""


def _ref_hint(repo: Path, ref: str) -> str:
    """A base that exists here: the previous commit (a fresh clone or a fork without `origin` still has it)."""
    has_parent = (
        subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--verify", "-q", "HEAD~1"], capture_output=True
        ).returncode
        == 0
    )
    local = "diff against a commit this clone has, e.g. `make diff BASE=HEAD~1` (the last commit)"
    if not has_parent:
        local = "diff against a commit this clone has, e.g. `make diff BASE=HEAD`"
    return f"{local}, or fetch the ref first (`git fetch origin main` for origin/main)"


def _render(env: str, root: Path | None) -> RenderResult | None:
    # Overlays on disk, not environments.yaml: the base side may predate that file.
    if root is None or env not in overlay_names(root):
        return None
    try:
        return render_env(env, root=root)
    except MirrorMissing:
        raise
    except (RenderError, releases.DigestMismatch) as error:
        raise DiffError(f"render {env} at {root}: {error}") from error


def _facts(root: Path | None) -> dict[str, Environment]:
    """environments.yaml on one side; empty where it is missing or unreadable (a base may predate it, and
    validate reports a broken one)."""
    if root is None:
        return {}
    try:
        return environments.load(root).by_name
    except UserError:
        return {}


def diff_environment(env: str, base_root: Path | None, head_root: Path) -> EnvReport:
    old, new = _render(env, base_root), _render(env, head_root)
    result = diff_env(env, old.objects if old else [], new.objects if new else [])
    result.flags.extend(environment_flags(env, _facts(base_root).get(env), _facts(head_root).get(env)))
    facts = _facts(head_root).get(env) or _facts(base_root).get(env)
    if facts is not None and facts.production:
        result.flags.extend(production_tuning_flags(env, old.objects if old else [], new.objects if new else []))
    if old is None:
        result.notes.append("new environment: not present at the base, everything is added")
    if new is None:
        result.notes.append("environment removed: not present in the working tree, everything is removed")
    old_gaps = {g.url for g in old.omitted} if old else set()
    new_gaps = {g.url for g in new.omitted} if new else set()
    for url in sorted(old_gaps | new_gaps):
        where = "both sides" if url in old_gaps and url in new_gaps else ("base" if url in old_gaps else "head")
        result.notes.append(f"left out of the render ({where}): {url}")
    origins = {**(old.origins if old else {}), **(new.origins if new else {})}
    result.notes += _retry_budget_notes(result, old, new)

    def field_origin(key: ObjKey, path: str) -> str:
        # A changed or added value was set on the working-tree side; a removed one on the base side.
        side = new if new is not None and key in new.origins else old
        return side.field_origin(key, path) if side is not None else origins.get(key, "")

    return EnvReport(result, origins, field_origin)


def _touches_delivery(diff: EnvDiff) -> bool:
    """Whether the change adds a Trigger or moves a delivery setting (a Broker's, a Trigger's, the controller's)."""
    if any(k.kind == "Trigger" for k in diff.added + diff.removed):
        return True
    return any(
        (k.kind in ("Broker", "Trigger") and any(c.path.startswith("spec.delivery") for c in changes))
        or (k.kind == "Deployment" and k.name == "kafka-controller")
        for k, changes in diff.changed.items()
    )


def _retry_budget_notes(diff: EnvDiff, old: RenderResult | None, new: RenderResult | None) -> list[str]:
    """Where a change touches delivery: every Trigger's worst-case retry budget, and what it was at the base."""
    if new is None or not _touches_delivery(diff):
        return []
    before = {b.trigger: b for b in retry_budgets(old.objects)} if old else {}
    notes = []
    for budget in retry_budgets(new.objects):
        was = before.get(budget.trigger)
        note = budget.describe()
        if was is not None and was.worst_case_s != budget.worst_case_s:
            note += f"; was {was.worst_case_s:g} s"
        notes.append(note)
    return notes


def _argocd_objects(root: Path | None) -> tuple[list[Obj], dict[ObjKey, str]]:
    objects: list[Obj] = []
    origins: dict[ObjKey, str] = {}
    for path in argocd_files(root) if root is not None else []:
        try:
            loaded = manifests.load_stream(path.read_text())
        except yaml.YAMLError as error:
            raise DiffError(str(yaml_error(path, root, error))) from None
        for obj in loaded:
            objects.append(obj)
            origins[ObjKey.of(obj)] = str(path.relative_to(root))
    return objects, origins


def diff_argocd(base_root: Path | None, head_root: Path) -> EnvReport:
    """The Argo CD files (bootstrap, argocd/*.yaml, deployers) as one more "environment": Applications,
    AppProjects, argocd-cm, deployer RBAC."""
    old, old_origins = _argocd_objects(base_root)
    new, new_origins = _argocd_objects(head_root)
    result = diff_env(ARGOCD, old, new)
    production = {name for root in (base_root, head_root) for name, env in _facts(root).items() if env.production}

    def production_apps(objects: Objects) -> dict[ObjKey, str]:
        return {
            key: env
            for key, app in objects.items()
            if key.kind == "Application"
            for env in (source_env(s) for s in sources_of(app))
            if env in production
        }

    result.flags.extend(production_access_flags(index(old), index(new), production_apps))
    return EnvReport(result, {**old_origins, **new_origins})


def sources_of(app: Obj) -> list[dict]:
    spec = app.get("spec") or {}
    return [spec["source"]] if isinstance(spec.get("source"), dict) else list(spec.get("sources") or [])


# --- output ----------------------------------------------------------------------------------------------------


def _upstream(origin: str) -> str | None:
    """'serving/serving-core.yaml' for an object from a release URL (tag left out: a bump keeps the group)."""
    if not releases.is_remote(origin):
        return None
    try:
        asset = releases.ReleaseAsset.parse(origin)
    except ValueError:
        return origin
    return f"{asset.repo}/{asset.file}"


def _field_lines(report: EnvReport, key: ObjKey, changes: list[FieldChange], max_fields: int) -> list[str]:
    shown = changes[:max_fields] if max_fields > 0 else changes
    lines = []
    for change in shown:
        old, new = show_change(change.old, change.new)
        line = f"      {change.path}: {old} → {new}"
        where = report.field_origin(key, change.path) if report.field_origin else ""
        if where and where != report.origins.get(key):
            line += f"  ({where})"
        lines.append(line)
    if len(changes) > len(shown):
        lines.append(f"      … and {len(changes) - len(shown)} more field(s) (--max-fields 0 lists all)")
    return lines


def resource_lines(report: EnvReport, max_fields: int, full: bool = False) -> list[str]:
    diff = report.diff
    flagged = {f.key for f in diff.flags if f.severity == DANGEROUS}
    upstream_changed = [k for k in diff.changed if _upstream(report.origins.get(k, ""))]
    compact = set(upstream_changed) if not full and len(upstream_changed) > UPSTREAM_DETAIL_LIMIT else set()

    def mark(key: ObjKey, sign: str) -> str:
        origin = report.origins.get(key, "")
        return f"{'!' if key in flagged else sign} {key}" + (f"  ({origin})" if origin else "")

    lines: list[str] = []
    for key in diff.added:
        lines.append(mark(key, "+"))
    for key in diff.removed:
        lines.append(mark(key, "-"))
    for key, changes in diff.changed.items():
        if key in compact and key not in flagged:
            continue
        lines.append(mark(key, "~"))
        lines += _field_lines(report, key, changes, max_fields)
    if compact:
        per_asset = Counter(_upstream(report.origins[k]) for k in compact)
        lines.append(f"~ {len(compact)} upstream objects changed (fields not listed; --full shows them):")
        lines += [f"      {asset}: {count} changed" for asset, count in sorted(per_asset.items())]
        common = Counter(c.path for k in compact for c in report.diff.changed[k]).most_common(5)
        lines += [f"      most changed field: {path} (in {count})" for path, count in common]
    return lines


def _summary(diff: EnvDiff) -> str:
    if diff.empty:
        return "no changes"
    parts = f"{len(diff.changed)} changed, {len(diff.added)} added, {len(diff.removed)} removed"
    dangerous = len(diff.dangerous)
    notable = sum(f.severity == NOTABLE for f in diff.flags)
    return parts + (f", {dangerous} DANGEROUS" if dangerous else "") + (f", {notable} NOTABLE" if notable else "")


def format_text(reports: list[EnvReport], base: str, head: str, max_fields: int, full: bool = False) -> str:
    out: list[str] = []
    for report in reports:
        diff = report.diff
        out.append(f"== {diff.env}: {_summary(diff)}  ({base} → {head})")
        out += [f"   note: {n}" for n in diff.notes]
        out += [f"   {f.severity} {f.key}: {f.reason}" for f in diff.flags]
        out += [f"  {line}" for line in resource_lines(report, max_fields, full)]
    out.append(_total(reports))
    return "\n".join(out) + "\n"


def _total(reports: list[EnvReport]) -> str:
    dangerous = sum(len(r.diff.dangerous) for r in reports)
    changed = sum(len(r.diff.changed) + len(r.diff.added) + len(r.diff.removed) for r in reports)
    verdict = f"{dangerous} DANGEROUS change(s) (exit 3)" if dangerous else "no dangerous changes"
    # The Argo CD files are compared like an environment but are none: count them apart.
    envs = sum(r.diff.env != ARGOCD for r in reports)
    argocd = " and the Argo CD files" if envs < len(reports) else ""
    return f"diff: {envs} environment(s){argocd}, {changed} resource change(s), {verdict}"


def format_markdown(reports: list[EnvReport], base: str, head: str, max_fields: int, full: bool = False) -> str:
    out = [COMMENT_MARKER, f"### Rendered diff `{base}` → `{head}`", "", f"**{_total(reports)}**", ""]
    for report in reports:
        diff = report.diff
        out.append(f"#### `{diff.env}`: {_summary(diff)}")
        out += [f"- note: {n}" for n in diff.notes]
        for flag in diff.flags:
            icon = {DANGEROUS: ":no_entry:", NOTABLE: ":mag:"}.get(flag.severity, ":warning:")
            out.append(f"- {icon} **{flag.severity}** `{flag.key}`: {flag.reason}")
        lines = resource_lines(report, max_fields, full)
        if lines:
            out += ["", "<details><summary>resources</summary>", "", "```diff", *lines, "```", "", "</details>"]
        out.append("")
    text = "\n".join(out)
    if len(text) > MARKDOWN_LIMIT:
        text = text[:MARKDOWN_LIMIT] + "\n```\n\n</details>\n\n**(truncated: run `make diff` for the full diff)**\n"
    return text


# --- CLI -----------------------------------------------------------------------------------------------------


def run(base_root: Path | None, head_root: Path, envs: list[str]) -> list[EnvReport]:
    known = sorted(set(overlay_names(base_root) if base_root else []) | set(overlay_names(head_root)))
    unknown = sorted(set(envs) - {*known, ARGOCD})
    if unknown:
        raise UserError(
            f"unknown environment(s) {', '.join(unknown)} (known: {', '.join([*known, ARGOCD])})",
            fix="pass one of them to --env, or leave --env out for all",
        )
    reports = []
    for env in [e for e in envs if e != ARGOCD] if envs else known:
        with timed("diff", f"{env}: rendered at the base and in the working tree, compared"):
            reports.append(diff_environment(env, base_root, head_root))
    if not envs or ARGOCD in envs:
        with timed("diff", f"{ARGOCD}: the Argo CD files compared"):
            reports.append(diff_argocd(base_root, head_root))
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--base", help="git ref to compare against (e.g. origin/main)")
    source.add_argument("--base-dir", type=Path, help="a directory laid out like the repo, instead of a git ref")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the working tree side (default: this repo)")
    parser.add_argument("--env", action="append", default=[], help=f"only this environment, or {ARGOCD} (repeatable)")
    parser.add_argument(
        "--markdown",
        action="store_true",
        default=os.environ.get("DIFF_FORMAT") == "markdown",
        help="GitHub-flavoured Markdown for a PR comment (also: DIFF_FORMAT=markdown)",
    )
    parser.add_argument(
        "--max-fields", type=int, default=0, help="changed fields listed per resource (default 0: all of them)"
    )
    parser.add_argument("--full", action="store_true", help="list the fields of every upstream object too")
    args = parser.parse_args(argv)
    try:
        with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="diff-base-") as scratch:
            if args.base_dir is not None:
                base_root, base_label = args.base_dir, str(args.base_dir)
            else:
                base_root = Path(scratch)
                with timed("diff", f"{args.base}: extracted with git archive"):
                    base_label = f"{args.base}@{extract_ref(args.root, args.base, base_root)}"
            reports = run(base_root, args.root, args.env)
    except UserError as error:  # bad input (an unknown ref or environment): exit 2, as docs/cli.md says
        print(f"diff: {error}", file=sys.stderr)
        return error.exit_code
    except DiffError as error:
        print(f"diff: {error}", file=sys.stderr)
        return 1
    head_label = "working tree" if args.root == REPO_ROOT else str(args.root)
    formatter = format_markdown if args.markdown else format_text
    sys.stdout.write(formatter(reports, base_label, head_label, args.max_fields, args.full))
    return EXIT_DANGEROUS if any(r.diff.dangerous for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
