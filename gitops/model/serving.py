"""Knative Serving as the render describes it: its Services and the label that makes one cluster-local."""

from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import Obj

# serving pkg/apis/networking (VisibilityLabelKey): a label on the Service, "cluster-local" keeps it off the gateway.
VISIBILITY = "networking.knative.dev/visibility"


def knative_services(objects: list[Obj]) -> Iterator[Obj]:
    return manifests.of_kind(objects, "serving.knative.dev", "Service")
