"""What the running subscriber promises about time and protocol, read by its own readers from a container env.

`make validate` holds the render to these (gitops/model/app_runtime.py imports this module, as `app-env` imports
`settings.environment_variables`): the Broker's redeliveries must fall inside the dedup window, the pod's
termination grace (the Knative Service's timeoutSeconds) must cover the drain, and the container port's name must
select a protocol this server speaks. Each fact comes from the reader the server itself uses at start-up
(Settings.from_env, ConnectionLimits.from_env, serve.build_server's protocol class), never from a copied number,
with the variable that sets it so a finding can say where to change it.
"""

from __future__ import annotations

from collections.abc import Mapping

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from notifications.connection_limits import ConnectionLimits, protocol_class
from notifications.settings import PRODUCTION, Settings

# Serving's names for what queue-proxy speaks to the app (serving pkg/apis/serving/v1/revision_helpers.go
# GetProtocol at v0.50.0: a first port named "h2c" is HTTP/2 cleartext, anything else HTTP/1).
HTTP1, H2C = "http1", "h2c"
OIDC_PREFIX = "OIDC_"


def server_protocols(limits: ConnectionLimits | None = None) -> frozenset[str]:
    """The protocols serve.build_server's listener speaks: uvicorn's httptools protocol parses HTTP/1.x only (uvicorn
    has no HTTP/2, prior-knowledge h2c included), so a request in h2c is refused as an invalid HTTP request."""
    protocol = protocol_class(limits or ConnectionLimits())
    return frozenset({HTTP1}) if issubclass(protocol, HttpToolsProtocol) else frozenset()


def runtime_facts(env: Mapping[str, str]) -> dict[str, tuple[float | frozenset[str], str]]:
    """fact -> (value, the variable that sets it), for the app run with `env` (its container's literal env).

    PRODUCTION and OIDC_* are left out: the time facts do not depend on them, and their rules (files that exist only
    in the pod, production's completeness) are `app-env`'s and identity's to judge. A malformed value raises
    ValueError, as the server's start-up would."""
    env = {name: value for name, value in env.items() if name != PRODUCTION and not name.startswith(OIDC_PREFIX)}
    settings = Settings.from_env(env)
    limits = ConnectionLimits.from_env(env)
    return {
        "dedup_window_seconds": (settings.dedup_window_seconds, "DEDUP_WINDOW_SECONDS"),
        "drain_delay_seconds": (settings.drain_delay_seconds, "DRAIN_DELAY_SECONDS"),
        "graceful_shutdown_seconds": (settings.graceful_shutdown_seconds, "GRACEFUL_SHUTDOWN_SECONDS"),
        "header_timeout_seconds": (limits.header_timeout_seconds, "HEADER_TIMEOUT_SECONDS"),
        "body_timeout_seconds": (limits.body_timeout_seconds, "BODY_TIMEOUT_SECONDS"),
        "protocols": (server_protocols(limits), "notifications.serve (uvicorn, httptools)"),
    }
