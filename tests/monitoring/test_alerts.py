"""The shipped alerts, judged by Prometheus' own promtool: `check rules` on each environment's rendered
PrometheusRule, and the unit tests in alerts_test.yaml (every alert fires in one case, stays silent in another) run
against that same rendered rule, severity included. The docs table of alerts is generated from the rules."""

import copy
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from gitops.core.paths import REPO_ROOT
from gitops.model import metrics, prometheus_rules
from gitops.model.prometheus_rules import failed_groups, rule_objects, write_rule_file

HERE = Path(__file__).parent
TESTS = HERE / "alerts_test.yaml"
SEVERITY = {"dev": "ticket", "prod": "page"}


def _run_unit_tests(objects, tmp_path: Path, severity: str):
    write_rule_file(objects, tmp_path / "rules.yaml")
    (tmp_path / TESTS.name).write_text(TESTS.read_text().replace("__SEVERITY__", severity))
    return prometheus_rules.check_rules(tmp_path / "rules.yaml"), prometheus_rules.test_rules(tmp_path / TESTS.name)


@pytest.mark.parametrize("env", sorted(SEVERITY))
def test_promtool_checks_and_unit_tests_pass_on_the_render(renders, env, tmp_path):
    checked, tested = _run_unit_tests(renders[env].objects, tmp_path, SEVERITY[env])
    assert f"SUCCESS: {len(list(metrics.alerts(renders[env].objects)))} rules found" in checked
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_firing_and_a_silent_case(renders):
    suite = YAML(typ="safe").load(TESTS.read_text())
    fires, silent = set(), set()
    for group in suite["tests"]:
        for case in group["alert_rule_test"]:
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {a.name for a in metrics.alerts(renders["prod"].objects)}
    assert names and names <= fires, f"no firing case for {sorted(names - fires)}"
    assert names <= silent, f"no silent case for {sorted(names - silent)}"


def test_a_broken_rule_fails_its_unit_test(renders, tmp_path):
    """The unit tests can fail: a metric typo in the dead-letter-sink alert leaves it silent where it must fire."""
    objects = copy.deepcopy(renders["dev"].objects)
    (rule,) = rule_objects(objects)
    first = rule["spec"]["groups"][0]["rules"][0]
    assert first["alert"] == "KnativeKafkaDeadLetterSinkFailing"
    first["expr"] = first["expr"].replace("kn_eventing_dispatch_latency_ms_count", "kn_dispatch_count")
    _, tested = _run_unit_tests(objects, tmp_path, "ticket")
    assert tested.returncode != 0
    assert failed_groups(tested.stdout + tested.stderr) == {
        "KnativeKafkaDeadLetterSinkFailing fires when the KafkaSink answers 503"
    }


def test_the_wrong_severity_fails_the_unit_tests(renders, tmp_path):
    _, tested = _run_unit_tests(renders["prod"].objects, tmp_path, "ticket")
    assert tested.returncode != 0


def test_promtool_check_rules_refuses_bad_promql(renders, tmp_path):
    objects = copy.deepcopy(renders["dev"].objects)
    (rule,) = rule_objects(objects)
    rule["spec"]["groups"][0]["rules"][0]["expr"] = "sum by (x (up)"
    write_rule_file(objects, tmp_path / "rules.yaml")
    with pytest.raises(prometheus_rules.PromtoolFailed, match=r"promtool check rules rules\.yaml: .*parse error"):
        prometheus_rules.check_rules(tmp_path / "rules.yaml")


def test_operations_alert_table_is_generated_from_the_rules():
    page = (REPO_ROOT / metrics.OPERATIONS).read_text()
    assert page == metrics.operations_with_table(REPO_ROOT), (
        "docs/operations.md's alert table is stale: run `.venv/bin/python -m gitops.model.metrics --write`"
    )
    for alert in metrics.alerts(YAML(typ="safe").load_all((REPO_ROOT / metrics.ALERTS_FILE).read_text())):
        assert f"`{alert.name}`" in metrics.alert_table(REPO_ROOT)
