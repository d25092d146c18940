"""Kafka auth: which objects read which credentials Secret, and the keys that Secret must hold for its protocol.

The contract is eventing-kafka-broker's (v0.50.1, control-plane/pkg/security/secret.go and config.go): the Broker's
ConfigMap names the Secret in `auth.secret.ref.name` (namespace: `auth.secret.ref.namespace`, else the
ConfigMap's), a KafkaSink in `spec.auth.secret.ref.name`; the Secret's `protocol` key selects what else is read.
A KafkaSource names each key itself (`spec.net.sasl.*.secretKeyRef`, `spec.net.tls.*.secretKeyRef`,
sources/v1 KafkaSource `spec.net`), and its `enable` flags say the protocol it speaks.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from gitops.core import manifests
from gitops.core.manifests import Obj

PROTOCOL = "protocol"
AUTH_SECRET_NAME = "auth.secret.ref.name"  # config.go AuthSecretNameKey
AUTH_SECRET_NAMESPACE = "auth.secret.ref.namespace"  # config.go AuthSecretNamespaceKey
SECRET_GO = "eventing-kafka-broker control-plane/pkg/security/secret.go"

# The keys each protocol needs, no more. Upstream refuses a Secret without `protocol`, without `user` or `password`
# for SASL, or without `user.crt`/`user.key` for SSL (unless `user.skip: true`). Two more are our policy, stricter
# than upstream's defaults: `sasl.mechanism` stated (upstream falls back to PLAIN, which sends the password in the
# clear to a broker expecting SCRAM) and `ca.crt` stated (upstream falls back to the system roots: the Kafka's CA
# is pinned instead). Any other key is read by nobody, usually a misspelling of one of these.
PROTOCOL_KEYS: dict[str, frozenset[str]] = {
    "PLAINTEXT": frozenset({PROTOCOL}),
    "SASL_PLAINTEXT": frozenset({PROTOCOL, "sasl.mechanism", "user", "password"}),
    "SSL": frozenset({PROTOCOL, "ca.crt", "user.crt", "user.key"}),
    "SASL_SSL": frozenset({PROTOCOL, "sasl.mechanism", "user", "password", "ca.crt"}),
}
UPSTREAM_REQUIRED: dict[str, frozenset[str]] = {
    "PLAINTEXT": frozenset({PROTOCOL}),
    "SASL_PLAINTEXT": frozenset({PROTOCOL, "user", "password"}),
    "SSL": frozenset({PROTOCOL, "user.crt", "user.key"}),
    "SASL_SSL": frozenset({PROTOCOL, "user", "password"}),
}


@dataclass(frozen=True)
class SecretUse:
    """`reader` reads Secret namespace/name via `field`; `keys`: the keys it names itself (a KafkaSource), empty
    when it reads the whole Secret by the contract (Broker ConfigMap, KafkaSink); `protocol`: the protocol the
    reader speaks when it says so itself (a KafkaSource's enable flags), else None."""

    reader: Obj
    field: str
    namespace: str
    name: str
    keys: tuple[str, ...] = ()
    protocol: str | None = None


def _source_protocol(net: dict) -> str:
    sasl = bool(manifests.dig(net, "sasl", "enable"))
    tls = bool(manifests.dig(net, "tls", "enable"))
    return {(False, False): "PLAINTEXT", (True, False): "SASL_PLAINTEXT", (False, True): "SSL"}.get(
        (sasl, tls), "SASL_SSL"
    )


def secret_uses(objects: list[Obj]) -> Iterator[SecretUse]:
    """Every read of a Kafka credentials Secret in a render."""
    for obj in objects:
        kind, group = obj.get("kind"), manifests.group_of(obj)
        namespace = manifests.meta(obj).get("namespace") or ""
        if group == "" and kind == "ConfigMap":
            data = obj.get("data") or {}
            if data.get(AUTH_SECRET_NAME):
                yield SecretUse(
                    obj,
                    f"data[{AUTH_SECRET_NAME}]",
                    data.get(AUTH_SECRET_NAMESPACE) or namespace,
                    data[AUTH_SECRET_NAME],
                )
        elif group == "eventing.knative.dev" and kind == "KafkaSink":
            name = manifests.dig(obj, "spec", "auth", "secret", "ref", "name")
            if name:
                yield SecretUse(obj, "spec.auth.secret.ref.name", namespace, str(name))
        elif group == "sources.knative.dev" and kind == "KafkaSource":
            net = manifests.dig(obj, "spec", "net") or {}
            by_secret: dict[str, list[tuple[str, str]]] = {}
            for part, fields in (("sasl", ("user", "password", "type")), ("tls", ("caCert", "cert", "key"))):
                for name in fields:
                    ref = manifests.dig(net, part, name, "secretKeyRef")
                    if isinstance(ref, dict) and ref.get("name") and ref.get("key"):
                        by_secret.setdefault(str(ref["name"]), []).append((f"spec.net.{part}.{name}", str(ref["key"])))
            for secret, refs in by_secret.items():
                yield SecretUse(
                    obj,
                    refs[0][0] + ".secretKeyRef",
                    namespace,
                    secret,
                    tuple(key for _f, key in refs),
                    _source_protocol(net),
                )
