"""A node loss or a drain is survived: feature-gated PodSpec fields enabled, the subscriber spread and budgeted,
Knative's own components highly available in production.
"""

from collections.abc import Iterator

from gitops.core import manifests, releases
from gitops.core.manifests import Obj, dig
from gitops.model.disruption import disruptions_allowed, floor_scale, selected_templates
from gitops.model.pods import KSVC_POD_LABEL, namespace_labels, pod_templates, selector_matches
from gitops.model.serving import knative_services
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

# Knative Serving rejects these PodSpec fields unless config-features (knative-serving) enables their flag
# (serving pkg/apis/serving/fieldmask.go + k8s_validation.go; flag names from the 1.23 config-features `_example`,
# where every one of them defaults to "disabled").
GATED_POD_FIELDS = {
    "affinity": "kubernetes.podspec-affinity",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "tolerations": "kubernetes.podspec-tolerations",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "schedulerName": "kubernetes.podspec-schedulername",
    "hostAliases": "kubernetes.podspec-hostaliases",
    "dnsPolicy": "kubernetes.podspec-dnspolicy",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "hostNetwork": "kubernetes.podspec-hostnetwork",
    "hostPID": "kubernetes.podspec-hostpid",
    "hostIPC": "kubernetes.podspec-hostipc",
    "shareProcessNamespace": "kubernetes.podspec-shareprocessnamespace",
    "initContainers": "kubernetes.podspec-init-containers",
    "securityContext": "kubernetes.podspec-securitycontext",
}
FLAG_ON = {"enabled", "allowed"}
HOSTNAME = "kubernetes.io/hostname"
MIN_SCALE = "autoscaling.knative.dev/min-scale"
# Knative's HA docs (knative.dev/docs/serving/config-ha): 2 replicas per component, via the HPA's minReplicas where
# an HPA owns the Deployment. Listed by namespace; a component not in the render is not required.
HA_COMPONENTS = {
    "knative-serving": ("activator", "autoscaler", "controller", "webhook", "net-kourier-controller"),
    "kourier-system": ("3scale-kourier-gateway",),
    "knative-eventing": (
        "eventing-controller",
        "eventing-webhook",
        "kafka-controller",
        "kafka-webhook-eventing",
        "kafka-broker-receiver",
    ),
}
HA_REPLICAS = 2
# kafka-controller scales the dispatcher StatefulSets itself; this env var is upstream's HA knob for them.
DISPATCHERS_MIN_REPLICAS = "DISPATCHERS_MIN_REPLICAS"


def _serving_features(objects: list[Obj]) -> dict[str, str]:
    cm = manifests.find(objects, "", "ConfigMap", "knative-serving", "config-features") or {}
    return cm.get("data") or {}


@env_check("availability")
def check_gated_pod_fields(ctx: EnvContext) -> Iterator[Finding]:
    """PodSpec fields behind a Serving feature flag are used only with that flag enabled in config-features."""
    features = _serving_features(ctx.objects)
    for ksvc in knative_services(ctx.objects):
        spec = dig(ksvc, "spec", "template", "spec") or {}
        for field, flag in GATED_POD_FIELDS.items():
            if field in spec and features.get(flag, "disabled") not in FLAG_ON:
                yield ctx.finding(
                    "availability",
                    ksvc,
                    f"spec.template.spec.{field} is rejected by the Serving webhook unless config-features "
                    f"(knative-serving) sets {flag}: enabled",
                )


def _min_scale(ksvc: Obj) -> int:
    value = str((dig(ksvc, "spec", "template", "metadata", "annotations") or {}).get(MIN_SCALE, "0"))
    return int(value) if value.isdigit() else 0


def _pod_labels(ksvc: Obj) -> dict[str, str]:
    name = manifests.meta(ksvc).get("name", "")
    return {**(dig(ksvc, "spec", "template", "metadata", "labels") or {}), KSVC_POD_LABEL: name}


def _hard_hostname_spreads(ksvc: Obj) -> list[dict]:
    """The DoNotSchedule spread constraints over nodes that select the Service's own pods."""
    spec = dig(ksvc, "spec", "template", "spec") or {}
    labels = _pod_labels(ksvc)
    return [
        c
        for c in spec.get("topologySpreadConstraints") or []
        if c.get("topologyKey") == HOSTNAME
        and c.get("whenUnsatisfiable") == "DoNotSchedule"
        and c.get("labelSelector")
        and selector_matches(c.get("labelSelector"), labels)
    ]


