"""source-offsets: the KafkaSource's initialOffset and its data plane's auto.offset.reset keep every record."""

import pytest

from gitops.validate.checks import offsets
from tests.support import run_check
from tests.validate.checks.promise_support import data_plane, kafka_source, set_property

CONSUMER = "config-kafka-source-consumer.properties"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_shipped_renders_start_at_earliest(renders, env: str) -> None:
    assert run_check(offsets.check_sources_start_at_earliest, renders[env]) == []
    assert run_check(offsets.check_source_waits_for_trigger_offsets, renders[env]) == []


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_latest_or_unset_initial_offset_is_flagged(broken, env: str) -> None:
    for mutate, expected in (
        (lambda s: s["spec"].__setitem__("initialOffset", "latest"), "initialOffset latest:"),
        (lambda s: s["spec"].pop("initialOffset"), "initialOffset latest (unset: the source's default)"),
    ):
        render = broken(env)
        mutate(kafka_source(render))
        (finding,) = run_check(offsets.check_sources_start_at_earliest, render)
        assert finding.env == env and finding.obj == "KafkaSource notifications/kafka-source"
        assert finding.origin == "base/eventing/kafka-source.yaml"
        assert expected in finding.message and "auto.offset.reset=earliest" in finding.message


def test_a_latest_offset_reset_in_the_source_data_plane_is_flagged(broken) -> None:
    render = broken("prod")
    set_property(data_plane(render, "source"), CONSUMER, "auto.offset.reset", "latest")
    (finding,) = run_check(offsets.check_sources_start_at_earliest, render)
    assert finding.obj == "ConfigMap knative-eventing/config-kafka-source-data-plane"
    assert "auto.offset.reset=latest" in finding.message and "base/eventing/kafka-source.yaml" in finding.message


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_a_source_in_the_triggers_wave_is_flagged(broken, env: str) -> None:
    render = broken(env)
    kafka_source(render)["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] = "3"
    (finding,) = run_check(offsets.check_source_waits_for_trigger_offsets, render)
    assert finding.env == env and finding.obj == "KafkaSource notifications/kafka-source"
    assert finding.origin == "base/eventing/kafka-source.yaml"
    assert "sync wave 3 is not after Trigger notifications/" in finding.message
    assert "base/eventing/triggers.yaml" in finding.message and "auto.offset.reset=latest" in finding.message


def test_triggers_that_start_at_earliest_need_no_wave_order(broken) -> None:
    render = broken("prod")
    kafka_source(render)["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] = "3"
    set_property(
        data_plane(render, "broker"), "config-kafka-broker-consumer.properties", "auto.offset.reset", "earliest"
    )
    assert run_check(offsets.check_source_waits_for_trigger_offsets, render) == []
