"""port-protocol: the port name's protocol against the app's server (the NetworkPolicy side is network-policy's)."""

import pytest

from gitops.validate.checks import network_policy, protocols
from tests.support import run_check
from tests.validate.checks.ksvc_support import container


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_shipped_renders_speak_http1_on_8012(renders, env: str) -> None:
    assert run_check(protocols.check_app_speaks_port_protocol, renders[env]) == []


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_h2c_is_not_spoken_by_the_app(broken, env: str) -> None:
    render = broken(env)
    container(render)["ports"][0]["name"] = "h2c"
    (finding,) = run_check(protocols.check_app_speaks_port_protocol, render)
    assert finding.env == env and finding.obj == "Service.serving.knative.dev notifications/notifications"
    assert finding.origin == "apps/notifications/deploy/service.yaml"
    assert "port name 'h2c' makes queue-proxy speak h2c" in finding.message
    assert "apps/notifications/src/notifications/serve.py" in finding.message and "speaks only http1" in (
        finding.message
    )
    # The NetworkPolicy still admits 8012, queue-proxy's HTTP/1 port; h2c is served on 8013: network-policy says so.
    dropped = [f.message for f in run_check(network_policy.check_event_path_reachable, render)]
    assert any("none admits kourier-system/3scale-kourier-gateway on port 8013 (queue-port)" in m for m in dropped)
