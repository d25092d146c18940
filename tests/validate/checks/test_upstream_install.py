"""Checks that the upstream install is applied whole and untouched, against broken copies of the render."""

from gitops.validate.checks import upstream_install
from tests.support import obj, run_check
from tests.validate.checks.ksvc_support import NS, ksvc


def test_example_checksum_matches_knative_pkg(renders):
    cms = [
        o for o in renders["dev"].objects if "knative.dev/example-checksum" in (o["metadata"].get("annotations") or {})
    ]
    assert len(cms) > 10
    for cm in cms:
        assert (
            upstream_install.example_checksum(cm["data"]["_example"])
            == cm["metadata"]["annotations"]["knative.dev/example-checksum"]
        )


def test_edited_example_is_reported(broken):
    render = broken("dev")
    network = obj(render, "", "ConfigMap", "knative-serving", "config-network")
    network["data"]["_example"] = network["data"]["_example"].replace("ingress-class", "ingress.class", 1)
    findings = run_check(upstream_install.check_config_examples_untouched, render)
    assert [f.obj for f in findings] == [
        "ConfigMap knative-serving/config-network"
    ] and "_example was edited" in findings[0].message


def test_missing_kourier_ingress_class(broken):
    render = broken("prod")
    del obj(render, "", "ConfigMap", "knative-serving", "config-network")["data"]["ingress-class"]
    assert any("ingress-class is None" in f.message for f in run_check(upstream_install.check_ingress_class, render))


def test_namespaced_object_without_namespace(broken):
    render = broken("dev")
    del ksvc(render)["metadata"]["namespace"]
    cm = obj(render, "", "ConfigMap", NS, "kafka-broker-config")
    cm["metadata"]["namespace"] = "notification"
    messages = [f.message for f in run_check(upstream_install.check_namespaces, render)]
    assert any("without metadata.namespace" in m for m in messages)
    assert any("namespace 'notification' is neither in the render" in m for m in messages)


def test_kafka_source_without_its_data_plane(broken):
    """The original article applied only the controller: KafkaSources were accepted but never dispatched."""
    render = broken("dev")
    render.objects.remove(obj(render, "apps", "StatefulSet", "knative-eventing", "kafka-source-dispatcher"))
    findings = run_check(upstream_install.check_data_planes, render)
    assert [f.obj for f in findings] == ["KafkaSource notifications/kafka-source"]
    assert "eventing-kafka-source.yaml" in findings[0].message
    render.omitted.clear()  # the broker and sink data planes are left out offline; silently missing is a finding
    messages = [str(f) for f in run_check(upstream_install.check_data_planes, render)]
    assert any("kafka-broker-dispatcher" in m for m in messages)
    assert any(
        m.startswith(
            "[dev] KafkaSink notifications/dead-letters (base/eventing/dead-letters.yaml): KafkaSink needs the "
            "kafka-sink-receiver Deployment from eventing-kafka-sink.yaml"
        )
        for m in messages
    ), messages
