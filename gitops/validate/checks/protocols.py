"""The protocol a port name selects: queue-proxy speaks to the app what the first container port's name says.

Serving reads the protocol from the serving container's first port name (serving v0.50.0
pkg/apis/serving/v1/revision_helpers.go GetProtocol: "h2c" is HTTP/2 cleartext, anything else HTTP/1; its webhook
allows only "", "http1" and "h2c", pkg/apis/serving/k8s_validation.go). queue-proxy then proxies to the app in that
protocol and listens itself on 8013 for h2c instead of 8012 (queue.go, gitops/model/pods.py). Two promises follow:
the app's server must speak that protocol (the app says which, notifications.runtime_facts: this check), and the
NetworkPolicies must admit the gateway and the activator on the port the name selects (the `network-policy` check
already resolves `queue-port` through gitops/model/pods.py revision_ports, 8013 for h2c, and fails when no policy
admits it).
"""

from collections.abc import Iterator

from gitops.model.app_runtime import ksvc_app_facts, serving_container
from gitops.model.serving import knative_services
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

H2C, HTTP1 = "h2c", "http1"


def port_protocol(ksvc: dict) -> tuple[str, str]:
    """(protocol, the first port's name as written) for a Knative Service, as serving's GetProtocol decides it."""
    _, container = serving_container(ksvc)
    name = str(((container.get("ports") or [{}])[0]).get("name") or "")
    return (H2C if name == H2C else HTTP1), name


def _server_file(app: str) -> str:
    return f"apps/{app}/src/{app.replace('-', '_')}/serve.py"


@env_check("port-protocol")
def check_app_speaks_port_protocol(ctx: EnvContext) -> Iterator[Finding]:
    """A Knative Service's port name selects a protocol (http1, h2c) its app's server speaks."""
    for ksvc in knative_services(ctx.objects):
        found = ksvc_app_facts(ksvc, ctx.render.origin(ksvc))
        if found is None or "protocols" not in found[1]:
            continue
        app, facts = found
        protocol, name = port_protocol(ksvc)
        spoken = facts["protocols"].value
        if protocol in spoken:  # type: ignore[operator]
            continue
        index, _ = serving_container(ksvc)
        field = f"spec.template.spec.containers[{index}].ports"
        named = f"port name {name!r}" if name else "an unnamed first port"
        yield ctx.finding(
            "port-protocol",
            ksvc,
            f"{named} makes queue-proxy speak {protocol} to the app, but the {app} app's server "
            f"({_server_file(app)}, {facts['protocols'].variable}) speaks only "
            f"{', '.join(sorted(spoken)) or 'nothing serving knows'}: every request fails. Name the port "  # type: ignore[arg-type]
            f"{' or '.join(sorted(spoken))}",  # type: ignore[arg-type]
            field=field,
        )
