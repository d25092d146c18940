"""Capacity the render cannot use or must not drop: scale bounds against ordered delivery, warm pods against drains.

Two judgments (docs/checks.md gives each rule in one line):
- Ordered delivery has at most one event in flight per Broker partition per Trigger (the Kafka dispatcher's
  ordered mode waits for each response before the next record: eventing-kafka-broker knative-v1.23.0
  dispatcher OrderedConsumerVerticle). A subscriber only ordered Triggers feed can never have more requests in
  flight than the sum of their Broker topics' partitions, so a max-scale above that sum is pods that can never
  get a request: capacity the render cannot use, which a reviewer takes for headroom. Held wherever every Trigger
  to a Knative Service is ordered.
- An environment whose environments.yaml says `scale_to_zero: false` promises no cold start: every Knative Service
  a Trigger delivers to keeps min-scale >= 1 (autoscaling.knative.dev/min-scale, serving's KPA), and no
  PodDisruptionBudget selecting its pods lets a drain evict all of them at that floor (disruptionsAllowed as the
  disruption controller computes it, gitops/model/disruption.py).
"""

from collections.abc import Iterator

from gitops.core import environments, manifests
from gitops.core.manifests import Obj, dig
from gitops.model.disruption import disruptions_allowed
from gitops.model.eventing import DELIVERY_ORDER, broker_configmap, trigger_broker
from gitops.model.knative import resolve_destination
from gitops.model.pods import KSVC_POD_LABEL, selector_matches
from gitops.model.serving import knative_services
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

# The rules docs/checks.md prints under "Judgments" (gitops/validate/registry.py format_catalogue).
JUDGMENT = (
    "`scale-capacity`: (1) wherever every Trigger to a Knative Service is ordered, its max-scale is at most the sum of "
    "those Triggers' Broker topic partitions. Why: the Kafka dispatcher's ordered mode keeps one event in flight per "
    "partition, so no more requests than partitions ever reach the Service and pods above that never get one; a "
    "reviewer takes them for headroom. (2) Chosen by `scale_to_zero` in environments.yaml: where it is false (no cold "
    "start promised), every Knative Service a Trigger delivers to keeps min-scale >= 1, and no PodDisruptionBudget "
    "selecting its pods allows as many disruptions as that floor. Why: at zero pods, or after a drain evicted all of "
    "them, the next event waits for a cold start (image pull, Python start-up, readiness)."
)
MIN_SCALE = "autoscaling.knative.dev/min-scale"
MAX_SCALE = "autoscaling.knative.dev/max-scale"
PARTITIONS = "default.topic.partitions"


def _annotation(ksvc: Obj, name: str) -> int | None:
    value = str((dig(ksvc, "spec", "template", "metadata", "annotations") or {}).get(name, ""))
    return int(value) if value.isdigit() else None


def _triggers_to(objects: list[Obj], ksvc: Obj) -> list[Obj]:
    key = manifests.ObjKey.of(ksvc)
    found = []
    for trigger in manifests.of_kind(objects, "eventing.knative.dev", "Trigger"):
        target = resolve_destination(objects, trigger, dig(trigger, "spec", "subscriber"), "spec.subscriber").target
        if target is not None and manifests.ObjKey.of(target) == key:
            found.append(trigger)
    return found


