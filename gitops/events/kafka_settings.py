"""Where to reach Kafka and how to authenticate: flags and environment first, the rendered ConfigMap last."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitops.core import manifests
from gitops.model.eventing import broker_config_key, is_kafka_broker

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"

# Environment variable -> librdkafka property (https://github.com/confluentinc/librdkafka CONFIGURATION.md).
SECURITY_ENV: dict[str, str] = {
    "KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "KAFKA_SASL_MECHANISM": "sasl.mechanisms",
    "KAFKA_SASL_USERNAME": "sasl.username",
    "KAFKA_SASL_PASSWORD": "sasl.password",
    "KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
    "KAFKA_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
    "KAFKA_SSL_KEY_LOCATION": "ssl.key.location",
}
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# The mechanisms a Knative Broker/KafkaSource secret may name (eventing-kafka-broker security/secret.go).
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
SECRET_PROPS = frozenset({"sasl.password"})


class SettingsError(ValueError):
    """The flags, environment or rendered manifests do not give a usable Kafka connection."""


# librdkafka reports a refused SASL login or a failed TLS handshake only to the error callback, then retries until
# the client's own timeout: without this, a wrong password reads as "message timed out" a minute later.
AUTH_ERRORS = frozenset({"_AUTHENTICATION", "_SSL"})


class AuthWatch:
    """A librdkafka `error_cb` that keeps the first authentication or TLS failure (None until one happens)."""

    def __init__(self) -> None:
        self.failure: str | None = None

    def __call__(self, error: Any) -> None:
        if self.failure is None and error.name() in AUTH_ERRORS:
            # "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: ...": the address is said already.
            self.failure = re.sub(r"^[a-z_]+://\S+: ", "", str(error.str()))

    def error(self, connection: Connection) -> SettingsError:
        """The one line saying the Kafka refused us, and which settings to fix."""
        fix = (
            "KAFKA_SSL_CA_LOCATION (the Kafka's CA, ca.crt)"
            if "SSL" in (self.failure or "") and "SASL authentication" not in (self.failure or "")
            else "KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD (user, password)"
        )
        return SettingsError(f"Kafka at {connection.bootstrap.servers} refused us: {self.failure}; check {fix}")


@dataclass(frozen=True)
class Bootstrap:
    servers: str
    origin: str
    auth_secret: str | None = None


@dataclass(frozen=True)
class Connection:
    bootstrap: Bootstrap
    security: dict[str, str] = field(default_factory=dict)

    def client_config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap.servers, **self.security}

    def describe(self) -> str:
        shown = {k: ("***" if k in SECRET_PROPS else v) for k, v in self.security.items()}
        extra = " ".join(f"{k}={v}" for k, v in sorted(shown.items()))
        return f"{self.bootstrap.servers} (from {self.bootstrap.origin})" + (f" {extra}" if extra else "")


def _servers(value: str) -> str:
    servers = [s.strip() for s in value.split(",") if s.strip()]
    if not servers:
        raise SettingsError("bootstrap servers are empty")
    for s in servers:
        host, sep, port = s.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise SettingsError(f"bootstrap server {s!r} is not host:port")
    return ",".join(servers)


def bootstrap_from_objects(objects: list[dict[str, Any]], env: str) -> Bootstrap:
    """The Kafka that the render's Kafka Broker reads (its spec.config ConfigMap), which its KafkaSource must read
    too (the kafka-source check); no ConfigMap name is hard-coded here, so a fork that renames it still works."""
    brokers = [b for b in manifests.of_kind(objects, "eventing.knative.dev", "Broker") if is_kafka_broker(b)]
    keys = sorted({key for b in brokers if (key := broker_config_key(b)) is not None}, key=str)
    if not keys:
        raise SettingsError(f"the {env} render has no Kafka Broker naming a ConfigMap in spec.config")
    if len(keys) > 1:
        raise SettingsError(
            f"the {env} render's Kafka Brokers read {len(keys)} ConfigMaps ({', '.join(map(str, keys))}): "
            f"pass --bootstrap or set {BOOTSTRAP_ENV}"
        )
    (key,) = keys
    cm = manifests.find(objects, key.group, key.kind, key.namespace, key.name)
    if cm is None:
        raise SettingsError(f"the {env} render has no ConfigMap {key.namespace}/{key.name} (its Kafka Broker's)")
    where = f"ConfigMap {key.namespace}/{key.name} rendered for {env}"
    data = cm.get("data") or {}
    if not data.get("bootstrap.servers"):
        raise SettingsError(f"{where} has no bootstrap.servers")
    return Bootstrap(_servers(data["bootstrap.servers"]), where, data.get("auth.secret.ref.name"))


def resolve_bootstrap(flag: str | None, env: str | None, environ: Mapping[str, str]) -> Bootstrap:
    """--bootstrap-servers, then $KAFKA_BOOTSTRAP_SERVERS, then the Broker ConfigMap of the rendered --env."""
    if flag:
        return Bootstrap(_servers(flag), "--bootstrap-servers")
    if environ.get(BOOTSTRAP_ENV):
        return Bootstrap(_servers(environ[BOOTSTRAP_ENV]), f"${BOOTSTRAP_ENV}")
    if env:
        from gitops.core.render import render_env  # lazy: rendering needs kustomize and the release mirror

        return bootstrap_from_objects(render_env(env).objects, env)
    raise SettingsError(
        f"no Kafka to talk to: pass --bootstrap-servers, set ${BOOTSTRAP_ENV}, or pass --env <environment>"
    )


def security_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    conf = {prop: environ[var] for var, prop in SECURITY_ENV.items() if environ.get(var)}
    protocol = conf.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise SettingsError(f"KAFKA_SECURITY_PROTOCOL={protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    if "security.protocol" in conf:
        conf["security.protocol"] = protocol
    sasl = protocol.startswith("SASL_")
    has_user = "sasl.username" in conf or "sasl.password" in conf
    if has_user and not sasl:
        # librdkafka would silently ignore the credentials and the broker would drop the connection.
        raise SettingsError(
            "KAFKA_SASL_USERNAME/PASSWORD are set but KAFKA_SECURITY_PROTOCOL is "
            f"{protocol}; use SASL_SSL (or SASL_PLAINTEXT)"
        )
    if sasl:
        mechanism = conf.get("sasl.mechanisms", "PLAIN").upper()  # PLAIN is Knative's default too
        if mechanism not in MECHANISMS:
            raise SettingsError(f"KAFKA_SASL_MECHANISM={mechanism!r}: expected one of {', '.join(MECHANISMS)}")
        conf["sasl.mechanisms"] = mechanism
        if mechanism != "OAUTHBEARER" and not ("sasl.username" in conf and "sasl.password" in conf):
            raise SettingsError(f"{protocol} with {mechanism} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    return conf


def resolve(flag: str | None, env: str | None, environ: Mapping[str, str]) -> Connection:
    return Connection(resolve_bootstrap(flag, env, environ), security_from_env(environ))


# Kubernetes' cluster DNS names: resolvable inside a cluster only (a Service is <name>.<namespace>.svc[.<domain>]).
IN_CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")


def _resolves(host: str, port: int) -> bool:
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return True


def unreachable_here(bootstrap: Bootstrap, resolves: Callable[[str, int], bool] = _resolves) -> str | None:
    """Why no bootstrap server can be reached from this machine (all of them in-cluster names or unresolvable),
    or None. Said at once, instead of the client retrying an address that will never resolve until it times out."""
    reasons = []
    for server in bootstrap.servers.split(","):
        host, _, port = server.rpartition(":")
        host = host.strip("[]")
        if host.rstrip(".").endswith(IN_CLUSTER_SUFFIXES):
            reasons.append(f"{server} is a cluster-internal name")
        elif not resolves(host, int(port)):
            reasons.append(f"{server} does not resolve here")
        else:
            return None
    return "; ".join(reasons)
