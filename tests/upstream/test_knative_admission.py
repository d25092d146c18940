"""bin/knative-admission's `mutate` mode: what make e2e applies, since its API server calls no webhooks."""

import copy

import pytest

from gitops.core import manifests
from gitops.core.render import RenderResult
from gitops.upstream import knative_admission
from tests.support import obj

NS = "notifications"


def trigger(render: RenderResult) -> manifests.Obj:
    return obj(render, "eventing.knative.dev", "Trigger", NS, "notifications")


def configmap(render: RenderResult, namespace: str, name: str) -> manifests.Obj:
    return obj(render, "", "ConfigMap", namespace, name)


def test_mutate_applies_the_defaulting_webhooks_as_the_api_server_would(renders):
    """make e2e applies Knative objects through `knative-admission mutate` (its API server calls no webhooks): a
    Trigger gets the eventing.knative.dev/broker label kafka-controller lists Triggers by when their Broker changes;
    a ConfigMap is left as it is; nothing carries a status."""
    render = renders["prod"]
    t, cm = trigger(render), configmap(render, "knative-eventing", "config-features")
    after_trigger, after_cm = knative_admission.mutate([t, cm], knative_admission.context_objects(render.objects))
    assert "eventing.knative.dev/broker" not in (t["metadata"].get("labels") or {})
    assert after_trigger["metadata"]["labels"]["eventing.knative.dev/broker"] == t["spec"]["broker"]
    assert after_trigger["spec"]["subscriber"] == t["spec"]["subscriber"]
    assert after_cm == cm and "status" not in after_trigger


def test_mutate_names_an_object_the_webhooks_refuse(renders):
    render = renders["prod"]
    bad = copy.deepcopy(trigger(render))
    bad["spec"]["broker"] = ""
    with pytest.raises(knative_admission.AdmissionUnavailable, match="Trigger notifications/notifications: refused"):
        knative_admission.mutate([bad], knative_admission.context_objects(render.objects))
