"""Who can open a connection to a pod, by Kubernetes NetworkPolicy semantics, and who the event path needs to.

The semantics (k8s.io/api networking/v1 types.go, pkg/apis/networking/v1/defaults.go, Kubernetes 1.34):
- a policy applies to ingress when `policyTypes` names Ingress; unset, it defaults to [Ingress] (plus Egress when it
  has egress rules). A pod no ingress policy selects accepts every connection; once one selects it, it accepts only
  what at least one ingress rule of the selecting policies admits (rules of several policies add up, a union);
- a rule with no `ports` admits every port; a port without `port` every port of its protocol (default TCP); a named
  port is resolved on the *receiving* pod's containers (name and protocol); `endPort` makes a range;
- a rule with no `from` admits every source; a peer with only `podSelector` picks pods of the policy's namespace,
  with `namespaceSelector` pods of the namespaces it picks (empty: all namespaces), the podSelector missing or
  empty meaning every pod there; an `ipBlock` admits addresses, whatever pod or host holds them.

"Who is admitted" is answered with witnesses: the least a sender must look like to match a peer (a pod with only
the labels the selector requires, in a namespace with only the labels its selector requires, or any namespace at
all). A peer is no wider than the needed senders only when every witness it admits is one of them: a pod with
just `app: activator` in `knative-serving` is the activator; a pod with no labels, or one in a namespace anybody
can create and label, is not.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.pods import (
    KSVC_POD_LABEL,
    NAMESPACE_NAME_LABEL,
    PodTemplate,
    selector_matches,
)

ALL_PORTS = "every port"
# A stand-in label value for `Exists` requirements and a namespace name nothing in the render has: witnesses built
# from them match the selector but no needed sender.
ANY_VALUE = "<any value>"
ANY_NAMESPACE = "<any namespace>"


@dataclass(frozen=True)
class Sender:
    """A peer the event path needs: the pods labelled `labels` in `namespace`, on the receiver's port `port` (a
    container port name, resolved on the receiving pod, so queue-proxy's port follows the Revision's protocol)."""

    namespace: str
    labels: tuple[tuple[str, str], ...]
    port: str
    why: str

    @property
    def name(self) -> str:
        return f"{self.namespace}/{dict(self.labels).get('app', dict(self.labels))}"

    def is_sender(self, namespace: str, labels: dict[str, str]) -> bool:
        return namespace == self.namespace and all(labels.get(k) == v for k, v in self.labels)


@dataclass(frozen=True)
class Receiver:
    """Pods of the event path that receive connections (by namespace, None: any, and a label selector)."""

    what: str
    namespace: str | None
    selector: dict
    senders: tuple[Sender, ...]

    def matches(self, pod: PodTemplate) -> bool:
        return (self.namespace is None or pod.namespace == self.namespace) and selector_matches(
            self.selector, pod.labels
        )


def _sender(namespace: str, app: str, port: str, why: str) -> Sender:
    return Sender(namespace, (("app", app),), port, why)


# Who must reach which pod of the event path, and on which of its ports. Every other admitted peer is wider than the
# event path needs and fails validate unless a waiver names it with a reason (validation-waivers.yaml).
# - Knative Service pods: requests arrive at queue-proxy's `queue-port` (serving pkg/reconciler/revision/resources/
#   queue.go: 8012, or 8013 for h2c) from the Kourier gateway (every Trigger delivery: the subscriber URL is an
#   ExternalName to kourier-internal) or the activator (scale from zero, bursts); the autoscaler scrapes
#   `http-autometric` (9090, serving pkg/apis/serving/v1/revision_helpers.go).
# - The Kafka data plane (eventing-kafka-broker data-plane/config/*/500-*.yaml, knative-v1.23.0): the KafkaSource
#   dispatcher posts into the Broker's receiver (`http`, 8080); the Broker dispatcher posts dead letters into the
#   KafkaSink receiver. Dispatchers reach Knative Services only through the gateway.
EVENT_PATH_RECEIVERS: tuple[Receiver, ...] = (
    Receiver(
        "Knative Service pods",
        None,
        {"matchExpressions": [{"key": KSVC_POD_LABEL, "operator": "Exists"}]},
        (
            _sender("kourier-system", "3scale-kourier-gateway", "queue-port", "requests through the ingress"),
            _sender("knative-serving", "activator", "queue-port", "requests while scaling from zero"),
            _sender("knative-serving", "autoscaler", "http-autometric", "the autoscaler's metric scrapes"),
        ),
    ),
    Receiver(
        "the Kafka Broker receiver",
        "knative-eventing",
        {"matchLabels": {"app": "kafka-broker-receiver"}},
        (_sender("knative-eventing", "kafka-source-dispatcher", "http", "the KafkaSource's events into the Broker"),),
    ),
    Receiver(
        "the KafkaSink receiver",
        "knative-eventing",
        {"matchLabels": {"app": "kafka-sink-receiver"}},
        (_sender("knative-eventing", "kafka-broker-dispatcher", "http", "dead letters into the KafkaSink"),),
    ),
)


# The metrics scraper (a prometheus-operator Prometheus) lives outside the render, so who it is comes from the one
# place a fork sets it: the `from` peers of the NetworkPolicy named here (base/monitoring/scrape.yaml). A peer counts
# as the scraper only when it is narrow: one namespace by its name label and at least one pod label, nothing else.
SCRAPER_POLICY = "metrics-scraper"
PODMONITOR = ("monitoring.coreos.com", "PodMonitor")


def scraper_identities(objects: list[Obj]) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """(namespace, pod labels) of each narrow peer of the metrics-scraper NetworkPolicies."""
    found: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for policy in manifests.of_kind(objects, "networking.k8s.io", "NetworkPolicy"):
        if manifests.meta(policy).get("name") != SCRAPER_POLICY:
            continue
        for rule in dig(policy, "spec", "ingress") or []:
            for peer in rule.get("from") or []:
                identity = scraper_identity(peer)
                if identity is not None and identity not in found:
                    found.append(identity)
    return found


def scraper_identity(peer: dict | None) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    if not isinstance(peer, dict) or set(peer) != {"namespaceSelector", "podSelector"}:
        return None
    namespaces, pods = peer["namespaceSelector"] or {}, peer["podSelector"] or {}
    if set(namespaces) != {"matchLabels"} or set(pods) != {"matchLabels"}:
        return None
    names = namespaces["matchLabels"] or {}
    labels = pods["matchLabels"] or {}
    if set(names) != {NAMESPACE_NAME_LABEL} or not labels:
        return None
    return str(names[NAMESPACE_NAME_LABEL]), tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def scrape_receivers(objects: list[Obj]) -> tuple[Receiver, ...]:
    """The pods each PodMonitor of the render scrapes, with the scraper as their sender on the port it names
    (prometheus-operator PodMonitor: `selector`, `namespaceSelector` (default: its own namespace),
    `podMetricsEndpoints[].port`, a container port name)."""
    scrapers = scraper_identities(objects)
    receivers: list[Receiver] = []
    for monitor in manifests.of_kind(objects, *PODMONITOR):
        own = manifests.meta(monitor).get("namespace", "")
        spec = monitor.get("spec") or {}
        names = (spec.get("namespaceSelector") or {}).get("matchNames") or [own]
        ports = [e.get("port") for e in spec.get("podMetricsEndpoints") or [] if e.get("port")]
        for namespace in names:
            senders = tuple(
                Sender(ns, labels, str(port), f"metric scrapes ({manifests.meta(monitor).get('name')} PodMonitor)")
                for ns, labels in scrapers
                for port in ports
            )
            receivers.append(Receiver("scraped pods", namespace, spec.get("selector") or {}, senders))
    return tuple(receivers)


def needed_senders(pod: PodTemplate, extra: tuple[Receiver, ...] = ()) -> tuple[Sender, ...]:
    """Who must reach `pod`: the event path's senders, and those of `extra` (scrape_receivers of the render)."""
    return tuple(s for r in (*EVENT_PATH_RECEIVERS, *extra) if r.matches(pod) for s in r.senders)


