"""Knative Service checks (autoscaling, visibility, probes, resources) against broken copies of the render."""

import pytest

from gitops.validate.checks import serving
from tests.support import run_check
from tests.validate.checks.ksvc_support import container, ksvc


def template_annotations(render):
    return ksvc(render)["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "autoscaling.knative.dev/scale-to-zero",
            "false",
            "not a Knative autoscaling annotation: it is accepted and silently ignored",
        ),
        # Values, ranges, min <= max <= max-scale-limit and placement are serving's webhook rules: see
        # tests/validate/test_admission.py.
        ("autoscaling.knative.dev/class", "hpa.autoscaling.knative.dev", "needs serving-hpa.yaml"),
    ],
)
def test_template_autoscaling_annotations(broken, key, value, expected):
    render = broken("prod")
    template_annotations(render)[key] = value
    findings = run_check(serving.check_autoscaling, render)
    assert any(
        expected in f.message and f.obj == "Service.serving.knative.dev notifications/notifications" for f in findings
    ), findings


def test_legacy_camel_case_keys_are_understood(broken):
    render = broken("prod")
    template_annotations(render)["autoscaling.knative.dev/maxScale"] = "20"
    assert run_check(serving.check_autoscaling, render) == []


def test_visibility_misplaced(broken):
    render = broken("prod")
    service = ksvc(render)
    service["metadata"]["labels"].pop("networking.knative.dev/visibility")
    service["metadata"].setdefault("annotations", {})["networking.knative.dev/visibility"] = "cluster-local"
    assert any("is a label, not an annotation" in f.message for f in run_check(serving.check_visibility, render))
    service["metadata"]["labels"]["networking.knative.dev/visibility"] = "internal"
    assert any(
        "must be cluster-local, got 'internal'" in f.message for f in run_check(serving.check_visibility, render)
    )


def test_probe_path_not_served(broken):
    render = broken("dev")
    container(render)["readinessProbe"]["httpGet"]["path"] = "/ready"
    findings = run_check(serving.check_probe_paths, render)
    assert len(findings) == 1 and "readinessProbe GET /ready is not served by apps/notifications" in findings[0].message
    assert findings[0].origin == "apps/notifications/deploy/service.yaml"


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (
            {"requests": {"memory": "512Mi"}, "limits": {"memory": "256Mi"}},
            "requests 512Mi memory but is limited to 256Mi",
        ),
        ({"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}, "requests 2 cpu but is limited to 1500m"),
        ({"requests": {"memory": "128MB"}}, "'128MB' is not a quantity"),
    ],
)
def test_resources(broken, resources, expected):
    render = broken("dev")
    container(render)["resources"] = resources
    assert any(expected in f.message for f in run_check(serving.check_resources, render))


def test_quantity_parsing():
    assert serving.quantity("1500m") == serving.quantity("1.5")
    assert serving.quantity("1Gi") == 1024 * serving.quantity("1Mi")
    assert serving.quantity("1e3") == 1000
    assert serving.quantity("12 Mi") is None


def test_probe_path_is_judged_against_the_image_the_environment_runs(broken, tree_copy):
    """Issue 28: the image dev runs was built without the probe's route (its record says so)."""
    from gitops.model.app_code import code_of_tree, write_record

    render = broken("dev")
    path = container(render)["readinessProbe"]["httpGet"]["path"]
    built = code_of_tree("notifications")
    built["routes"] = [r for r in built["routes"] if r != ["GET", path]]
    write_record(tree_copy, "notifications", container(render)["image"], built)
    (finding,) = run_check(serving.check_probe_paths, render, tree_copy)
    assert f"readinessProbe GET {path} is not served by image {container(render)['image']} (images/" in finding.message
    assert run_check(serving.check_probe_paths, render) == []


