"""NetworkPolicies select real pods and name real peers, admit only the event path's senders, and deny by default.

A NetworkPolicy is accepted whatever its selectors say. One whose podSelector matches nothing protects nothing; a
peer whose namespace or labels exist nowhere admits nobody, and the delivery it was written for times out. So every
selector is resolved against the render (gitops.model.pods): the peers' namespaces and pod labels come from the
upstream manifests, not from memory. What the policies together admit to each pod is computed with Kubernetes'
semantics (gitops.model.network) and held to the senders the event path needs; every namespace of ours, in every
environment (docs/security-model.md), denies ingress by default.
"""

from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.network import (
    ALL_PORTS,
    SCRAPER_POLICY,
    admits,
    excess_admissions,
    ingress_policies_selecting,
    is_default_deny,
    needed_senders,
    policy_types,
    resolve_ports,
    scrape_receivers,
    scraper_identity,
)
from gitops.model.pods import PodTemplate, namespace_labels, pod_templates, selector_matches
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check


def _pods(ctx: EnvContext) -> list[PodTemplate]:
    """The pods every check here judges: the render's, plus the Kafka data plane's rebuilt from its 1.23 sources
    when its release asset is left out (RenderResult.stand_ins), so its dispatchers and receivers count as senders
    and receivers (gitops.model.network.EVENT_PATH_RECEIVERS names them by their upstream labels)."""
    return list(pod_templates(ctx.with_stand_ins))


def _left_out_note(ctx: EnvContext) -> str:
    unchecked = [gap for gap in ctx.render.omitted if gap.url not in ctx.render.stood_in]
    if not unchecked:
        return ""
    assets = ", ".join(gap.url.rsplit("/", 1)[-1] for gap in unchecked)
    return f" (the render left out {assets}; a pod from there cannot be checked until its digest is locked)"


def _peer_problems(ctx: EnvContext, policy: Obj, peer: dict, pods: list[PodTemplate]) -> Iterator[str]:
    policy_ns = manifests.meta(policy).get("namespace", "")
    if "ipBlock" in peer:
        return
    if manifests.meta(policy).get("name") == SCRAPER_POLICY and scraper_identity(peer) is not None:
        return  # the metrics scraper runs outside the render (gitops.model.network.SCRAPER_POLICY)
    namespaces = namespace_labels(ctx.objects)
    if "namespaceSelector" in peer:
        selected = {ns for ns, labels in namespaces.items() if selector_matches(peer["namespaceSelector"], labels)}
        if not selected:
            yield f"namespaceSelector {peer['namespaceSelector']} matches no namespace in the render"
            return
    else:
        selected = {policy_ns}
    chosen = peer.get("podSelector")
    if chosen is not None and not any(p.namespace in selected and selector_matches(chosen, p.labels) for p in pods):
        yield (
            f"podSelector {chosen} matches no pod in namespace(s) {', '.join(sorted(selected))}" + _left_out_note(ctx)
        )


@env_check("network-policy")
def check_network_policies(ctx: EnvContext) -> Iterator[Finding]:
    """Every NetworkPolicy selects a pod, and its peers resolve to pods and namespaces in the render."""
    pods = _pods(ctx)
    for policy in manifests.of_kind(ctx.objects, "networking.k8s.io", "NetworkPolicy"):
        ns = manifests.meta(policy).get("namespace", "")
        targets = [
            p for p in pods if p.namespace == ns and selector_matches(dig(policy, "spec", "podSelector"), p.labels)
        ]
        if not targets:
            yield ctx.finding(
                "network-policy",
                policy,
                f"podSelector {dig(policy, 'spec', 'podSelector')} selects no pod in namespace {ns}: it protects nothing",
            )
        types = policy_types(policy)
        if dig(policy, "spec", "ingress") and "Ingress" not in types:
            yield ctx.finding(
                "network-policy",
                policy,
                f"has ingress rules but policyTypes {types} leaves out Ingress: Kubernetes ignores them, so they "
                "admit nobody; add Ingress to policyTypes",
            )
        for rule in dig(policy, "spec", "ingress") or []:
            for peer in rule.get("from") or []:
                for problem in _peer_problems(ctx, policy, peer, pods):
                    yield ctx.finding("network-policy", policy, f"ingress peer: {problem}: it admits nobody")
            for target in targets:
                _, unknown = resolve_ports(rule, target)
                for name in unknown:
                    yield ctx.finding(
                        "network-policy",
                        policy,
                        f"names port {name!r}, which no container of {target.ref} declares "
                        f"(its pods have {sorted({p.name for p in target.ports})}): that entry opens nothing there",
                    )