def _spreads_over_nodes(ksvc: Obj) -> bool:
    spec = dig(ksvc, "spec", "template", "spec") or {}
    labels = _pod_labels(ksvc)
    if _hard_hostname_spreads(ksvc):
        return True
    for term in dig(spec, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution") or []:
        if term.get("topologyKey") == HOSTNAME and selector_matches(term.get("labelSelector"), labels):
            return True
    return False


def _budget_keeps_one(pdb: Obj, pods: int) -> bool:
    spec = pdb.get("spec") or {}
    if "minAvailable" in spec:
        value = str(spec["minAvailable"])
        if value.endswith("%"):
            return value[:-1].isdigit() and int(value[:-1]) > 0
        return value.isdigit() and int(value) >= 1
    value = str(spec.get("maxUnavailable", ""))
    if value.endswith("%"):
        return value[:-1].isdigit() and int(value[:-1]) < 100
    return value.isdigit() and int(value) < pods


@env_check("availability")
def check_subscriber_availability(ctx: EnvContext) -> Iterator[Finding]:
    """Production: a Knative Service kept at >= 2 pods has them on different nodes and a budget for drains."""
    if not ctx.is_production:
        return
    pdbs = list(manifests.of_kind(ctx.objects, "policy", "PodDisruptionBudget"))
    for ksvc in knative_services(ctx.objects):
        pods = _min_scale(ksvc)
        if pods < 2:
            continue
        ns = manifests.meta(ksvc).get("namespace")
        if not _spreads_over_nodes(ksvc):
            yield ctx.finding(
                "availability",
                ksvc,
                f"min-scale {pods} but nothing keeps the pods on different nodes: add a topologySpreadConstraint "
                f"(topologyKey {HOSTNAME}, whenUnsatisfiable DoNotSchedule, labelSelector {KSVC_POD_LABEL}) or a "
                "required podAntiAffinity",
            )
        for constraint in _hard_hostname_spreads(ksvc):
            if constraint.get("nodeTaintsPolicy") != "Honor":
                yield ctx.finding(
                    "availability",
                    ksvc,
                    f"topologySpreadConstraint on {HOSTNAME} with DoNotSchedule has nodeTaintsPolicy "
                    f"{constraint.get('nodeTaintsPolicy', 'unset (Ignore)')}: tainted nodes it cannot use count as "
                    "empty domains, so each usable node may hold only one pod and scaling stops at the node count; "
                    "set nodeTaintsPolicy: Honor",
                    field="spec.template.spec.topologySpreadConstraints",
                )
        budgets = [
            p
            for p in pdbs
            if manifests.meta(p).get("namespace") == ns
            and dig(p, "spec", "selector")
            and selector_matches(dig(p, "spec", "selector"), _pod_labels(ksvc))
        ]
        if not any(_budget_keeps_one(p, pods) for p in budgets):
            yield ctx.finding(
                "availability",
                ksvc,
                f"min-scale {pods} but no PodDisruptionBudget selecting its pods ({KSVC_POD_LABEL}) keeps one "
                "during a drain: both may be evicted at once",
            )


def _hpa_for(objects: list[Obj], ns: str, name: str) -> Obj | None:
    return next(
        (
            h
            for h in manifests.of_kind(objects, "autoscaling", "HorizontalPodAutoscaler")
            if manifests.meta(h).get("namespace") == ns and dig(h, "spec", "scaleTargetRef", "name") == name
        ),
        None,
    )


@env_check("availability")
def check_control_plane_ha(ctx: EnvContext) -> Iterator[Finding]:
    """Production: every Knative component runs 2 replicas (HPA minimum where an HPA owns it)."""
    if not ctx.is_production:
        return
    known = namespace_labels(ctx.objects)
    for ns, names in HA_COMPONENTS.items():
        if ns not in known:
            continue
        for name in names:
            # The Kafka Broker receiver comes from a release asset an offline render leaves out: judged then on the
            # Deployment rebuilt from its sources, with the overlay's patches (the finding says so).
            deployment = manifests.find(ctx.with_stand_ins, "apps", "Deployment", ns, name)
            if deployment is None:
                continue
            hpa = _hpa_for(ctx.objects, ns, name)
            if hpa is not None:
                if (dig(hpa, "spec", "minReplicas") or 1) < HA_REPLICAS:
                    yield ctx.finding(
                        "availability",
                        hpa,
                        f"minReplicas {dig(hpa, 'spec', 'minReplicas') or 1} < {HA_REPLICAS}: {name} is a single "
                        "point of failure (raise the HPA minimum, not the Deployment's replicas, which the HPA owns)",
                    )
            elif (dig(deployment, "spec", "replicas") or 1) < HA_REPLICAS:
                yield ctx.finding(
                    "availability",
                    deployment,
                    f"replicas {dig(deployment, 'spec', 'replicas') or 1} < {HA_REPLICAS}: one node loss stops it "
                    "(Knative's HA docs: scale to 2, leader election is on by default)",
                    field="spec.replicas",
                )
    controller = manifests.find(ctx.objects, "apps", "Deployment", "knative-eventing", "kafka-controller")
    if controller is not None:
        env = {
            e.get("name"): e.get("value")
            for c in dig(controller, "spec", "template", "spec", "containers") or []
            for e in c.get("env") or []
        }
        value = str(env.get(DISPATCHERS_MIN_REPLICAS, "0"))
        if not value.isdigit() or int(value) < HA_REPLICAS:
            yield ctx.finding(
                "availability",
                controller,
                f"{DISPATCHERS_MIN_REPLICAS}={value}: the Kafka dispatchers may run as one pod; set it to {HA_REPLICAS}",
            )


@env_check("availability")
def check_drains_allowed(ctx: EnvContext) -> Iterator[Finding]:
    """Production: every PodDisruptionBudget lets a drain evict at least one pod at the render's replica floor."""
    if not ctx.is_production:
        return
    objects = ctx.with_stand_ins
    templates = list(pod_templates(objects))
    for pdb in manifests.of_kind(objects, "policy", "PodDisruptionBudget"):
        selected = selected_templates(pdb, templates)
        if not selected:
            continue
        scales = [floor_scale(objects, t) for t in selected]
        pods = sum(scale.pods for scale in scales)
        if pods == 0 or disruptions_allowed(pdb, pods) > 0:
            continue
        spec = pdb.get("spec") or {}
        rule = next(f"{k}: {spec[k]}" for k in ("maxUnavailable", "minAvailable") if spec.get(k) is not None)
        counted = "; ".join(f"{t.ref}: {scale.source}" for t, scale in zip(selected, scales, strict=True))
        rounding = "; Kubernetes rounds the percentage up" if rule.endswith("%") else ""
        yield ctx.finding(
            "availability",
            pdb,
            f"{rule} allows 0 disruptions at {pods} pod(s) ({counted}{rounding}): a node drain can never evict "
            "them; use maxUnavailable: 1 or raise the replica floor",
            field="spec",
        )


# knative.dev/pkg leaderelection/config.go: ConfigMapName() is $CONFIG_LEADERELECTION_NAME, else
# config-leader-election; `buckets` defaults to 1 (defaultConfig) and may be 1..MaxBuckets (10). Every component in
# HA_COMPONENTS reads it: its reconcilers run under injection/sharedmain (GetLeaderElectionConfig), the autoscaler
# builds its elector from the same config (serving cmd/autoscaler/main.go).
# The controllers whose work is leader-elected reconcilers: a second replica is a standby unless buckets > 1. (Webhooks
# and the Kafka receiver serve requests from every pod; the activator and the gateway too.)
LEADER_ELECTED = {
    "knative-serving": ("controller", "autoscaler", "net-kourier-controller"),
    "knative-eventing": ("eventing-controller", "kafka-controller"),
}
LEADER_ELECTION_ENV = "CONFIG_LEADERELECTION_NAME"
LEADER_ELECTION_CONFIGMAP = "config-leader-election"
STANDBY_WORD = "standby"


def leader_election_buckets(objects: list[Obj], deployment: Obj) -> int:
    """How many buckets the Deployment's leader-elected reconcilers split their work into (1: one replica works)."""
    ns = manifests.meta(deployment).get("namespace", "")
    env = {
        e.get("name"): e.get("value")
        for c in dig(deployment, "spec", "template", "spec", "containers") or []
        for e in c.get("env") or []
    }
    name = env.get(LEADER_ELECTION_ENV) or LEADER_ELECTION_CONFIGMAP
    config = manifests.find(objects, "", "ConfigMap", ns, name) or {}
    value = str((config.get("data") or {}).get("buckets", "1"))
    return int(value) if value.isdigit() else 1


@env_check("availability")
def check_ha_replicas_described(ctx: EnvContext) -> Iterator[Finding]:
    """Production: a file adding leader-elected controller replicas says "standby" when buckets is 1."""
    if not ctx.is_production:
        return
    objects = ctx.objects
    for ns, names in LEADER_ELECTED.items():
        for name in names:
            deployment = manifests.find(objects, "apps", "Deployment", ns, name)
            if deployment is None:
                continue
            replicas = dig(deployment, "spec", "replicas") or 1
            setter = ctx.render.field_origin(manifests.ObjKey.of(deployment), "spec.replicas")
            if replicas < 2 or releases.is_remote(setter) or not (ctx.root / setter).is_file():
                continue
            buckets = leader_election_buckets(objects, deployment)
            if buckets == 1 and STANDBY_WORD not in (ctx.root / setter).read_text().lower():
                yield ctx.finding(
                    "availability",
                    deployment,
                    f"replicas {replicas} with leader-election buckets 1 (knative.dev/pkg default; no buckets key in "
                    f"its config-leader-election ConfigMap): one replica does all the work and the others are a "
                    f'standby; say "{STANDBY_WORD}" in {setter}, or set buckets in that ConfigMap to share the work',
                    field="spec.replicas",
                )
