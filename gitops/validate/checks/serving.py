"""Knative Services: autoscaling annotations, visibility, probes and resources the cluster really honours."""

import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.app_routes import Route, app_of_origin
from gitops.model.serving import VISIBILITY, knative_services
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

AUTOSCALING = "autoscaling.knative.dev/"
# serving pkg/apis/autoscaling/register.go (1.23): key -> legacy camelCase alias, if any.
AUTOSCALING_KEYS = {
    "class": None,
    "metric": None,
    "target": None,
    "target-utilization-percentage": "targetUtilizationPercentage",
    "target-burst-capacity": "targetBurstCapacity",
    "min-scale": "minScale",
    "max-scale": "maxScale",
    "initial-scale": "initialScale",
    "activation-scale": None,
    "scale-down-delay": "scaleDownDelay",
    "scale-to-zero-pod-retention-period": "scaleToZeroPodRetentionPeriod",
    "window": None,
    "panic-window-percentage": "panicWindowPercentage",
    "panic-threshold-percentage": "panicThresholdPercentage",
    "metric-aggregation-algorithm": "metricAggregationAlgorithm",
}
LEGACY = {alias: key for key, alias in AUTOSCALING_KEYS.items() if alias}
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
SUFFIX = {
    None: 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def quantity(value: object) -> Decimal | None:
    """A Kubernetes resource.Quantity as a number, or None if the API server would reject it."""
    match = QUANTITY.match(str(value)) if isinstance(value, str | int | float) else None
    if match is None:
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    suffix = match.group(2)
    if suffix and suffix[0] in "eE":
        return number * Decimal(10) ** int(suffix[1:])
    return number * SUFFIX[suffix]


@env_check("autoscaling")
def check_autoscaling(ctx: EnvContext) -> Iterator[Finding]:
    """Autoscaling annotations that serving's webhook accepts but never acts on (unknown keys, HPA class gaps).

    What serving's webhook lets through but never acts on: unknown autoscaling keys, and the HPA class without
    the HPA autoscaler installed. Values, ranges, placement and min <= max <= max-scale-limit are the webhook's own
    rules: the upstream-admission stage (gitops/validate/admission.py) runs them."""
    hpa_installed = manifests.find(ctx.objects, "apps", "Deployment", "knative-serving", "autoscaler-hpa") is not None
    for ksvc in knative_services(ctx.objects):
        template = dig(ksvc, "spec", "template", "metadata", "annotations") or {}
        for key, value in template.items():
            if not key.startswith(AUTOSCALING):
                continue
            name = key[len(AUTOSCALING) :]
            name = LEGACY.get(name, name)
            if name not in AUTOSCALING_KEYS:
                yield ctx.finding(
                    "autoscaling",
                    ksvc,
                    f"{key} is not a Knative autoscaling annotation: it is accepted and silently ignored",
                )
            elif name == "class" and str(value).startswith("hpa") and not hpa_installed:
                yield ctx.finding("autoscaling", ksvc, "HPA class needs serving-hpa.yaml, which is not in the render")


# Where Knative Serving reads its annotations (knative.dev/serving v0.50.0): the Revision's, which the Service's
# spec.template.metadata.annotations become. pkg/apis/serving/v1/revision_validation.go RevisionTemplateSpec.Validate
# validates autoscaling (autoscaling.ValidateAnnotations), queue.sidecar.serving.knative.dev/* and
# serving.knative.dev/progress-deadline there; the autoscaler and the revision reconciler read the Revision's. The
# rollout duration is read from the Service or Route itself (pkg/apis/serving/metadata_validation.go
# ValidateRolloutDurationAnnotation: "This annotation can be set on either service or route objects").
TEMPLATE_ANNOTATIONS = "spec.template.metadata.annotations"
SERVICE_ANNOTATIONS = "metadata.annotations"
READ_AT = (
    (AUTOSCALING, TEMPLATE_ANNOTATIONS),
    ("queue.sidecar.serving.knative.dev/", TEMPLATE_ANNOTATIONS),
    ("serving.knative.dev/progress-deadline", TEMPLATE_ANNOTATIONS),
    ("serving.knative.dev/rollout-duration", SERVICE_ANNOTATIONS),
)


def _keys_with_paths(node: object, path: str = "") -> Iterator[tuple[str, str]]:
    """(the dotted path of the map holding it, key) for every map key in `node`, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, str(key)
            yield from _keys_with_paths(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            name = item.get("name") if isinstance(item, dict) else None
            yield from _keys_with_paths(item, f"{path}[{name if isinstance(name, str) else i}]")


@env_check("annotation-placement")
def check_annotation_placement(ctx: EnvContext) -> Iterator[Finding]:
    """Knative annotations sit where Knative reads them (autoscaling.knative.dev/* on the Revision template).

    A key indented one level too far or too little (`spec.template.metadata.autoscaling.knative.dev/max-scale`, a
    label instead of an annotation) is a map key nobody reads: the Service is admitted and the Revision falls back
    to the cluster default (for max-scale: no bound). Autoscaling keys on the Service's own annotations are the
    webhook's to refuse (pkg/apis/serving/metadata_validation.go ValidateHasNoAutoscalingAnnotation), so the
    upstream-admission stage reports those."""
    for ksvc in knative_services(ctx.objects):
        for holder, key in _keys_with_paths(ksvc):
            for prefix, read_at in READ_AT:
                if not key.startswith(prefix) or holder == read_at:
                    continue
                if prefix == AUTOSCALING and holder == SERVICE_ANNOTATIONS:
                    continue  # serving's webhook refuses it (upstream-admission)
                where = f"{holder}[{key}]" if holder else key
                yield ctx.finding(
                    "annotation-placement",
                    ksvc,
                    f"{key} at {holder or 'the top level'} is never read: Knative reads it from {read_at} "
                    "(misplaced or mis-indented; the Revision gets the cluster default)",
                    field=where,
                )


@env_check("visibility")
def check_visibility(ctx: EnvContext) -> Iterator[Finding]:
    """The networking.knative.dev/visibility label is cluster-local, and on the Service (not an annotation or the template)."""
    for ksvc in knative_services(ctx.objects):
        value = manifests.labels(ksvc).get(VISIBILITY)
        if value is not None and value != "cluster-local":
            yield ctx.finding("visibility", ksvc, f"{VISIBILITY} label must be cluster-local, got {value!r}")
        if VISIBILITY in manifests.annotations(ksvc):
            yield ctx.finding("visibility", ksvc, f"{VISIBILITY} is a label, not an annotation: this one does nothing")
        if VISIBILITY in (dig(ksvc, "spec", "template", "metadata", "labels") or {}):
            yield ctx.finding(
                "visibility", ksvc, f"{VISIBILITY} on the revision template does nothing: label the Service"
            )


@env_check("resources")
def check_resources(ctx: EnvContext) -> Iterator[Finding]:
    """Every container's resource requests and limits are valid quantities, requests not above limits."""
    for ksvc in knative_services(ctx.objects):
        for container in dig(ksvc, "spec", "template", "spec", "containers") or []:
            yield from _resource_problems(ctx, ksvc, container.get("name", "?"), container.get("resources") or {})


@env_check("probes")
def check_probe_paths(ctx: EnvContext) -> Iterator[Finding]:
    """Every HTTP probe path is a route the app serves."""
    for ksvc in knative_services(ctx.objects):
        app = app_of_origin(ctx.render.origin(ksvc))
        if app is None:
            continue
        code = ctx.app_code(app)  # the code of the image this environment runs (its record), else the tree's
        for container in dig(ksvc, "spec", "template", "spec", "containers") or []:
            name = container.get("name", "?")
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                path = dig(container, probe, "httpGet", "path")
                if path is not None and Route("GET", path) not in code.routes:
                    yield ctx.finding(
                        "probes",
                        ksvc,
                        f"container {name} {probe} GET {path} is not served by {code.describe()}: pods never turn "
                        "Ready",
                        field=f"spec.template.spec.containers[{name}].{probe}.httpGet.path",
                    )


# Knative sets PORT to the serving container's containerPort (8080 when none is declared), and our apps listen on
# $PORT (apps/notifications: Settings.port); serving's webhook accepts a probe on any port.
DEFAULT_USER_PORT = 8080
PROBES = ("readinessProbe", "livenessProbe", "startupProbe")
PROBE_HANDLERS = ("httpGet", "tcpSocket", "grpc")


def _listening_port(container: Obj, only_container: bool) -> int | None:
    ports = container.get("ports") or []
    if ports:
        return ports[0].get("containerPort")
    return DEFAULT_USER_PORT if only_container else None


@env_check("probes")
def check_probe_ports(ctx: EnvContext) -> Iterator[Finding]:
    """Every readiness or liveness probe targets a port the app listens on.

    A readiness or liveness probe on a port the app does not listen on never succeeds: pods never turn Ready
    (readiness) or are restarted forever (liveness). Upstream accepts it; the kubelet finds out at runtime."""
    for ksvc in knative_services(ctx.objects):
        containers = dig(ksvc, "spec", "template", "spec", "containers") or []
        for container in containers:
            listening = _listening_port(container, len(containers) == 1)
            if listening is None:
                continue
            names = {p.get("name"): p.get("containerPort") for p in container.get("ports") or [] if p.get("name")}
            for probe in PROBES:
                for handler in PROBE_HANDLERS:
                    port = dig(container, probe, handler, "port")
                    if port is None or port == 0:  # unset (or 0): Knative points the probe at the serving port
                        continue
                    resolved = names.get(port) if isinstance(port, str) else port
                    if resolved != listening:
                        yield ctx.finding(
                            "probes",
                            ksvc,
                            f"container {container.get('name', '?')} {probe} {handler} port {port!r} is not the port "
                            f"the app listens on ({listening}, its containerPort and $PORT): drop the port or use {listening}",
                        )


def _resource_problems(ctx: EnvContext, obj: Obj, container: str, resources: dict) -> Iterator[Finding]:
    parsed: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for kind in parsed:
        for resource, value in (resources.get(kind) or {}).items():
            amount = quantity(value)
            if amount is None:
                yield ctx.finding(
                    "resources", obj, f"container {container} {kind}.{resource} {value!r} is not a quantity"
                )
            else:
                parsed[kind][resource] = amount
    for resource, request in parsed["requests"].items():
        limit = parsed["limits"].get(resource)
        if limit is not None and request > limit:
            yield ctx.finding(
                "resources",
                obj,
                f"container {container} requests {resources['requests'][resource]} {resource} but is limited to "
                f"{resources['limits'][resource]} (rejected by the API server)",
            )
