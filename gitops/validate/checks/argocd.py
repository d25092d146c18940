"""Argo CD delivery checks: sync waves, prune guards and health gating in each render.

Environment checks (here) look at one render, which is byte for byte what `make hydrate` commits to the deploy
branch Argo CD syncs (`make validate HYDRATED=<dir>` runs them on those files): what Argo CD applies, in which
wave, what it may prune. Repository checks read the bootstrap (argocd-app.yaml) and
argocd/*.yaml (gitops.model.argocd) and compare them with every render: gitops.validate.checks.argocd_apps (sources,
sync policy, health checks), gitops.validate.checks.argocd_project (AppProject scope, ignoreDifferences) and
gitops.validate.checks.argocd_access (who can change what, and as whom Argo CD syncs).
"""

from collections.abc import Iterator

from gitops.core import environments, manifests
from gitops.core.manifests import Obj, ObjKey
from gitops.model import argocd_health, kafka_auth
from gitops.model.argocd import BUILTIN_HEALTH, references, sync_options, wave
from gitops.model.external_secrets import derived_secrets
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

# Findings about these annotations name the file that set them (an overlay patch, or the object's own file).
WAVE_FIELD = "metadata.annotations[argocd.argoproj.io/sync-wave]"
SYNC_OPTIONS_FIELD = "metadata.annotations[argocd.argoproj.io/sync-options]"


@env_check("argocd-waves")
def check_sync_waves(ctx: EnvContext) -> Iterator[Finding]:
    """Sync waves order CRDs before their resources, upstream before ours, and each dependency before its user.

    CRDs before the custom resources of their group; the upstream install before anything of ours; every
    object after what it needs to become Ready (sink, subscriber, dead-letter sink, Broker, config, namespace)."""
    name = "argocd-waves"
    waves: dict[ObjKey, int] = {}
    for obj in ctx.objects:
        try:
            waves[ObjKey.of(obj)] = wave(obj)
        except ValueError:
            yield ctx.finding(name, obj, "argocd.argoproj.io/sync-wave is not an integer", field=WAVE_FIELD)
    crds = [o for o in ctx.objects if o.get("kind") == "CustomResourceDefinition"]
    crd_groups: dict[str, list[Obj]] = {}
    for crd in crds:
        crd_groups.setdefault(manifests.dig(crd, "spec", "group") or "", []).append(crd)
    for obj in ctx.objects:
        key = ObjKey.of(obj)
        for crd in crd_groups.get(key.group, []):
            crd_wave = waves.get(ObjKey.of(crd), 0)
            if crd_wave >= waves.get(key, 0):
                yield ctx.finding(
                    name,
                    obj,
                    f"sync wave {waves.get(key, 0)} is not after CustomResourceDefinition {manifests.meta(crd)['name']} "
                    f"(wave {crd_wave}): every CRD must be Established before a resource of its group is applied",
                    field=WAVE_FIELD,
                )
                break
    upstream = [o for o in ctx.objects if ctx.render.is_upstream(o)]
    if upstream:
        last = max(upstream, key=lambda o: waves.get(ObjKey.of(o), 0))
        last_wave = waves.get(ObjKey.of(last), 0)
        for obj in ctx.objects:
            if not ctx.render.is_upstream(obj) and waves.get(ObjKey.of(obj), 0) <= last_wave:
                yield ctx.finding(
                    name,
                    obj,
                    f"sync wave {waves.get(ObjKey.of(obj), 0)} is not after the upstream install "
                    f"({ObjKey.of(last)} is in wave {last_wave}): Argo CD does not wait for webhook pods within a wave",
                    field=WAVE_FIELD,
                )
    by_key = {ObjKey.of(o): o for o in ctx.objects}
    for obj in ctx.objects:
        key = ObjKey.of(obj)
        needs = [(f, ObjKey(g, k, ns, n)) for f, g, k, ns, n in references(obj)]
        if key.namespace:
            needs.append(("metadata.namespace", ObjKey("", "Namespace", "", key.namespace)))
        for field, needed in needs:
            if needed not in by_key:
                continue
            # A ConfigMap or Namespace in the same wave is fine: Argo CD applies those kinds before custom
            # resources within a wave. A custom resource must be Ready first, which only a wave boundary waits for.
            same_wave_ok = needed.kind in ("ConfigMap", "Namespace")
            mine, theirs = waves.get(key, 0), waves.get(needed, 0)
            if theirs > mine or (theirs == mine and not same_wave_ok):
                yield ctx.finding(
                    name,
                    obj,
                    f"sync wave {mine} is not after {needed} (wave {theirs}), which it needs via {field}: "
                    "Knative reports it Ready=False until that exists and is Ready, so this wave would never "
                    "become healthy"
                    + (
                        " (and neither would the Broker or sink it applies to; a later wave would let the sender "
                        "send before the policy is in force: name the sender by `sub`, its OIDC identity "
                        "system:serviceaccount:<ns>:<name>-oidc-<group>-<kind>)"
                        if field.startswith("spec.from")
                        else ""
                    ),
                    field=WAVE_FIELD,
                )
    # The Kafka credentials Secret is not in the render: the ExternalSecret that writes it is, and must be Healthy
    # (Argo CD's built-in check: the Secret written) in a wave before any reader of the Secret.
    writers = {(s.namespace, s.name): s.source for s in derived_secrets(ctx.objects)}
    for use in kafka_auth.secret_uses(ctx.objects):
        writer = writers.get((use.namespace, use.name))
        if writer is None:
            continue
        mine, theirs = waves.get(ObjKey.of(use.reader), 0), waves.get(ObjKey.of(writer), 0)
        if theirs >= mine:
            yield ctx.finding(
                name,
                use.reader,
                f"sync wave {mine} is not after {ObjKey.of(writer)} (wave {theirs}), which writes Secret "
                f"{use.namespace}/{use.name} that it reads via {use.field}: the Kafka objects would start without "
                "their credentials; give the ExternalSecret an earlier wave",
                field=WAVE_FIELD,
            )


