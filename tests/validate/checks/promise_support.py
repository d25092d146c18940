"""Helpers for the tests of the checks of promises that span two files (issue 32)."""

from gitops.core import manifests
from tests.support import obj

NS = "notifications"


def broker(render):
    return obj(render, "eventing.knative.dev", "Broker", NS, "events")


def kafka_source(render):
    return obj(render, "sources.knative.dev", "KafkaSource", NS, "kafka-source")


def data_plane(render, component: str):
    """config-kafka-<component>-data-plane, from the render or (the Broker's asset is left out offline) a stand-in."""
    name = f"config-kafka-{component}-data-plane"
    found = manifests.find(render.objects + render.stand_ins, "", "ConfigMap", "knative-eventing", name)
    assert found is not None, f"{name} not in the {render.env} render or its stand-ins"
    return found


def set_property(configmap, key: str, name: str, value: str) -> None:
    """Set `name=value` in the properties file at data[key] (replacing an existing line)."""
    lines = [line for line in configmap["data"][key].splitlines() if not line.strip().startswith(f"{name}=")]
    configmap["data"][key] = "\n".join([*lines, f"{name}={value}"]) + "\n"