@pytest.mark.parametrize(
    ("probe", "handler", "port"),
    [
        ("readinessProbe", "httpGet", 9090),
        ("livenessProbe", "httpGet", "admin"),
        ("livenessProbe", "tcpSocket", 8081),
    ],
)
def test_probe_on_a_port_the_app_does_not_listen_on(broken, probe, handler, port):
    render = broken("prod")
    container(render)[probe] = {handler: {"port": port, **({"path": "/readyz"} if handler == "httpGet" else {})}}
    findings = run_check(serving.check_probe_ports, render)
    assert len(findings) == 1, findings
    found = findings[0]
    assert found.env == "prod" and found.obj == "Service.serving.knative.dev notifications/notifications"
    assert found.origin == "apps/notifications/deploy/service.yaml"
    assert f"{probe} {handler} port {port!r} is not the port the app listens on (8080" in found.message


@pytest.mark.parametrize("port", [8080, "http1", 0])
def test_probe_on_the_serving_port_passes(broken, port):
    render = broken("prod")
    container(render)["readinessProbe"]["httpGet"]["port"] = port
    assert run_check(serving.check_probe_ports, render) == []


def test_probe_port_follows_the_declared_container_port(broken):
    render = broken("dev")
    container(render)["ports"] = [{"name": "h2c", "containerPort": 9000}]
    container(render)["readinessProbe"]["httpGet"]["port"] = 8080
    findings = run_check(serving.check_probe_ports, render)
    assert len(findings) == 1 and "(9000, its containerPort and $PORT)" in findings[0].message


@pytest.mark.parametrize(
    ("move", "where"),
    [
        # overlays/prod/scale.yaml with max-scale two spaces short: a key of the template's metadata.
        (lambda s: s["spec"]["template"]["metadata"], "spec.template.metadata"),
        # a label instead of an annotation
        (lambda s: s["spec"]["template"]["metadata"].setdefault("labels", {}), "spec.template.metadata.labels"),
        # one level too far out: the template itself
        (lambda s: s["spec"]["template"], "spec.template"),
    ],
)
def test_autoscaling_annotation_where_knative_never_reads_it(broken, move, where):
    render = broken("prod")
    service = ksvc(render)
    value = template_annotations(render).pop("autoscaling.knative.dev/max-scale")
    move(service)["autoscaling.knative.dev/max-scale"] = value
    findings = run_check(serving.check_annotation_placement, render)
    assert [str(f) for f in findings] == [
        "[prod] Service.serving.knative.dev notifications/notifications (apps/notifications/deploy/service.yaml): "
        f"autoscaling.knative.dev/max-scale at {where} is never read: Knative reads it from "
        "spec.template.metadata.annotations (misplaced or mis-indented; the Revision gets the cluster default)  "
        "<annotation-placement>"
    ]


def test_mis_indented_max_scale_in_the_prod_overlay_names_the_overlay(tree_copy):
    """Issue 28's trap on disk: overlays/prod/scale.yaml with max-scale two spaces short passes Knative's webhook
    (an unknown key of the template's metadata), and prod would run without its bound."""
    from gitops.core.render import render_env

    scale = tree_copy / "overlays/prod/scale.yaml"
    scale.write_text(
        scale.read_text().replace(
            '        autoscaling.knative.dev/max-scale: "20"', '      autoscaling.knative.dev/max-scale: "20"'
        )
    )
    findings = run_check(serving.check_annotation_placement, render_env("prod", tree_copy), tree_copy)
    assert [(f.env, f.obj, f.origin) for f in findings] == [
        ("prod", "Service.serving.knative.dev notifications/notifications", "overlays/prod/scale.yaml")
    ]
    assert "max-scale at spec.template.metadata is never read" in findings[0].message


def test_rollout_duration_belongs_on_the_service(broken):
    render = broken("prod")
    template_annotations(render)["serving.knative.dev/rollout-duration"] = "60s"
    findings = run_check(serving.check_annotation_placement, render)
    assert len(findings) == 1 and "reads it from metadata.annotations" in findings[0].message
    assert run_check(serving.check_annotation_placement, broken("prod")) == []
