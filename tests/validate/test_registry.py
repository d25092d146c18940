"""The catalogue of checks: every registered check passes on the real tree; ids, one-line docstrings,
`gitops validate --list`, and docs/checks.md kept current."""

import subprocess
import sys
from collections.abc import Iterator

import pytest

from gitops.core.paths import REPO_ROOT, environments
from gitops.validate import registry, waivers
from gitops.validate.findings import EnvContext, Finding, RepoContext

CHECKS_PAGE = REPO_ROOT / "docs" / "checks.md"


def _ignoring_unrelated_waivers(findings: list[Finding]) -> list[str]:
    """The findings validate would still fail on: waivers apply, and a waiver that this one check cannot match is
    not stale here (validate reports stale waivers over all checks at once)."""
    failing, _ = waivers.apply(findings, waivers.load(REPO_ROOT))
    return [str(f) for f in failing if f.check != "waivers"]


@pytest.mark.parametrize("check", registry.env_checks(), ids=lambda c: c.where.split(".", 3)[3])
@pytest.mark.parametrize("env", environments())
def test_real_tree_passes_every_env_check(renders, env, check):
    assert _ignoring_unrelated_waivers(check.run(EnvContext(REPO_ROOT, renders[env]))) == []


@pytest.mark.parametrize("check", registry.repo_checks(), ids=lambda c: c.where.split(".", 3)[3])
def test_real_tree_passes_every_repo_check(renders, check):
    assert _ignoring_unrelated_waivers(check.run(RepoContext(REPO_ROOT, renders))) == []


def test_docs_checks_page_is_generated_from_the_catalogue():
    assert CHECKS_PAGE.read_text() == registry.format_catalogue(markdown=True), (
        "regenerate: .venv/bin/gitops validate --list --markdown > docs/checks.md"
    )


def test_every_check_has_an_id_and_a_one_line_summary():
    for check in registry.catalogue():
        assert check.id and check.id == check.id.lower() and " " not in check.id, check.where
        assert check.summary.endswith(".") and len(check.summary) <= 120, check.where


def test_every_check_module_is_in_the_run_order():
    modules = {c.func.__module__.rsplit(".", 1)[1] for c in registry.catalogue()}
    checks_dir = REPO_ROOT / "gitops" / "validate" / "checks"
    on_disk = {p.stem for p in checks_dir.glob("*.py") if p.stem != "__init__"}
    assert modules == on_disk == set(registry.CHECK_MODULES)


def test_stage_ids_are_not_check_ids():
    assert not set(registry.STAGES) & {c.id for c in registry.catalogue()}


def test_a_check_reporting_another_id_is_a_bug(renders):
    def check_mislabelled(ctx: EnvContext) -> Iterator[Finding]:
        """Says one thing, reports another."""
        yield ctx.finding("prod-policy", None, "wrong id")

    check = registry.Check("event-egress", "env", check_mislabelled)
    with pytest.raises(
        RuntimeError, match=r"check_mislabelled is registered as 'event-egress' but reported 'prod-policy'"
    ):
        check.run(EnvContext(REPO_ROOT, renders["dev"]))


def test_a_check_without_a_docstring_is_refused():
    def check_silent(ctx: EnvContext) -> Iterator[Finding]:
        yield from ()

    with pytest.raises(TypeError, match="check_silent needs a one-line docstring"):
        registry.env_check("silent")(check_silent)


def test_validate_list_prints_every_check_and_stage():
    proc = subprocess.run(
        [sys.executable, "-m", "gitops.cli", "validate", "--list"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    ids = {line.split()[0] for line in proc.stdout.splitlines()}
    assert ids == {c.id for c in registry.catalogue()} | set(registry.STAGES)
    assert "prod-policy" in proc.stdout and "stage" in proc.stdout
