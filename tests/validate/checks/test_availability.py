"""Availability checks: gated PodSpec fields, the subscriber's spread and budget, Knative HA in production."""

from gitops.core import manifests
from gitops.validate.checks import availability
from tests.support import obj, run_check

NS = "notifications"
KSVC = f"[prod] Service.serving.knative.dev {NS}/notifications (apps/notifications/deploy/service.yaml)"


def ksvc(render):
    return obj(render, "serving.knative.dev", "Service", NS, "notifications")


def test_spread_without_its_feature_flag(broken):
    render = broken("prod")
    obj(render, "", "ConfigMap", "knative-serving", "config-features")["data"].pop(
        "kubernetes.podspec-topologyspreadconstraints"
    )
    messages = [str(f) for f in run_check(availability.check_gated_pod_fields, render)]
    assert any(m.startswith(KSVC) and "kubernetes.podspec-topologyspreadconstraints: enabled" in m for m in messages), (
        messages
    )


def test_affinity_is_gated_too(broken):
    render = broken("dev")
    ksvc(render)["spec"]["template"]["spec"]["affinity"] = {"podAntiAffinity": {}}
    messages = [str(f) for f in run_check(availability.check_gated_pod_fields, render)]
    assert any("[dev] Service.serving.knative.dev" in m and "kubernetes.podspec-affinity" in m for m in messages)


def test_pods_not_spread_over_nodes(broken):
    render = broken("prod")
    spec = ksvc(render)["spec"]["template"]["spec"]
    spec["topologySpreadConstraints"] = [c for c in spec["topologySpreadConstraints"] if "zone" in c["topologyKey"]]
    messages = [str(f) for f in run_check(availability.check_subscriber_availability, render)]
    assert any(m.startswith(KSVC) and "nothing keeps the pods on different nodes" in m for m in messages), messages


def test_budget_selecting_nothing(broken):
    render = broken("prod")
    obj(render, "policy", "PodDisruptionBudget", NS, "notifications")["spec"]["selector"] = {
        "matchLabels": {"app": "notifications"}
    }
    messages = [str(f) for f in run_check(availability.check_subscriber_availability, render)]
    assert any(m.startswith(KSVC) and "no PodDisruptionBudget" in m for m in messages), messages


def test_budget_allowing_every_pod_out(broken):
    render = broken("prod")
    spec = obj(render, "policy", "PodDisruptionBudget", NS, "notifications")["spec"]
    spec.pop("minAvailable")
    spec["maxUnavailable"] = 2
    messages = [str(f) for f in run_check(availability.check_subscriber_availability, render)]
    assert any(m.startswith(KSVC) and "no PodDisruptionBudget" in m for m in messages), messages


def test_hpa_minimum_of_one(broken):
    render = broken("prod")
    obj(render, "autoscaling", "HorizontalPodAutoscaler", "knative-serving", "activator")["spec"]["minReplicas"] = 1
    messages = [str(f) for f in run_check(availability.check_control_plane_ha, render)]
    assert any(
        m.startswith("[prod] HorizontalPodAutoscaler knative-serving/activator (https://") and "minReplicas 1 < 2" in m
        for m in messages
    ), messages


def test_single_replica_controller(broken):
    render = broken("prod")
    obj(render, "apps", "Deployment", "knative-eventing", "eventing-controller")["spec"].pop("replicas")
    messages = [str(f) for f in run_check(availability.check_control_plane_ha, render)]
    assert any(
        m.startswith("[prod] Deployment knative-eventing/eventing-controller (overlays/prod/ha.yaml)")
        and "replicas 1 < 2" in m
        for m in messages
    ), messages


def test_dispatchers_min_replicas(broken):
    render = broken("prod")
    controller = obj(render, "apps", "Deployment", "knative-eventing", "kafka-controller")
    for container in controller["spec"]["template"]["spec"]["containers"]:
        for env in container.get("env") or []:
            if env["name"] == "DISPATCHERS_MIN_REPLICAS":
                env["value"] = "0"
    messages = [str(f) for f in run_check(availability.check_control_plane_ha, render)]
    assert any("kafka-controller" in m and "DISPATCHERS_MIN_REPLICAS=0" in m for m in messages), messages


def upstream_budget(render, ns, name):
    """Put back the PDB as upstream ships it (before prod's ha.yaml patch): minAvailable 80%."""
    spec = obj(render, "policy", "PodDisruptionBudget", ns, name)["spec"]
    spec.pop("maxUnavailable", None)
    spec["minAvailable"] = "80%"


def test_upstream_80_percent_budgets_block_every_drain(broken):
    render = broken("prod")
    upstream_budget(render, "knative-serving", "activator-pdb")
    upstream_budget(render, "kourier-system", "3scale-kourier-gateway-pdb")
    messages = [str(f) for f in run_check(availability.check_drains_allowed, render)]
    assert any(
        m.startswith("[prod] PodDisruptionBudget knative-serving/activator-pdb (overlays/prod/ha.yaml)")
        and "minAvailable: 80% allows 0 disruptions at 2 pod(s)" in m
        and "HorizontalPodAutoscaler knative-serving/activator minReplicas 2" in m
        and "rounds the percentage up" in m
        for m in messages
    ), messages
    assert any("3scale-kourier-gateway-pdb" in m for m in messages), messages


