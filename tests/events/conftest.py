"""Fixtures of the events tests: a render holding only a Broker ConfigMap."""

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
    """Replace gitops.core.render.render_env (tested elsewhere) with one returning a Broker ConfigMap."""
    import gitops.core.render

    def install(servers: str, **extra: str) -> None:
        @dataclass
        class FakeRender:
            objects: list[dict[str, Any]]

        decoy = broker_configmap("decoy:9092")
        decoy["metadata"]["namespace"] = "knative-eventing"  # the upstream placeholder must not be picked
        objects = [decoy, broker_configmap(servers, **extra)]
        monkeypatch.setattr(gitops.core.render, "render_env", lambda env: FakeRender(objects))

    return install
