"""The stack's Kafka is sized as a cluster's would be (docs/operations.md, "Record size"): what `make e2e` creates
each topic with, and what its receiver's producer may send, come from the render."""

import pytest

from gitops.core.render import RenderResult
from gitops.e2e import contracts, stack
from tests.e2e.test_contracts import ADDRESSES, objects_of


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_topics_and_producers_follow_the_render(renders: dict[str, RenderResult], env: str):
    render = renders[env]
    objects = objects_of(render)
    built = contracts.build(objects, ADDRESSES)
    configs = stack.topic_configs(objects, render.stand_ins, built)
    assert configs["notifications"] == configs["loggings"] == {"max.message.bytes": "1048576"}
    broker_topic = next(iter(built.brokers.values()))
    assert configs[broker_topic]["max.message.bytes"] == "1064960"
    assert configs[broker_topic]["retention.ms"] == "604800000"
    assert configs["knative-dead-letters-notifications"] == {"max.message.bytes": "1069056"}
    everything = objects + render.stand_ins
    assert stack.render_producer_size(everything, stack.BROKER_DATA_PLANE) == 1064960
    assert stack.render_producer_size(everything, stack.SINK_DATA_PLANE) == 1069056
    assert stack.render_producer_size(objects, stack.SINK_DATA_PLANE) is None  # no stand-ins: upstream's file
