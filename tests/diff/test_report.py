"""make diff: the report and the PR comment, and a git ref against the working tree with real renders."""

import copy
import re
import subprocess
from pathlib import Path

import pytest

from gitops.core import manifests, releases
from gitops.core.manifests import ObjKey
from gitops.core.paths import REPO_ROOT
from gitops.core.render import RenderResult
from gitops.diff import report
from gitops.diff.engine import diff_env
from tests.diff.diff_support import diff_prod, set_partitions
from tests.support import MADE_UP_ENV, add_environment


def test_markdown_has_marker_flags_and_diff_block(renders: dict[str, RenderResult]) -> None:
    result = diff_prod(renders, set_partitions("6"))
    text = report.format_markdown([report.EnvReport(result, renders["prod"].origins)], "origin/main", "HEAD", 8)
    assert text.startswith(report.COMMENT_MARKER)
    assert "**DANGEROUS** `ConfigMap notifications/kafka-broker-config`" in text
    assert "```diff\n! ConfigMap notifications/kafka-broker-config  (base/eventing/kafka-broker-config.yaml)" in text
    assert "data[default.topic.partitions]: 12 → 6" in text


def test_many_upstream_changes_are_summarised(renders: dict[str, RenderResult]) -> None:
    old = renders["dev"].objects
    new = copy.deepcopy(old)
    for obj in new:
        labels = manifests.labels(obj)
        if "app.kubernetes.io/version" in labels:
            labels["app.kubernetes.io/version"] = "1.99.0"
    env_report = report.EnvReport(diff_env("dev", old, new), renders["dev"].origins)
    lines = report.resource_lines(env_report, 8)
    assert len(env_report.diff.changed) > report.UPSTREAM_DETAIL_LIMIT
    assert any("upstream objects changed" in line for line in lines)
    assert any("most changed field: metadata.labels[app.kubernetes.io/version]" in line for line in lines)
    assert not [line for line in lines if not line.startswith(("~ ", "      "))]
    # One line per upstream release file at most (plus the header and the most-changed field), never per object.
    assert len(lines) <= len(releases.referenced_urls(REPO_ROOT)) + 2
    assert len(report.resource_lines(env_report, 8, full=True)) > len(env_report.diff.changed)