def test_subscriber_budget_keeping_every_warm_pod(broken):
    render = broken("prod")
    obj(render, "policy", "PodDisruptionBudget", NS, "notifications")["spec"]["minAvailable"] = 2
    messages = [str(f) for f in run_check(availability.check_drains_allowed, render)]
    assert any(
        m.startswith("[prod] PodDisruptionBudget notifications/notifications (overlays/prod/pdb.yaml)")
        and "minAvailable: 2 allows 0 disruptions at 2 pod(s)" in m
        and "autoscaling.knative.dev/min-scale 2" in m
        for m in messages
    ), messages


def test_budgets_are_production_policy_only(broken):
    render = broken("dev")
    for pdb in render.objects:
        if pdb["kind"] == "PodDisruptionBudget":
            pdb["spec"] = {"minAvailable": "100%", "selector": pdb["spec"]["selector"]}
    assert run_check(availability.check_drains_allowed, render) == []


def test_single_kafka_receiver_is_judged_on_its_sources(broken):
    render = broken("prod")
    receiver = next(o for o in render.stand_ins if o["metadata"]["name"] == "kafka-broker-receiver")
    receiver["spec"].pop("replicas")  # today's prod: upstream sets none, and no patch of ours sets it
    render.patches.pop(manifests.ObjKey.of(receiver))
    messages = [str(f) for f in run_check(availability.check_control_plane_ha, render)]
    assert any(
        m.startswith("[prod] Deployment knative-eventing/kafka-broker-receiver (https://")
        and "rebuilt from eventing-kafka-broker-knative-v1.23.0/data-plane/config/broker/500-receiver.yaml" in m
        and "replicas 1 < 2" in m
        and "checked against the 1.23.0 sources, not the release bytes" in m
        for m in messages
    ), messages


def test_hostname_spread_ignoring_taints_caps_scaling(broken):
    render = broken("prod")
    for constraint in ksvc(render)["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        constraint.pop("nodeTaintsPolicy", None)  # today's prod
    messages = [str(f) for f in run_check(availability.check_subscriber_availability, render)]
    assert any(
        m.startswith("[prod] Service.serving.knative.dev notifications/notifications (overlays/prod/availability.yaml)")
        and "nodeTaintsPolicy unset (Ignore)" in m
        and "set nodeTaintsPolicy: Honor" in m
        for m in messages
    ), messages


def test_prod_spread_honours_taints(renders):
    render = renders["prod"]
    spreads = availability._hard_hostname_spreads(ksvc(render))
    assert spreads and all(c["nodeTaintsPolicy"] == "Honor" for c in spreads)


def test_leader_election_standby_must_be_said(broken, tmp_path):
    """Today's ha.yaml claimed buckets split the work while config-leader-election leaves buckets at 1."""
    import shutil

    from gitops.core.paths import REPO_ROOT

    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "overlays", root / "overlays")
    shutil.copy(REPO_ROOT / "environments.yaml", root / "environments.yaml")
    ha = root / "overlays" / "prod" / "ha.yaml"
    ha.write_text(
        "# Leader-elected controllers split their work into buckets, so the second replica also takes load.\n"
        + "\n".join(line for line in ha.read_text().splitlines() if "standby" not in line.lower())
    )
    render = broken("prod")
    messages = [str(f) for f in run_check(availability.check_ha_replicas_described, render, root)]
    assert any(
        m.startswith("[prod] Deployment knative-serving/controller (overlays/prod/ha.yaml)")
        and "leader-election buckets 1" in m
        and 'say "standby" in overlays/prod/ha.yaml' in m
        for m in messages
    ), messages
    # Buckets really configured: the second replica shares the work, nothing to say.
    leader = obj(render, "", "ConfigMap", "knative-serving", "config-leader-election")
    leader.setdefault("data", {})["buckets"] = "2"
    messages = [str(f) for f in run_check(availability.check_ha_replicas_described, render, root)]
    assert not any("knative-serving/controller" in m for m in messages), messages


def test_kafka_controller_reads_its_own_leader_election_configmap(renders):
    render = renders["prod"]
    controller = obj(render, "apps", "Deployment", "knative-eventing", "kafka-controller")
    assert availability.leader_election_buckets(render.objects, controller) == 1
    kafka = obj(render, "", "ConfigMap", "knative-eventing", "config-kafka-leader-election")
    patched = {**kafka, "data": {**kafka["data"], "buckets": "3"}}
    objects = [patched if o is kafka else o for o in render.objects]
    assert availability.leader_election_buckets(objects, controller) == 3
