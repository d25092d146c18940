"""The stack's Kafka is sized as a cluster's would be (docs/operations.md, "Record size"): what `make e2e` creates
the source and dead-letter topics with, and what its receivers' producers may send, come from the render (the
Broker's topic is the controller's: it creates it from the Broker ConfigMap)."""

import copy

import pytest

from gitops.core.render import RenderResult
from gitops.e2e import stack
from gitops.model.record_size import BROKER_DATA_PLANE, SINK_DATA_PLANE


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_topics_and_producers_follow_the_render(renders: dict[str, RenderResult], env: str):
    render = renders[env]
    objects = copy.deepcopy(render.objects)
    configs = stack.topic_configs(objects, render.stand_ins)
    assert configs["notifications"] == configs["loggings"] == {"max.message.bytes": "1048576"}
    assert configs["knative-dead-letters-notifications"] == {"max.message.bytes": "1069056"}
    assert not any(topic.startswith("knative-broker-") for topic in configs)  # the controller creates that one
    everything = objects + render.stand_ins
    assert stack.render_producer_size(everything, BROKER_DATA_PLANE) == 1064960
    assert stack.render_producer_size(everything, SINK_DATA_PLANE) == 1069056
    assert stack.render_producer_size(objects, SINK_DATA_PLANE) is None  # no stand-ins: upstream's file


def test_the_dead_letter_scenario_restores_the_size_the_stack_created(renders: dict[str, RenderResult]):
    """dead-letter-sink-refuses shrinks the dead-letter topic and puts back what the stack sized it to (a call with
    the render-contract stack's old signature stopped `make e2e ENV=prod` with a TypeError there)."""
    from types import SimpleNamespace

    from gitops.e2e import scenarios

    render = renders["prod"]
    fake = SimpleNamespace(objects=render.objects, stand_ins=render.stand_ins)
    assert scenarios.topic_configs_of(fake)["knative-dead-letters-notifications"] == {"max.message.bytes": "1069056"}  # type: ignore[arg-type]