def policy_types(policy: Obj) -> list[str]:
    """spec.policyTypes as the API server defaults it (SetDefaults_NetworkPolicy)."""
    spec = policy.get("spec") or {}
    declared = spec.get("policyTypes")
    if declared:
        return list(declared)
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def ingress_policies_selecting(policies: list[Obj], pod: PodTemplate) -> list[Obj]:
    return [
        p
        for p in policies
        if "Ingress" in policy_types(p)
        and manifests.meta(p).get("namespace", "") == pod.namespace
        and selector_matches(dig(p, "spec", "podSelector") or {}, pod.labels)
    ]


@dataclass(frozen=True)
class Port:
    protocol: str
    number: int

    def __str__(self) -> str:
        return f"{self.protocol} {self.number}"


def resolve_ports(rule: dict, pod: PodTemplate) -> tuple[set[Port] | str, list[str]]:
    """(the ports of `pod` the rule opens, or ALL_PORTS; named ports that name no container port of the pod)."""
    entries = rule.get("ports") or []
    if not entries:
        return ALL_PORTS, []
    opened: set[Port] = set()
    unknown: list[str] = []
    for entry in entries:
        protocol = entry.get("protocol") or "TCP"
        port = entry.get("port")
        if port is None:
            return ALL_PORTS, unknown  # every port of that protocol; reported as every port
        if isinstance(port, int):
            end = entry.get("endPort") or port
            opened |= {Port(protocol, n) for n in range(port, int(end) + 1)}
            continue
        named = [c for c in pod.ports if c.name == port and c.protocol == protocol]
        if not named:
            unknown.append(str(port))
        opened |= {Port(protocol, c.number) for c in named}
    return opened, unknown