# --- end to end: git ref vs working tree, real renders --------------------------------------------------------


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def repo_copy(tree_copy: Path) -> Path:
    _git(tree_copy, "init", "-q", "-b", "main")
    _git(tree_copy, "add", "-A")
    _git(tree_copy, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
    return tree_copy


def test_git_ref_vs_working_tree_exit_codes(repo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main(["--base", "HEAD", "--root", str(repo_copy), "--env", "prod"]) == 0
    captured = capsys.readouterr()
    assert "== prod: no changes" in captured.out
    # A line per stage as it ends, with its time, on stderr (not only at the end, not only on a terminal).
    assert re.search(r"^diff: HEAD: extracted with git archive \d+\.\ds$", captured.err, re.M), captured.err
    assert re.search(
        r"^diff: prod: rendered at the base and in the working tree, compared \d+\.\ds$", captured.err, re.M
    )

    kafka = repo_copy / "overlays/prod/kafka.yaml"
    kafka.write_text(kafka.read_text().replace('default.topic.partitions: "12"', 'default.topic.partitions: "6"'))
    assert report.main(["--base", "HEAD", "--root", str(repo_copy), "--env", "prod"]) == report.EXIT_DANGEROUS
    out = capsys.readouterr().out
    assert "DANGEROUS ConfigMap notifications/kafka-broker-config: default.topic.partitions decreased 12 → 6" in out
    assert "data[default.topic.partitions]: 12 → 6  (overlays/prod/kafka.yaml)" in out
    assert out.rstrip().endswith("1 DANGEROUS change(s) (exit 3)")
    assert "diff: 1 environment(s), " in out


def test_argocd_objects_are_diffed(repo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = repo_copy / "argocd-app.yaml"
    text = app.read_text()
    dev = text.index("kind: Application\nmetadata:\n  name: knative-kafka-dev")
    app.write_text(text[:dev] + text[dev:].replace("selfHeal: true", "selfHeal: false", 1))
    assert report.main(["--base", "HEAD", "--root", str(repo_copy), "--env", "argocd"]) == 0
    out = capsys.readouterr().out
    assert "== argocd: 1 changed" in out
    assert "~ Application argocd/knative-kafka-dev  (argocd-app.yaml)" in out
    assert "spec.syncPolicy.automated.selfHeal: true → false" in out
    # The Argo CD files are no environment: the summary does not count them as one.
    assert "diff: 0 environment(s) and the Argo CD files, 1 resource change(s)" in out


def test_environment_missing_at_base_is_all_added(repo_copy: Path) -> None:
    add_environment(repo_copy, MADE_UP_ENV, like="dev")
    (env_report,) = report.run(repo_copy.parent / "nowhere", repo_copy, [MADE_UP_ENV])
    assert env_report.diff.notes[0].startswith("new environment")
    assert env_report.diff.added and not env_report.diff.removed and not env_report.diff.changed
    assert ObjKey("eventing.knative.dev", "Broker", "notifications", "events") in env_report.diff.added


# --- weakening a production environment through one fact -------------------------------------------------------


def _set_facts(root: Path, env: str, **facts: object) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    path = root / "environments.yaml"
    doc = yaml.load(path.read_text())
    doc["environments"][env].update(facts)
    yaml.dump(doc, path)


def test_weakening_prod_facts_is_dangerous(repo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """End to end: environments.yaml at the base and in the working tree (the variants: tests/diff/test_engine.py)."""
    _set_facts(repo_copy, "prod", production=False)
    assert report.main(["--base", "HEAD", "--root", str(repo_copy), "--env", "prod"]) == report.EXIT_DANGEROUS
    assert "DANGEROUS Environment prod: environments.yaml: production true → false" in capsys.readouterr().out


def _edit_bootstrap(root: Path, edit) -> None:
    import yaml as pyyaml

    path = root / "argocd-app.yaml"
    docs = [d for d in pyyaml.safe_load_all(path.read_text()) if d]
    edit({f"{d['kind']} {d['metadata']['name']}": d for d in docs})
    path.write_text(pyyaml.safe_dump_all(docs, sort_keys=False))


PROD_APP = "Application knative-kafka-prod"
PROD_PROJECT = "AppProject knative-kafka-prod"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d[PROD_APP]["spec"].setdefault("syncPolicy", {}).update(automated={"prune": True}),
            "DANGEROUS Application argocd/knative-kafka-prod: automated sync turned on for production prod",
        ),
        (
            lambda d: d[PROD_APP]["spec"]["destination"].update(name="prod-eu"),
            "DANGEROUS Application argocd/knative-kafka-prod: destination of production prod changed",
        ),
        (
            lambda d: d[PROD_APP]["spec"].update(project="knative-kafka-dev"),
            "DANGEROUS Application argocd/knative-kafka-prod: project of production prod changed",
        ),
        (
            lambda d: d[PROD_PROJECT]["spec"]["destinations"].append({"server": "*", "namespace": "*"}),
            "DANGEROUS AppProject argocd/knative-kafka-prod: project of production prod loosened: spec.destinations "
            'gains {"namespace": "*", "server": "*"}',
        ),
        (
            lambda d: d[PROD_PROJECT]["spec"]["sourceRepos"].append("*"),
            'project of production prod loosened: spec.sourceRepos gains "*"',
        ),
        (
            lambda d: d[PROD_PROJECT]["spec"]["namespaceResourceWhitelist"].append({"group": "*", "kind": "*"}),
            "spec.namespaceResourceWhitelist gains",
        ),
        (
            lambda d: d[PROD_PROJECT]["spec"].update(
                roles=[{"name": "ops", "policies": ["p, proj:knative-kafka-prod:ops, applications, *, */*, allow"]}]
            ),
            "project of production prod loosened: spec.roles gains",
        ),
    ],
    ids=["automated", "destination", "project switched", "wildcard destination", "any repo", "any kind", "role"],
)
def test_loosening_prod_access_is_dangerous(repo_copy: Path, capsys: pytest.CaptureFixture[str], edit, expected):
    _edit_bootstrap(repo_copy, edit)
    assert report.main(["--base", "HEAD", "--root", str(repo_copy), "--env", "argocd"]) == report.EXIT_DANGEROUS
    assert expected in capsys.readouterr().out


def test_loosening_dev_access_is_not_a_production_change(repo_copy: Path, capsys: pytest.CaptureFixture[str]):
    _edit_bootstrap(repo_copy, lambda d: d["AppProject knative-kafka-dev"]["spec"]["sourceRepos"].append("*"))
    assert report.main(["--base", "HEAD", "--root", str(repo_copy), "--env", "argocd"]) == 0
    assert "DANGEROUS" not in capsys.readouterr().out


def test_delivery_change_prints_every_triggers_retry_budget(renders, broken):
    old = renders["prod"]
    new = broken("prod")
    broker = next(o for o in new.objects if o["kind"] == "Broker")
    broker["spec"]["delivery"]["retry"] = 3
    diff = diff_env("prod", old.objects, new.objects)
    notes = report._retry_budget_notes(diff, old, new)
    assert any(
        n.startswith("Trigger notifications/notifications: worst-case retry budget 267 s")
        and "3 exponential backoffs 7 s" in n
        and n.endswith("; was 840 s")
        for n in notes
    ), notes
    # A change that leaves delivery alone prints no budget.
    assert report._retry_budget_notes(diff_env("prod", old.objects, old.objects), old, old) == []


def test_unknown_ref_is_bad_input_exit_2(repo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main(["--base", "no-such-ref", "--root", str(repo_copy)]) == 2  # docs/cli.md: bad input
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("diff: unknown git ref 'no-such-ref'; diff against a commit")


def test_no_remote_suggests_the_previous_commit(repo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _git(repo_copy, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "second")
    assert report.main(["--base", "origin/main", "--root", str(repo_copy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        "diff: unknown git ref 'origin/main' (this clone has no remote 'origin'); diff against a commit this clone "
        "has, e.g. `make diff BASE=HEAD~1` (the last commit)"
    ), err


def test_unknown_environment_is_bad_input_exit_2(repo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main(["--base", "HEAD", "--root", str(repo_copy), "--env", MADE_UP_ENV]) == 2
    assert f"diff: unknown environment(s) {MADE_UP_ENV}" in capsys.readouterr().err


def test_mis_indented_prod_scale_bound_is_notable(repo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 28: `max-scale` one level too far out in overlays/prod/scale.yaml is admitted, and prod loses its
    bound; the diff marks it (exit 0: nothing is refused), and a dev change of the same kind is not marked."""
    scale = repo_copy / "overlays/prod/scale.yaml"
    scale.write_text(
        scale.read_text().replace(
            '        autoscaling.knative.dev/max-scale: "20"', '      autoscaling.knative.dev/max-scale: "20"'
        )
    )
    assert report.main(["--base", "HEAD", "--root", str(repo_copy), "--env", "prod"]) == 0
    out = capsys.readouterr().out
    assert "== prod: 1 changed, 0 added, 0 removed, 1 NOTABLE" in out, out
    assert (
        "NOTABLE Service.serving.knative.dev notifications/notifications: production prod scale bound: "
        "spec.template.metadata.annotations[autoscaling.knative.dev/max-scale] 20 → (absent)"
    ) in out
    dev = repo_copy / "overlays/dev/scale.yaml"
    dev.write_text(dev.read_text().replace('max-scale: "', 'max-scale: "1'))
    assert report.main(["--base", "HEAD", "--root", str(repo_copy), "--env", "dev"]) == 0
    assert "NOTABLE" not in capsys.readouterr().out
