"""A minimal Kubernetes REST client for the e2e's own API server: discovery, server-side apply, get/list, status.

Only what the run needs, over httpx (already a dependency): Argo CD's sync talks to the same endpoints (server-side
apply is `PATCH` with `application/apply-patch+yaml`, sigs.k8s.io/structured-merge-diff), so nothing here is a
reading of Kubernetes' rules; the API server applies them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gitops.core.manifests import Obj

FIELD_MANAGER = "argocd-controller"  # the manager Argo CD's server-side apply uses (controller/sync)


class KubeError(RuntimeError):
    def __init__(self, status: int, text: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {text[:500]}")
        self.status = status


@dataclass(frozen=True)
class Resource:
    group_version: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None, name: str | None = None) -> str:
        prefix = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        ns = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{prefix}{ns}/{self.plural}" + (f"/{name}" if name else "")


class Kube:
    def __init__(self, server: str, token: str, ca_file: Path) -> None:
        self.server = server
        self.client = httpx.Client(
            base_url=server, verify=str(ca_file), headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self._resources: dict[tuple[str, str], Resource] = {}
        # The mutating admission an API server with Knative's webhooks applies to Knative objects (this one calls
        # none): set by the stack to gitops.upstream.knative_admission.mutate over the render's context.
        self.admit: Callable[[Obj], Obj] | None = None

    def close(self) -> None:
        self.client.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, repeated while the API server answers 429 (e.g. "storage is (re)initializing" for a CRD just
        established): what client-go's rest client does with Retry-After."""
        for _ in range(60):
            response = self.client.request(method, url, **kwargs)
            if response.status_code != 429:
                return response
            time.sleep(float(response.headers.get("Retry-After", "1") or 1))
        return response

    def _check(self, response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code >= 300:
            raise KubeError(response.status_code, response.text, what)
        return response.json() if response.content else {}

    def version(self) -> dict[str, Any]:
        return self._check(self._send("GET", "/version"), "version")

    def resource(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        if key not in self._resources:
            prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            listing = self._check(self._send("GET", prefix), f"discovery {api_version}")
            for r in listing.get("resources", []):
                if "/" not in r["name"]:
                    self._resources[(api_version, r["kind"])] = Resource(api_version, r["name"], r["namespaced"])
        if key not in self._resources:
            raise KubeError(404, f"no resource for kind {kind} in {api_version}", "discovery")
        return self._resources[key]

    def forget_discovery(self) -> None:
        self._resources.clear()

    def path_of(self, obj: Obj) -> str:
        meta = obj["metadata"]
        return self.resource(obj["apiVersion"], obj["kind"]).path(meta.get("namespace"), meta["name"])

    def apply(self, obj: Obj, manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply, forcing conflicts (Argo CD's `ServerSideApply=true` sync option does the same);
        Knative objects first through `admit`, as through Knative's mutating webhooks."""
        if self.admit is not None and obj["apiVersion"].partition("/")[0].endswith("knative.dev"):
            obj = self.admit(obj)
        response = self._send(
            "PATCH",
            self.path_of(obj),
            params={"fieldManager": manager, "force": "true"},
            content=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        return self._check(
            response, f"apply {obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
        )

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        response = self._send("GET", self.resource(api_version, kind).path(namespace, name))
        if response.status_code == 404:
            return None
        return self._check(response, f"get {kind} {namespace}/{name}")

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, selector: str = ""
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else {}
        response = self._send("GET", self.resource(api_version, kind).path(namespace), params=params)
        items = self._check(response, f"list {kind}").get("items", [])
        for item in items:  # a list's items carry no apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def create(self, obj: Obj) -> dict[str, Any]:
        meta = obj["metadata"]
        path = self.resource(obj["apiVersion"], obj["kind"]).path(meta.get("namespace"))
        return self._check(self._send("POST", path, content=json.dumps(obj)), f"create {obj['kind']} {meta['name']}")

    def replace(self, obj: Obj) -> dict[str, Any]:
        """PUT the whole object (metadata.resourceVersion guards against a concurrent change)."""
        response = self._send("PUT", self.path_of(obj), content=json.dumps(obj))
        return self._check(response, f"replace {obj['kind']} {obj['metadata']['name']}")

    def delete(self, obj: Obj) -> None:
        response = self._send("DELETE", self.path_of(obj))
        if response.status_code not in (200, 202, 404):
            self._check(response, f"delete {obj['kind']} {obj['metadata']['name']}")

    def patch_status(self, obj: Obj, status: dict[str, Any]) -> dict[str, Any]:
        response = self._send(
            "PATCH",
            self.path_of(obj) + "/status",
            content=json.dumps({"status": status}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        return self._check(response, f"status of {obj['kind']} {obj['metadata']['name']}")

    def token(
        self,
        namespace: str,
        service_account: str,
        audience: str | None = None,
        bound_pod: tuple[str, str] | None = None,
        expiration_s: int = 86400,
    ) -> str:
        """A TokenRequest for a ServiceAccount (what the kubelet mounts into its pods; `bound_pod` (name, uid) binds
        it to the pod as the kubelet's does)."""
        spec: dict[str, Any] = {"expirationSeconds": expiration_s}
        if audience:
            spec["audiences"] = [audience]
        if bound_pod:
            spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": bound_pod[0], "uid": bound_pod[1]}
        response = self._send(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            content=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
        )
        return str(self._check(response, f"token for {namespace}/{service_account}")["status"]["token"])
