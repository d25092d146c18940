"""The e2e's API client: Knative objects go through Knative's mutating admission before server-side apply (the
e2e's API server calls no webhooks); everything else is applied as rendered."""

from __future__ import annotations

import json
from typing import Any

import httpx

from gitops.e2e.kube import Kube

DISCOVERY = {
    "/api/v1": [{"name": "configmaps", "kind": "ConfigMap", "namespaced": True}],
    "/apis/eventing.knative.dev/v1": [{"name": "triggers", "kind": "Trigger", "namespaced": True}],
}


def _kube(sent: list[tuple[str, Any]]) -> Kube:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"resources": DISCOVERY[request.url.path]})
        sent.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={})

    kube = Kube.__new__(Kube)
    kube.server, kube._resources, kube.admit = "https://127.0.0.1:1", {}, None
    kube.client = httpx.Client(base_url=kube.server, transport=httpx.MockTransport(handler))
    return kube


def test_knative_objects_are_applied_as_admitted_and_others_as_rendered() -> None:
    sent: list[tuple[str, Any]] = []
    kube = _kube(sent)
    kube.admit = lambda obj: {**obj, "metadata": {**obj["metadata"], "labels": {"admitted": "yes"}}}
    trigger = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"namespace": "n", "name": "t"}}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "n", "name": "c"}}
    kube.apply(trigger)
    kube.apply(cm)
    assert sent[0] == ("/apis/eventing.knative.dev/v1/namespaces/n/triggers/t", {**trigger, "metadata": {
        "namespace": "n", "name": "t", "labels": {"admitted": "yes"}}})  # fmt: skip
    assert sent[1] == ("/api/v1/namespaces/n/configmaps/c", cm)
