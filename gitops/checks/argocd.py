"""Argo CD delivery checks: sync waves, prune guards and health gating in each render; the registry.

Environment checks (here) look at one render, which is byte for byte what `make hydrate` commits to the deploy
branch Argo CD syncs (`make validate HYDRATED=<dir>` runs them on those files): what Argo CD applies, in which
wave, what it may prune. Repository checks read the bootstrap (argocd/bootstrap/argocd-app.yaml) and
argocd/*.yaml (gitops.argocd_sync) and compare them with every render: gitops.checks.argocd_apps (sources,
sync policy, health checks), gitops.checks.argocd_project (AppProject scope, ignoreDifferences) and
gitops.checks.argocd_access (who can change what, and as whom Argo CD syncs).
"""

from collections.abc import Iterator

from gitops import argocd_health, manifests
from gitops.argocd_sync import BUILTIN_HEALTH, references, sync_options, wave
from gitops.checks import EnvCheck, EnvContext, Finding, RepoCheck
from gitops.checks.argocd_access import (
    check_auto_sync_cannot_write_argocd,
    check_no_sync_time_kustomize,
    check_project_wildcards,
    check_sync_identity,
    check_unique_destinations,
)
from gitops.checks.argocd_apps import (
    check_applications,
    check_health_customizations,
    check_health_tests,
    check_sync_policy,
)
from gitops.checks.argocd_project import check_ignore_differences, check_project_scope
from gitops.manifests import Obj, ObjKey

# Environments whose clusters have no LoadBalancer implementation: a LoadBalancer Service there stays Progressing
# (no external IP) and every later sync wave waits forever (components/kourier-nodeport).
NO_LOAD_BALANCER_ENVS = frozenset({"dev"})


def _upstream(ctx: EnvContext, obj: Obj) -> bool:
    return ctx.render.origin(obj).startswith(("http://", "https://"))


def check_sync_waves(ctx: EnvContext) -> Iterator[Finding]:
    """CRDs before the custom resources of their group; the upstream install before anything of ours; every
    object after what it needs to become Ready (sink, subscriber, dead-letter sink, Broker, config, namespace)."""
    name = "argocd-waves"
    waves: dict[ObjKey, int] = {}
    for obj in ctx.objects:
        try:
            waves[ObjKey.of(obj)] = wave(obj)
        except ValueError:
            yield ctx.finding(name, obj, "argocd.argoproj.io/sync-wave is not an integer")
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
                )
                break
    upstream = [o for o in ctx.objects if _upstream(ctx, o)]
    if upstream:
        last = max(upstream, key=lambda o: waves.get(ObjKey.of(o), 0))
        last_wave = waves.get(ObjKey.of(last), 0)
        for obj in ctx.objects:
            if not _upstream(ctx, obj) and waves.get(ObjKey.of(obj), 0) <= last_wave:
                yield ctx.finding(
                    name,
                    obj,
                    f"sync wave {waves.get(ObjKey.of(obj), 0)} is not after the upstream install "
                    f"({ObjKey.of(last)} is in wave {last_wave}): Argo CD does not wait for webhook pods within a wave",
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
                    "become healthy",
                )


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
            )


def check_no_replace(ctx: EnvContext) -> Iterator[Finding]:
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
        if _upstream(ctx, obj) or gk not in crd_kinds or gk in custom or gk in seen:
            continue
        seen.add(gk)
        yield ctx.finding(
            "argocd-health",
            obj,
            f"Argo CD has no health check for {key.group}/{key.kind}: it counts as healthy once applied, so "
            f"later sync waves do not wait for it (add argocd/resource_customizations/{key.group}/{key.kind}/health.lua)",
        )


def check_no_load_balancer(ctx: EnvContext) -> Iterator[Finding]:
    if ctx.env not in NO_LOAD_BALANCER_ENVS:
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


ENV_CHECKS: list[EnvCheck] = [
    check_sync_waves,
    check_prune_guards,
    check_no_replace,
    check_health_gating,
    check_no_load_balancer,
]
REPO_CHECKS: list[RepoCheck] = [
    check_applications,
    check_sync_policy,
    check_project_scope,
    check_ignore_differences,
    check_health_customizations,
    check_health_tests,
    check_auto_sync_cannot_write_argocd,
    check_project_wildcards,
    check_unique_destinations,
    check_no_sync_time_kustomize,
    check_sync_identity,
]