@env_check("network-policy")
def check_default_deny(ctx: EnvContext) -> Iterator[Finding]:
    """Every environment: each namespace running our pods denies ingress by default, so a new pod starts closed."""
    denied = {
        manifests.meta(p).get("namespace")
        for p in manifests.of_kind(ctx.objects, "networking.k8s.io", "NetworkPolicy")
        if is_default_deny(p)
    }
    ours = {p.namespace for p in _pods(ctx) if not ctx.render.is_upstream(p.owner)}
    for ns in sorted(ours - denied):
        namespace = manifests.find(ctx.objects, "", "Namespace", "", ns)
        yield ctx.finding(
            "network-policy",
            namespace,
            f"namespace {ns} runs our pods but has no default-deny ingress NetworkPolicy (podSelector: {{}}, "
            "policyTypes: [Ingress], no rules): any pod in the cluster can connect to them",
        )


def _policies(ctx: EnvContext) -> list[Obj]:
    return list(manifests.of_kind(ctx.objects, "networking.k8s.io", "NetworkPolicy"))


@env_check("network-policy")
def check_event_path_reachable(ctx: EnvContext) -> Iterator[Finding]:
    """Once ingress policies select a pod of the event path, every sender it needs still gets in on its port.

    The senders are gitops.model.network.EVENT_PATH_RECEIVERS: gateway, activator, autoscaler, the Kafka dispatchers."""
    pods = _pods(ctx)
    namespaces = namespace_labels(ctx.objects)
    policies = _policies(ctx)
    scrapes = scrape_receivers(ctx.objects)
    for target in pods:
        if not ingress_policies_selecting(policies, target):
            continue
        for sender in needed_senders(target, scrapes):
            opened, _ = resolve_ports({"ports": [{"port": sender.port}]}, target)
            peer = next((p for p in pods if sender.is_sender(p.namespace, p.labels)), None)
            if peer is None or opened == ALL_PORTS:
                continue  # the sender is not in this render (a left-out asset): nothing to check it against
            for port in sorted(opened, key=lambda p: p.number):
                if not admits(policies, target, namespaces, peer, port):
                    yield ctx.finding(
                        "network-policy",
                        target.owner,
                        f"ingress NetworkPolicies select its pods but none admits {sender.name} on port "
                        f"{port.number} ({sender.port}): {sender.why} are dropped",
                    )


@env_check("network-ingress")
def check_admitted_senders(ctx: EnvContext) -> Iterator[Finding]:
    """Each pod's ingress policies admit no one beyond the senders the event path needs or a waiver names."""
    namespaces = namespace_labels(ctx.objects)
    policies = _policies(ctx)
    scrapes = scrape_receivers(ctx.objects)
    for target in _pods(ctx):
        if not ingress_policies_selecting(policies, target):
            if ctx.render.is_upstream(target.owner):
                continue  # upstream pods nobody isolates: the documented limit (docs/security-model.md)
            yield ctx.finding(
                "network-ingress",
                target.owner,
                "no ingress NetworkPolicy selects its pods: every pod and every address can connect to every port; "
                "add a default-deny policy to its namespace and rules for the senders it needs",
            )
            continue
        seen: set[tuple[str, int, str, str]] = set()
        for found in excess_admissions(policies, target, namespaces, scrapes):
            key = (manifests.meta(found.policy).get("name", ""), found.rule, found.who, found.ports)
            if key in seen:
                continue
            seen.add(key)
            wanted = ", ".join(f"{s.name} on {s.port}" for s in needed_senders(target, scrapes)) or "none"
            yield ctx.finding(
                "network-ingress",
                found.policy,
                f"ingress rule {found.rule} admits {found.who} to {target.ref} on {found.ports}: wider than the "
                f"senders its pods need ({wanted}); narrow the rule to those, or waive it with the reason",
                field="spec.ingress",
            )