@env_check("argocd-prune-guard")
def check_prune_guards(ctx: EnvContext) -> Iterator[Finding]:
    """Objects whose deletion loses data refuse pruning and cascade deletion (Prune=false|confirm, Delete=...)."""
    broker_configs = {
        ObjKey("", "ConfigMap", ns, n) for o in ctx.objects for f, _g, _k, ns, n in references(o) if f == "spec.config"
    }
    for obj in ctx.objects:
        key = ObjKey.of(obj)
        reason = {
            "CustomResourceDefinition": "deleting a CRD deletes every resource of its kind",
            "Namespace": "deleting a namespace deletes everything in it",
            "Broker": "deleting a Kafka Broker deletes its topic and every buffered event",
        }.get(key.kind)
        if key in broker_configs:
            reason = "a Broker's spec.config points here and is immutable"
        if reason is None:
            continue
        options = sync_options(obj)
        missing = [option for option in ("Prune", "Delete") if options.get(option) not in ("false", "confirm")]
        if missing:
            wanted = ",".join(f"{option}=false" for option in missing)
            yield ctx.finding(
                "argocd-prune-guard",
                obj,
                f"needs argocd.argoproj.io/sync-options {wanted} (or =confirm): {reason}",
                field=SYNC_OPTIONS_FIELD,
            )


@env_check("argocd-no-replace")
def check_no_replace(ctx: EnvContext) -> Iterator[Finding]:
    """No object syncs with Replace=true or Force=true (they wipe what controllers filled in)."""
    for obj in ctx.objects:
        options = sync_options(obj)
        for option in ("Replace", "Force"):
            if options.get(option) == "true":
                yield ctx.finding(
                    "argocd-no-replace",
                    obj,
                    f"{option}=true deletes or replaces the live object, wiping what controllers filled in "
                    "(the webhook certificate Secrets ship empty); use a normal apply",
                )


@env_check("argocd-health")
def check_health_gating(ctx: EnvContext) -> Iterator[Finding]:
    """Every custom resource of ours has a health check, or the waves after it would not wait for it."""
    custom = {(c.group, c.kind) for c in argocd_health.discover(ctx.root)} | BUILTIN_HEALTH
    crd_kinds = {
        (manifests.dig(c, "spec", "group"), manifests.dig(c, "spec", "names", "kind"))
        for c in ctx.objects
        if c.get("kind") == "CustomResourceDefinition"
    }
    seen: set[tuple[str, str]] = set()
    for obj in ctx.objects:
        key = ObjKey.of(obj)
        gk = (key.group, key.kind)
        if ctx.render.is_upstream(obj) or gk not in crd_kinds or gk in custom or gk in seen:
            continue
        seen.add(gk)
        yield ctx.finding(
            "argocd-health",
            obj,
            f"Argo CD has no health check for {key.group}/{key.kind}: it counts as healthy once applied, so "
            f"later sync waves do not wait for it (add argocd/resource_customizations/{key.group}/{key.kind}/health.lua)",
        )


@env_check("argocd-load-balancer")
def check_no_load_balancer(ctx: EnvContext) -> Iterator[Finding]:
    # Without a LoadBalancer implementation (environments.yaml `load_balancer: false`) such a Service stays
    # Progressing (no external IP) and every later sync wave waits forever (components/kourier-nodeport).
    """No LoadBalancer Service in an environment without a load balancer (it would stay Progressing forever)."""
    if environments.load(ctx.root).get(ctx.env).load_balancer:
        return
    for obj in ctx.objects:
        if (
            obj.get("kind") == "Service"
            and manifests.group_of(obj) == ""
            and manifests.dig(obj, "spec", "type") == "LoadBalancer"
        ):
            yield ctx.finding(
                "argocd-load-balancer",
                obj,
                f"type LoadBalancer in {ctx.env}, whose cluster has no load balancer: it stays Progressing and "
                "blocks every later sync wave (use components/kourier-nodeport)",
            )
