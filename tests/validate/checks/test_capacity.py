"""scale-capacity: max-scale against ordered delivery's in-flight ceiling; no cold start where promised."""

from pathlib import Path

from gitops.core.render import render_env
from gitops.validate.checks import capacity
from tests.support import MADE_UP_ENV, add_environment, obj, run_check
from tests.validate.checks.ksvc_support import ksvc

MAX_SCALE = "autoscaling.knative.dev/max-scale"
MIN_SCALE = "autoscaling.knative.dev/min-scale"


def annotations(render):
    return ksvc(render)["spec"]["template"]["metadata"]["annotations"]


def test_the_shipped_renders_use_their_capacity(renders) -> None:
    for env in ("dev", "prod"):
        for check in (capacity.check_max_scale_within_ordered_inflight, capacity.check_no_cold_start):
            assert run_check(check, renders[env]) == []


def test_max_scale_beyond_ordered_inflight_is_flagged(broken) -> None:
    render = broken("prod")
    annotations(render)[MAX_SCALE] = "30"  # 2 ordered Triggers x 12 partitions = 24 events in flight at most
    (finding,) = run_check(capacity.check_max_scale_within_ordered_inflight, render)
    assert finding.env == "prod" and finding.obj == "Service.serving.knative.dev notifications/notifications"
    assert finding.origin == "overlays/prod/scale.yaml"
    assert "max-scale 30 (overlays/prod/scale.yaml) > 24 events ever in flight" in finding.message
    assert "overlays/prod/kafka.yaml" in finding.message and "6 of its pods" in finding.message


def test_fewer_partitions_lower_the_ceiling(broken) -> None:
    render = broken("prod")
    obj(render, "", "ConfigMap", "notifications", "kafka-broker-config")["data"]["default.topic.partitions"] = "6"
    (finding,) = run_check(capacity.check_max_scale_within_ordered_inflight, render)
    assert "max-scale 20 (overlays/prod/scale.yaml) > 12 events ever in flight" in finding.message


def test_unordered_delivery_has_no_such_ceiling(broken) -> None:
    render = broken("dev")
    annotations(render)[MAX_SCALE] = "300"
    assert run_check(capacity.check_max_scale_within_ordered_inflight, render) == []


def test_scale_to_zero_in_prod_is_a_cold_start(broken) -> None:
    render = broken("prod")
    annotations(render)[MIN_SCALE] = "0"
    (finding,) = run_check(capacity.check_no_cold_start, render)
    assert finding.origin == "overlays/prod/scale.yaml"
    assert "min-scale 0 (overlays/prod/scale.yaml)" in finding.message and "scale_to_zero: false" in finding.message


def test_a_budget_that_drains_every_warm_pod_is_flagged(broken) -> None:
    render = broken("prod")
    pdb = obj(render, "policy", "PodDisruptionBudget", "notifications", "notifications")
    pdb["spec"] = {**pdb["spec"], "minAvailable": 0}
    (finding,) = run_check(capacity.check_no_cold_start, render)
    assert finding.obj == "PodDisruptionBudget notifications/notifications"
    assert finding.origin == "overlays/prod/pdb.yaml"
    assert "minAvailable: 0 allows 2 disruption(s)" in finding.message and "min-scale 2" in finding.message


def test_the_environment_fact_chooses_the_rule(tree_copy: Path) -> None:
    # prod's overlay under a made-up environment whose facts allow scale to zero: the same render passes.
    add_environment(tree_copy, MADE_UP_ENV, like="prod", scale_to_zero=True)
    render = render_env(MADE_UP_ENV, tree_copy)
    ksvc(render)["spec"]["template"]["metadata"]["annotations"][MIN_SCALE] = "0"
    assert run_check(capacity.check_no_cold_start, render, root=tree_copy) == []