def port_label(pod: PodTemplate, port: Port) -> str:
    names = [f"{c.container}'s {c.name}" for c in pod.ports if c.number == port.number and c.protocol == port.protocol]
    return f"{port} ({', '.join(names)})" if names else str(port)


@dataclass(frozen=True)
class Witness:
    """The least a source must look like to be admitted by a peer; `pod` None for an address (ipBlock)."""

    namespace: str
    labels: dict[str, str] = field(hash=False)
    description: str

    def is_sender(self, sender: Sender) -> bool:
        return sender.is_sender(self.namespace, self.labels)


def _requirements(selector: dict) -> Iterator[dict[str, str]]:
    """The minimal label sets that satisfy a label selector (one per combination of `In` values)."""
    fixed = {str(k): str(v) for k, v in (selector.get("matchLabels") or {}).items()}
    choices: list[list[tuple[str, str]]] = []
    for expression in selector.get("matchExpressions") or []:
        key, operator = str(expression.get("key")), expression.get("operator")
        if operator == "In":
            choices.append([(key, str(v)) for v in expression.get("values") or []])
        elif operator == "Exists" and key not in fixed:
            choices.append([(key, ANY_VALUE)])
    for combination in itertools.product(*choices):
        labels = dict(fixed)
        consistent = True
        for key, value in combination:
            if labels.get(key, value) != value:
                consistent = False
            labels[key] = value
        if consistent and selector_matches(selector, labels):
            yield labels


def _pinned_namespaces(selector: dict) -> set[str] | None:
    """The namespace names a namespaceSelector is bound to by kubernetes.io/metadata.name (which only the API server
    sets), or None when it picks namespaces by labels whoever creates a namespace may set."""
    names: set[str] | None = None
    by_label = (selector.get("matchLabels") or {}).get(NAMESPACE_NAME_LABEL)
    if by_label is not None:
        names = {str(by_label)}
    for expression in selector.get("matchExpressions") or []:
        if expression.get("key") == NAMESPACE_NAME_LABEL and expression.get("operator") == "In":
            values = {str(v) for v in expression.get("values") or []}
            names = values if names is None else names & values
    return names


def _describe(selector: dict | None) -> str:
    parts = [f"{k}={v}" for k, v in ((selector or {}).get("matchLabels") or {}).items()]
    for e in (selector or {}).get("matchExpressions") or []:
        parts.append(f"{e.get('key')} {e.get('operator')} {e.get('values') or ''}".strip())
    return "{" + ", ".join(parts) + "}"


def _pods_text(labels: dict[str, str], namespace: str) -> str:
    where = "every namespace" if namespace == ANY_NAMESPACE else f"namespace {namespace}"
    if not labels:
        return f"every pod in {where}"
    shown = ", ".join(f"{k}={v}" for k, v in labels.items())
    return f"any pod labelled {{{shown}}} in {where}"


def address_count(block: dict) -> tuple[str, int | None]:
    """(a description of an ipBlock, how many addresses it admits; None if its CIDR does not parse)."""
    cidr = str(block.get("cidr"))
    try:
        network = ipaddress.ip_network(cidr, strict=False)
        excluded = sum(ipaddress.ip_network(str(e), strict=False).num_addresses for e in block.get("except") or [])
    except ValueError:
        return f"ipBlock {cidr!r} (not a CIDR)", None
    count = network.num_addresses - excluded
    if network.prefixlen == 0:
        scope = f"every IPv{network.version} address, every pod and the internet included"
    else:
        scope = f"{count} addresses; a pod IP among them is admitted whoever runs it"
    return f"ipBlock {cidr}" + (f" except {block['except']}" if block.get("except") else "") + f" ({scope})", count


def peer_witnesses(peer: dict | None, policy_ns: str, namespaces: dict[str, dict[str, str]]) -> list[Witness]:
    """The witnesses of one `from` entry (None: a rule without `from`, which admits every source)."""
    if peer is None:
        return [Witness(ANY_NAMESPACE, {}, "every pod and every address (the rule has no `from`)")]
    if "ipBlock" in peer:
        return [Witness(ANY_NAMESPACE, {}, address_count(peer["ipBlock"] or {})[0])]
    pod_selector = peer.get("podSelector") or {}
    if "namespaceSelector" in peer:
        ns_selector = peer.get("namespaceSelector") or {}
        pinned = _pinned_namespaces(ns_selector)
        if pinned is None:
            scope = (
                "every namespace"
                if _describe(ns_selector) == "{}"
                else f"any namespace labelled {_describe(ns_selector)} (labels whoever creates a namespace may set)"
            )
            return [
                Witness(ANY_NAMESPACE, labels, _pods_text(labels, ANY_NAMESPACE).replace("every namespace", scope))
                for labels in _requirements(pod_selector)
            ]
        chosen = [
            ns for ns in sorted(pinned) if selector_matches(ns_selector, namespaces.get(ns, {NAMESPACE_NAME_LABEL: ns}))
        ]
    else:
        chosen = [policy_ns]
    return [Witness(ns, labels, _pods_text(labels, ns)) for ns in chosen for labels in _requirements(pod_selector)]