@env_check("scale-capacity")
def check_max_scale_within_ordered_inflight(ctx: EnvContext) -> Iterator[Finding]:
    """Max-scale of a Service fed only by ordered Triggers <= their Broker partitions' sum (more pods never get work).

    The rule and why: JUDGMENT below (docs/checks.md, "Judgments")."""
    for ksvc in knative_services(ctx.objects):
        triggers = _triggers_to(ctx.objects, ksvc)
        if not triggers or any(
            (manifests.meta(t).get("annotations") or {}).get(DELIVERY_ORDER) != "ordered" for t in triggers
        ):
            continue
        max_scale = _annotation(ksvc, MAX_SCALE)
        if max_scale is None or max_scale == 0:
            continue
        inflight, parts, files = 0, [], set()
        for trigger in triggers:
            broker = trigger_broker(ctx.objects, trigger)
            config = broker_configmap(ctx.objects, broker) if broker else None
            value = str(((config or {}).get("data") or {}).get(PARTITIONS, ""))
            if config is None or not value.isdigit():
                break
            inflight += int(value)
            parts.append(f"{manifests.meta(trigger).get('name')} {value}")
            files.add(ctx.render.field_origin(manifests.ObjKey.of(config), f"data[{PARTITIONS}]"))
        else:
            if max_scale <= inflight:
                continue
            scale_file = ctx.render.field_origin(
                manifests.ObjKey.of(ksvc), f"spec.template.metadata.annotations[{MAX_SCALE}]"
            )
            yield ctx.finding(
                "scale-capacity",
                ksvc,
                f"max-scale {max_scale} ({scale_file}) > {inflight} events ever in flight: every Trigger to it "
                f"delivers in order, one event per Broker partition at a time ({' + '.join(parts)} partitions, "
                f"{', '.join(sorted(files))}), so {max_scale - inflight} of its pods can never get a request. Lower "
                f"max-scale to {inflight}, or raise the partitions (Kafka tooling, then {PARTITIONS})",
                field=f"spec.template.metadata.annotations[{MAX_SCALE}]",
                origin=scale_file,
            )


@env_check("scale-capacity")
def check_no_cold_start(ctx: EnvContext) -> Iterator[Finding]:
    """scale_to_zero: false (environments.yaml): a subscriber keeps min-scale >= 1 and no budget drains all its pods.

    The rule and why: JUDGMENT below (docs/checks.md, "Judgments")."""
    if environments.load(ctx.root).get(ctx.env).scale_to_zero:
        return
    pdbs = list(manifests.of_kind(ctx.objects, "policy", "PodDisruptionBudget"))
    for ksvc in knative_services(ctx.objects):
        if not _triggers_to(ctx.objects, ksvc):
            continue
        key = manifests.ObjKey.of(ksvc)
        floor = _annotation(ksvc, MIN_SCALE) or 0
        promise = f"environments.yaml says scale_to_zero: false for {ctx.env} (no cold start)"
        if floor < 1:
            yield ctx.finding(
                "scale-capacity",
                ksvc,
                f"min-scale {floor} ({ctx.render.field_origin(key, f'spec.template.metadata.annotations[{MIN_SCALE}]')})"
                f": it scales to zero when idle and the next event waits for a cold start, but {promise}; set "
                f"{MIN_SCALE} to at least 1",
                field=f"spec.template.metadata.annotations[{MIN_SCALE}]",
            )
            continue
        name = manifests.meta(ksvc).get("name", "")
        labels = {**(dig(ksvc, "spec", "template", "metadata", "labels") or {}), KSVC_POD_LABEL: name}
        for pdb in pdbs:
            if manifests.meta(pdb).get("namespace") != manifests.meta(ksvc).get("namespace"):
                continue
            if not dig(pdb, "spec", "selector") or not selector_matches(dig(pdb, "spec", "selector"), labels):
                continue
            allowed = disruptions_allowed(pdb, floor)
            if allowed < floor:
                continue
            spec = pdb.get("spec") or {}
            rule = next((f"{k}: {spec[k]}" for k in ("maxUnavailable", "minAvailable") if spec.get(k) is not None), "")
            yield ctx.finding(
                "scale-capacity",
                pdb,
                f"{rule} allows {allowed} disruption(s) at {key}'s min-scale {floor} "
                f"({ctx.render.field_origin(key, f'spec.template.metadata.annotations[{MIN_SCALE}]')}): a drain may "
                f"evict every warm pod and the next event waits for a cold start, but {promise}; keep one "
                "(minAvailable: 1, or maxUnavailable below min-scale)",
                field="spec",
            )
