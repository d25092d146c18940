"""Argo CD health checks (argocd/resource_customizations): every upstream-format test case, in real Lua 5.1."""

from pathlib import Path

import lupa.lua51 as lua51
import pytest

from gitops.core import manifests
from gitops.core.render import RenderResult
from gitops.model import argocd_health

CHECKS = argocd_health.discover()
CASES = [case for check in CHECKS for case in argocd_health.cases(check)]


def test_runtime_is_lua_51():
    # Argo CD runs health scripts in gopher-lua, which implements Lua 5.1; lupa ships several Lua versions.
    assert argocd_health.lua_version() == "Lua 5.1"
    with pytest.raises(lua51.LuaSyntaxError):
        argocd_health.run("return {status = 7 // 2}", {})  # integer division exists only from Lua 5.3


def test_sandbox_has_no_string_library():
    # argocd-cm scripts run without open libraries unless useOpenLibs is set: string.* would fail in the cluster.
    with pytest.raises(lua51.LuaError):
        argocd_health.run('return {status = string.format("%s", "Healthy"), message = ""}', {})


def test_the_five_kinds_have_checks():
    assert {(c.group, c.kind) for c in CHECKS} == {
        ("eventing.knative.dev", "Broker"),
        ("eventing.knative.dev", "EventPolicy"),
        ("eventing.knative.dev", "KafkaSink"),
        ("eventing.knative.dev", "Trigger"),
        ("sources.knative.dev", "KafkaSource"),
    }
    assert {c.key for c in CHECKS} == {
        "resource.customizations.health.eventing.knative.dev_Broker",
        "resource.customizations.health.eventing.knative.dev_EventPolicy",
        "resource.customizations.health.eventing.knative.dev_KafkaSink",
        "resource.customizations.health.eventing.knative.dev_Trigger",
        "resource.customizations.health.sources.knative.dev_KafkaSource",
    }


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: f"{c.group}/{c.kind}")
def test_each_check_covers_every_status(check):
    statuses = {case.status for case in argocd_health.cases(check)}
    assert {"Healthy", "Progressing", "Degraded"} <= statuses
    messages = [case.message for case in argocd_health.cases(check)]
    assert any("observe generation" in m for m in messages), "a stale Ready (old generation) must be a test case"
    assert all(case.fixture["kind"] == check.kind for case in argocd_health.cases(check))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_health_case(case):
    got = argocd_health.run(case.check.script, case.fixture)
    assert (got.status, got.message) == (case.status, case.message)


def test_keys_name_kinds_the_render_defines(renders: dict[str, RenderResult]):
    # A directory name typo would ship a key Argo CD never looks up; every key must name a CRD-defined kind.
    defined = {
        (manifests.dig(c, "spec", "group"), manifests.dig(c, "spec", "names", "kind"))
        for c in renders["dev"].objects
        if c.get("kind") == "CustomResourceDefinition"
    }
    assert {(c.group, c.kind) for c in CHECKS} <= defined


def test_shipped_argocd_cm_matches_the_lua_files():
    assert argocd_health.drift() == []


def test_drift_is_reported(tree_copy: Path):
    script = tree_copy / "argocd/resource_customizations/eventing.knative.dev/Trigger/health.lua"
    script.write_text(script.read_text().replace('"Trigger is ready"', '"Trigger ready"'))
    assert argocd_health.drift(tree_copy) == [
        "argocd/argocd-cm.yaml: key resource.customizations.health.eventing.knative.dev_Trigger differs from its health.lua"
    ]


def test_hand_edit_of_argocd_cm_is_reported(tree_copy: Path):
    cm = tree_copy / argocd_health.ARGOCD_CM
    cm.write_text(
        cm.read_text().replace(
            "resource.customizations.health.sources.knative.dev_KafkaSource",
            "resource.customizations.health.sources.knative.dev_Kafkasource",
        )
    )
    problems = argocd_health.drift(tree_copy)
    assert (
        "argocd/argocd-cm.yaml: key resource.customizations.health.sources.knative.dev_Kafkasource has no health.lua under argocd/resource_customizations"
        in problems
    )
    assert (
        "argocd/argocd-cm.yaml: key resource.customizations.health.sources.knative.dev_KafkaSource is missing"
        in problems
    )
