"""How many pods a PodDisruptionBudget lets a drain evict, at the replica count the render gives its pods.

The arithmetic is Kubernetes' disruption controller (k8s.io/kubernetes pkg/controller/disruption/disruption.go,
`getExpectedPodCount` and `updatePdbStatus`; read at v1.35.6 in the Go module cache, unchanged since policy/v1):
- `maxUnavailable` (int or percent): expected = the controllers' scale; desiredHealthy = expected -
  GetScaledValueFromIntOrPercent(maxUnavailable, expected, roundUp=true), floored at 0;
- `minAvailable` int: desiredHealthy = the value, expected = the number of pods;
- `minAvailable` percent: expected = the controllers' scale; desiredHealthy =
  GetScaledValueFromIntOrPercent(minAvailable, expected, roundUp=true);
- disruptionsAllowed = currentHealthy - desiredHealthy, 0 when negative or when expected <= 0.
GetScaledValueFromIntOrPercent (k8s.io/apimachinery pkg/util/intstr/intstr.go) rounds a percentage with
math.Ceil when roundUp is true: `minAvailable: 80%` of 2 pods is 2, of 3 is 3, of 4 is 4 — no eviction ever.
Here every pod is taken as healthy (currentHealthy = expected), the best case a drain can meet.
"""

import math
from dataclasses import dataclass

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.pods import PodTemplate, selector_matches

MIN_SCALE = "autoscaling.knative.dev/min-scale"


def scaled_value(value: int | str, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, "N%" of `total` rounded up (ceil) or down (floor)."""
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%") or not text[:-1].isdigit():
        raise ValueError(f"invalid value for IntOrString: {text!r}")
    exact = int(text[:-1]) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def disruptions_allowed(pdb: Obj, expected: int) -> int:
    """status.disruptionsAllowed the disruption controller computes for `pdb` with `expected` healthy pods."""
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        desired = max(expected - scaled_value(spec["maxUnavailable"], expected, True), 0)
    elif spec.get("minAvailable") is not None:
        desired = scaled_value(spec["minAvailable"], expected, True)
    else:
        return 0  # neither: getExpectedPodCount leaves expectedCount at 0, so nothing may be evicted
    allowed = expected - desired
    return allowed if expected > 0 and allowed > 0 else 0


@dataclass(frozen=True)
class Scale:
    """The pods a workload runs at its floor, and where that number comes from (for the finding)."""

    pods: int
    source: str  # e.g. "HorizontalPodAutoscaler knative-serving/activator minReplicas 2"


def floor_scale(objects: list[Obj], template: PodTemplate) -> Scale:
    """The fewest pods the render runs for `template`: an HPA's minReplicas where one targets the workload, a
    Knative Service's min-scale annotation, else spec.replicas (1 when unset, the API default)."""
    owner = template.owner
    kind, name = owner.get("kind"), manifests.meta(owner).get("name")
    if kind == "Service":
        value = str((dig(owner, "spec", "template", "metadata", "annotations") or {}).get(MIN_SCALE, "0"))
        pods = int(value) if value.isdigit() else 0
        return Scale(pods, f"{MIN_SCALE} {pods}")
    for hpa in manifests.of_kind(objects, "autoscaling", "HorizontalPodAutoscaler"):
        target = dig(hpa, "spec", "scaleTargetRef") or {}
        if (
            manifests.meta(hpa).get("namespace") == template.namespace
            and target.get("kind") == kind
            and target.get("name") == name
        ):
            pods = dig(hpa, "spec", "minReplicas") or 1
            return Scale(pods, f"{manifests.ObjKey.of(hpa)} minReplicas {pods}")
    pods = dig(owner, "spec", "replicas")
    return Scale(1 if pods is None else pods, f"replicas {1 if pods is None else pods}")


def selected_templates(pdb: Obj, templates: list[PodTemplate]) -> list[PodTemplate]:
    """The pod templates in the PDB's namespace whose pods its selector picks (a null selector picks none)."""
    selector = dig(pdb, "spec", "selector")
    ns = manifests.meta(pdb).get("namespace", "")
    if selector is None:
        return []
    return [t for t in templates if t.namespace == ns and selector_matches(selector, t.labels)]