@dataclass(frozen=True)
class Admission:
    """What one ingress rule of `policy` admits to `pod` that none of its needed senders accounts for."""

    policy: Obj
    rule: int
    pod: PodTemplate
    who: str
    ports: str


def excess_admissions(
    policies: list[Obj], pod: PodTemplate, namespaces: dict[str, dict[str, str]], extra: tuple[Receiver, ...] = ()
) -> Iterator[Admission]:
    """Every (peer, ports) the ingress policies selecting `pod` admit beyond its needed senders (union semantics:
    each rule is judged on its own, since any one of them lets a connection in)."""
    senders = needed_senders(pod, extra)
    for policy in ingress_policies_selecting(policies, pod):
        ns = manifests.meta(policy).get("namespace", "")
        for index, rule in enumerate(dig(policy, "spec", "ingress") or []):
            opened, _ = resolve_ports(rule, pod)
            if opened != ALL_PORTS and not opened:
                continue  # only unknown named ports: this rule opens nothing on this pod
            peers = rule.get("from") or [None]
            for peer in peers:
                for witness in peer_witnesses(peer, ns, namespaces):
                    allowed = {
                        p
                        for s in senders
                        if witness.is_sender(s)
                        for p in resolve_ports({"ports": [{"port": s.port}]}, pod)[0]
                        if isinstance(p, Port)
                    }
                    if opened == ALL_PORTS:
                        yield Admission(policy, index, pod, witness.description, ALL_PORTS)
                        continue
                    extra = sorted(opened - allowed, key=lambda p: (p.protocol, p.number))
                    if extra:
                        yield Admission(policy, index, pod, witness.description, _ports_text(pod, extra))


def _ports_text(pod: PodTemplate, ports: list[Port]) -> str:
    """Ports as the reader needs them: each named after the container port it reaches, runs shown as ranges."""
    runs: list[list[Port]] = []
    for port in ports:
        if runs and runs[-1][-1].protocol == port.protocol and runs[-1][-1].number + 1 == port.number:
            runs[-1].append(port)
        else:
            runs.append([port])
    parts = []
    for run in runs:
        if len(run) == 1:
            parts.append(port_label(pod, run[0]))
        else:
            inside = [port_label(pod, p) for p in run if "(" in port_label(pod, p)]
            parts.append(f"{run[0]}-{run[-1].number}" + (f" (including {', '.join(inside)})" if inside else ""))
    return ", ".join(parts)


def peer_admits(peer: dict, policy_ns: str, namespaces: dict[str, dict[str, str]], pod: PodTemplate) -> bool:
    """Whether one `from` entry admits a pod that exists (ipBlocks are not counted: pod IPs are not stable)."""
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        labels = namespaces.get(pod.namespace, {NAMESPACE_NAME_LABEL: pod.namespace})
        ns_ok = selector_matches(peer.get("namespaceSelector") or {}, labels)
    else:
        ns_ok = pod.namespace == policy_ns
    return ns_ok and selector_matches(peer.get("podSelector") or {}, pod.labels)


def admits(
    policies: list[Obj], target: PodTemplate, namespaces: dict[str, dict[str, str]], source: PodTemplate, port: Port
) -> bool:
    """Whether the ingress policies selecting `target` let `source` connect on `port` (True when none selects it)."""
    selecting = ingress_policies_selecting(policies, target)
    if not selecting:
        return True
    for policy in selecting:
        ns = manifests.meta(policy).get("namespace", "")
        for rule in dig(policy, "spec", "ingress") or []:
            opened, _ = resolve_ports(rule, target)
            if opened != ALL_PORTS and port not in opened:
                continue
            peers = rule.get("from") or []
            if not peers or any(peer_admits(peer, ns, namespaces, source) for peer in peers):
                return True
    return False


def is_default_deny(policy: Obj) -> bool:
    """Selects every pod of its namespace for ingress and admits nothing: a new pod there starts closed."""
    spec = policy.get("spec") or {}
    return spec.get("podSelector") in ({}, None) and "Ingress" in policy_types(policy) and not spec.get("ingress")
