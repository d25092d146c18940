"""Pod Security checks, evaluated by the upstream library (bin/pod-security) on broken copies of the render."""

from gitops.validate.checks import pod_security
from tests.support import obj, run_check

ENFORCE = "pod-security.kubernetes.io/enforce"


def namespace(render, name):
    return obj(render, "", "Namespace", "", name)


def test_unlabelled_namespace_in_prod(broken):
    render = broken("prod")
    namespace(render, "notifications")["metadata"]["labels"].pop(ENFORCE)
    messages = [str(f) for f in run_check(pod_security.check_pod_security, render)]
    assert any(m.startswith("[prod] Namespace notifications (base/eventing/namespace.yaml): no ") for m in messages)


def test_pod_refused_at_the_enforced_level(broken):
    """knative-eventing at restricted: the upstream evaluator refuses the source dispatcher (no runAsNonRoot)."""
    render = broken("prod")
    namespace(render, "knative-eventing")["metadata"]["labels"][ENFORCE] = "restricted"
    messages = [str(f) for f in run_check(pod_security.check_pod_security, render)]
    assert any(
        m.startswith("[prod] StatefulSet knative-eventing/kafka-source-dispatcher (https://")
        and "refuses its pods" in m
        and "runAsNonRoot" in m
        for m in messages
    ), messages


def test_our_pod_loses_hardening(broken):
    render = broken("prod")
    ksvc = obj(render, "serving.knative.dev", "Service", "notifications", "notifications")
    ksvc["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("allowPrivilegeEscalation")
    messages = [str(f) for f in run_check(pod_security.check_pod_security, render)]
    assert any(
        m.startswith(
            "[prod] Service.serving.knative.dev notifications/notifications (apps/notifications/deploy/service.yaml)"
        )
        and "allowPrivilegeEscalation" in m
        for m in messages
    ), messages


def test_namespace_looser_than_its_pods(broken):
    render = broken("dev")
    namespace(render, "kourier-system")["metadata"]["labels"][ENFORCE] = "baseline"
    messages = [str(f) for f in run_check(pod_security.check_pod_security, render)]
    assert any(
        m.startswith("[dev] Namespace kourier-system (https://") and "every pod in it passes restricted" in m
        for m in messages
    ), messages


def test_unknown_level(broken):
    render = broken("prod")
    namespace(render, "notifications")["metadata"]["labels"][ENFORCE] = "strict"
    messages = [str(f) for f in run_check(pod_security.check_pod_security, render)]
    assert any("Namespace notifications" in m and "'strict' is not one of" in m for m in messages), messages


def test_missing_evaluator_is_one_clear_finding(renders, monkeypatch):
    def missing(name):
        raise pod_security.ToolMissing(f"{name} not found in bin or on PATH: run `make setup`")

    monkeypatch.setattr(pod_security, "tool", missing)
    messages = [str(f) for f in run_check(pod_security.check_pod_security, renders["prod"])]
    assert messages == [
        "[prod] - (bin/pod-security): cannot run the Pod Security evaluator: pod-security not found in bin or on "
        "PATH: run `make setup`  <pod-security>"
    ]


def test_kafka_data_plane_is_evaluated_from_its_sources(broken):
    """The release asset is not in the offline render: the receiver and dispatcher rebuilt from the 1.23 sources
    are what prove knative-eventing's level (restricted would refuse them; baseline passes)."""
    render = broken("prod")
    ns = obj(render, "", "Namespace", "", "knative-eventing")
    ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "restricted"
    messages = [str(f) for f in run_check(pod_security.check_pod_security, render)]
    for name in (
        "Deployment knative-eventing/kafka-broker-receiver",
        "StatefulSet knative-eventing/kafka-broker-dispatcher",
    ):
        assert any(
            m.startswith(f"[prod] {name} (https://")
            and "runAsNonRoot != true" in m
            and "checked against the 1.23.0 sources, not the release bytes" in m
            for m in messages
        ), messages


def test_privileged_receiver_is_refused_at_baseline(broken):
    render = broken("prod")
    receiver = next(o for o in render.stand_ins if o["metadata"]["name"] == "kafka-broker-receiver")
    receiver["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    messages = [str(f) for f in run_check(pod_security.check_pod_security, render)]
    assert any("kafka-broker-receiver" in m and "enforce=baseline" in m and "privileged" in m for m in messages), (
        messages
    )
