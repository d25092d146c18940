"""Fixtures of the events tests: a render holding a Kafka Broker and the ConfigMap it names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest


def broker_configmap(servers: str, **extra: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kafka-broker-config", "namespace": "notifications"},
        "data": {"bootstrap.servers": servers, "default.topic.partitions": "3", **extra},
    }


@pytest.fixture
def fake_render(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Replace gitops.core.render.render_env (tested elsewhere) with one returning a Kafka Broker and its ConfigMap."""
    import gitops.core.render

    def install(servers: str, **extra: str) -> None:
        @dataclass
        class FakeRender:
            objects: list[dict[str, Any]]

        decoy = broker_configmap("decoy:9092")
        decoy["metadata"]["namespace"] = "knative-eventing"  # the upstream placeholder must not be picked
        broker = {
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Broker",
            "metadata": {
                "name": "events",
                "namespace": "notifications",
                "annotations": {"eventing.knative.dev/broker.class": "Kafka"},
            },
            "spec": {"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": "kafka-broker-config"}},
        }
        objects = [decoy, broker, broker_configmap(servers, **extra)]
        monkeypatch.setattr(gitops.core.render, "render_env", lambda env: FakeRender(objects))

    return install
