"""NetworkPolicies select real pods and name real peers; in production every namespace of ours is default-deny.

A NetworkPolicy is accepted whatever its selectors say. One whose podSelector matches nothing protects nothing; a
peer whose namespace or labels exist nowhere admits nobody, and the delivery it was written for times out. So every
selector is resolved against the render (gitops.model.pods): the peers' namespaces and pod labels come from the
upstream manifests, not from memory.
"""

from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.pods import KSVC_POD_LABEL, PodTemplate, namespace_labels, pod_templates, selector_matches
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

# serving pkg/networking/constants.go (v0.50.0, Knative 1.23; no longer knative/networking): the ports queue-proxy
# listens on in every Knative pod
# (BackendHTTPPort, BackendHTTP2Port, QueueAdminPort, AutoscalingQueueMetricsPort, UserQueueMetricsPort).
# Traffic to any other port of a Knative pod reaches the app without queue-proxy's timeouts and limits.
QUEUE_PROXY_PORTS = {8012, 8013, 8022, 9090, 9091}


def _left_out_note(ctx: EnvContext) -> str:
    unchecked = [gap for gap in ctx.render.omitted if gap.url not in ctx.render.stood_in]
    if not unchecked:
        return ""
    assets = ", ".join(gap.url.rsplit("/", 1)[-1] for gap in unchecked)
    return f" (the render left out {assets}; a pod from there cannot be checked until its digest is locked)"


def _peer_problems(ctx: EnvContext, policy_ns: str, peer: dict, pods: list[PodTemplate]) -> Iterator[str]:
    if "ipBlock" in peer:
        return
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
    # The Kafka data plane's pods count as rebuilt from their 1.23 sources when its release asset is left out.
    pods = list(pod_templates(ctx.with_stand_ins))
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
        knative_targets = [p for p in targets if KSVC_POD_LABEL in p.labels]
        for rule in dig(policy, "spec", "ingress") or []:
            for peer in rule.get("from") or []:
                for problem in _peer_problems(ctx, ns, peer, pods):
                    yield ctx.finding("network-policy", policy, f"ingress peer: {problem}: it admits nobody")
            for port in rule.get("ports") or []:
                number = port.get("port")
                if knative_targets and isinstance(number, int) and number not in QUEUE_PROXY_PORTS:
                    yield ctx.finding(
                        "network-policy",
                        policy,
                        f"opens port {number} of Knative pods ({knative_targets[0].ref}), which is not a queue-proxy "
                        f"port {sorted(QUEUE_PROXY_PORTS)}: traffic there bypasses queue-proxy; open 8012 instead",
                    )


def _default_deny(policy: Obj) -> bool:
    spec = policy.get("spec") or {}
    return (
        spec.get("podSelector") in ({}, None)
        and "Ingress" in (spec.get("policyTypes") or [])
        and not spec.get("ingress")
    )


@env_check("network-policy")
def check_default_deny(ctx: EnvContext) -> Iterator[Finding]:
    """Production: each namespace running our pods denies ingress by default, so a new pod starts closed."""
    if not ctx.is_production:
        return
    denied = {
        manifests.meta(p).get("namespace")
        for p in manifests.of_kind(ctx.objects, "networking.k8s.io", "NetworkPolicy")
        if _default_deny(p)
    }
    ours = {p.namespace for p in pod_templates(ctx.objects) if not ctx.render.is_upstream(p.owner)}
    for ns in sorted(ours - denied):
        namespace = manifests.find(ctx.objects, "", "Namespace", "", ns)
        yield ctx.finding(
            "network-policy",
            namespace,
            f"namespace {ns} runs our pods but has no default-deny ingress NetworkPolicy (podSelector: {{}}, "
            "policyTypes: [Ingress], no rules): any pod in the cluster can connect to them",
        )


# Who must reach every Knative pod, and on which queue-proxy port (see apps/notifications/deploy/networkpolicy.yaml):
# the ingress gateway and the activator deliver requests, the autoscaler scrapes the scaling metrics.
KNATIVE_PEERS = (
    ("kourier-system", "3scale-kourier-gateway", 8012, "requests through the ingress (every Trigger delivery)"),
    ("knative-serving", "activator", 8012, "requests while scaling from zero or buffering a burst"),
    ("knative-serving", "autoscaler", 9090, "the autoscaler's metric scrapes (the Service stops scaling)"),
)


def _admits(policy: Obj, namespaces: dict[str, dict[str, str]], peer: PodTemplate, port: int) -> bool:
    ns = manifests.meta(policy).get("namespace", "")
    for rule in dig(policy, "spec", "ingress") or []:
        ports = [p.get("port") for p in rule.get("ports") or []]
        if ports and port not in ports:
            continue
        sources = rule.get("from") or []
        if not sources:
            return True
        for source in sources:
            if "ipBlock" in source:
                continue
            if "namespaceSelector" in source:
                ns_ok = selector_matches(source["namespaceSelector"], namespaces.get(peer.namespace, {}))
            else:
                ns_ok = peer.namespace == ns
            if ns_ok and selector_matches(source.get("podSelector"), peer.labels):
                return True
    return False


@env_check("network-policy")
def check_knative_pods_reachable(ctx: EnvContext) -> Iterator[Finding]:
    """Once an ingress policy selects a Knative pod, the gateway, activator and autoscaler must still get in."""
    pods = list(pod_templates(ctx.objects))
    namespaces = namespace_labels(ctx.objects)
    policies = [
        p
        for p in manifests.of_kind(ctx.objects, "networking.k8s.io", "NetworkPolicy")
        if "Ingress" in (dig(p, "spec", "policyTypes") or ["Ingress"])
    ]
    for target in (p for p in pods if KSVC_POD_LABEL in p.labels):
        selecting = [
            p
            for p in policies
            if manifests.meta(p).get("namespace") == target.namespace
            and selector_matches(dig(p, "spec", "podSelector"), target.labels)
        ]
        if not selecting:
            continue
        for ns, name, port, what in KNATIVE_PEERS:
            peer = next((p for p in pods if p.namespace == ns and manifests.meta(p.owner).get("name") == name), None)
            if peer is not None and not any(_admits(p, namespaces, peer, port) for p in selecting):
                yield ctx.finding(
                    "network-policy",
                    target.owner,
                    f"ingress NetworkPolicies select its pods but none admits {ns}/{name} on port {port}: "
                    f"{what} are dropped",
                )
