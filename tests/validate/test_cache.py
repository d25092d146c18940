"""Stage results stored by content change nothing but time: with a cold store, a warm one and none at all
(`--no-cache`), validate finds exactly the same things, on the real tree and on broken ones; a warm run builds,
checks and admits nothing again."""

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops.core import manifests, render
from gitops.core.cache import ResultCache
from gitops.core.paths import REPO_ROOT
from gitops.validate import admission, kubeconform
from gitops.validate.run import Clock, Report, check_renders, validate
from tests.support import assert_stored_results_agree, comparable, obj

Outcome = tuple[list[str], list[str], list[str]]


def outcome(report: Report) -> Outcome:
    """Everything validate reports, as the lines it prints (order-free: stages may finish in any order)."""
    return comparable(report)


def three_ways(
    run: Callable[[ResultCache], Report], store: Path, reference: Outcome | None = None
) -> tuple[Outcome, ResultCache]:
    """The outcome with no cache (unless given), a cold `store` and the same one warm (asserted equal); returns it
    and the warm cache."""
    reference = reference or outcome(run(ResultCache(enabled=False)))
    return reference, assert_stored_results_agree(run, reference, store, every_lookup_hits=False)


def test_the_real_tree_gives_the_same_report_with_and_without_cache(validated_tree, tmp_path, monkeypatch):
    found, warm = three_ways(lambda cache: validate(cache=cache), tmp_path, outcome(validated_tree[0]))
    assert found[0] == [] and found[1]  # passes, with the Envoy waiver applied
    hits, lookups = warm.hit_rate()
    assert lookups and hits == lookups, warm.counts
    # Warm: nothing is built, schema-checked or admitted again.
    monkeypatch.setattr(render, "_kustomize_build", lambda *a: pytest.fail("a warm run rebuilt a render"))
    monkeypatch.setattr(kubeconform, "run_documents", lambda docs, d: pytest.fail("kubeconform ran") if docs else {})
    monkeypatch.setattr(admission, "_invoke", lambda *a: pytest.fail("the admission binary ran"))
    assert outcome(validate(cache=ResultCache(root=tmp_path))) == found


def _set(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


# Breakages on disk, each caught by another stage: (case, file, old, new, environments to validate, a needle).
TREE_BREAKAGES = [
    ("semantic check", "base/eventing/triggers.yaml", "kafka-source#loggings", "kafka-sourceloggings", ["dev"],
     "filter matches no event"),
    ("prod policy in one overlay", "overlays/prod/kafka.yaml", 'default.topic.replication.factor: "3"',
     'default.topic.replication.factor: "2"', ["dev", "prod"], "<prod-policy>"),
    ("render failure", "overlays/dev/kustomization.yaml", "delivery.yaml", "delivry.yaml", ["dev"], "<render>"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "file", "old", "new", "envs", "needle"), TREE_BREAKAGES, ids=[b[0] for b in TREE_BREAKAGES]
)
def test_a_broken_tree_gives_the_same_findings_with_and_without_cache(
    tree_copy, tmp_path, case, file, old, new, envs, needle
):
    _set(tree_copy / file, old, new)
    (findings, _, _), _ = three_ways(lambda cache: validate(tree_copy, envs, cache=cache), tmp_path / "store")
    assert any(needle in f for f in findings), findings


def _ksvc_container(r):
    return obj(r, "serving.knative.dev", "Service", "notifications", "notifications")["spec"]["template"]["spec"][
        "containers"
    ][0]


# Breakages of one render in memory, each refused by a stage that runs a tool per object.
RENDER_BREAKAGES: list[tuple[str, Callable[[render.RenderResult], None], str]] = [
    ("privileged (admission and pod security)",
     lambda r: _ksvc_container(r).setdefault("securityContext", {}).update(privileged=True), "<pod-security>"),
    ("config store value (admission context)",
     lambda r: obj(r, "", "ConfigMap", "knative-serving", "config-autoscaler")["data"].update({"max-scale-limit": "x"}),
     "<upstream-admission>"),
    ("misspelt field (kubeconform)",
     lambda r: obj(r, "sources.knative.dev", "KafkaSource", "notifications", "kafka-source")["spec"].update(
         consumerGroupp="x"), "additional properties 'consumerGroupp' not allowed"),
    ("non-string ConfigMap value (kubeconform, one of two same-named objects)",
     lambda r: obj(r, "", "ConfigMap", "knative-serving", "config-logging")["data"].update({"zap-logger-config": 42}),
     "[prod] ConfigMap knative-serving/config-logging"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "mutate", "needle"), RENDER_BREAKAGES, ids=[b[0] for b in RENDER_BREAKAGES])
def test_a_broken_render_gives_the_same_findings_with_and_without_cache(renders, tmp_path, case, mutate, needle):
    """prod broken, dev intact in the same run: the distinct objects' results map back to the right environment."""
    broken = copy.deepcopy(renders["prod"])
    mutate(broken)
    broken.text = manifests.dump_stream(broken.objects)

    def run(cache: ResultCache) -> Report:
        report = Report(renders={"dev": renders["dev"], "prod": copy.deepcopy(broken)})
        check_renders(report, REPO_ROOT, cache, Clock())
        return report

    (findings, _, _), _ = three_ways(run, tmp_path)
    assert any(needle in f for f in findings), findings
    assert not [f for f in findings if f.startswith("[dev]")], findings
