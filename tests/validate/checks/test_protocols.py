"""port-protocol: the port name's protocol against the app's server, and the NetworkPolicy's queue-proxy port."""

import pytest

from gitops.validate.checks import protocols
from tests.support import obj, run_check
from tests.validate.checks.ksvc_support import container


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_shipped_renders_speak_http1_on_8012(renders, env: str) -> None:
    assert run_check(protocols.check_app_speaks_port_protocol, renders[env]) == []
    assert run_check(protocols.check_network_policy_port_matches_protocol, renders[env]) == []


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
    # The NetworkPolicy still admits 8012, queue-proxy's HTTP/1 port: h2c is served on 8013.
    (policy,) = run_check(protocols.check_network_policy_port_matches_protocol, render)
    assert policy.obj == "NetworkPolicy notifications/notifications-deliveries"
    assert policy.origin == "apps/notifications/deploy/networkpolicy.yaml"
    assert "on 8012, queue-proxy's port for http1" in policy.message and "listens on 8013" in policy.message


def test_a_policy_for_h2c_with_an_http1_port_name_is_flagged(broken) -> None:
    render = broken("dev")
    policy = obj(render, "networking.k8s.io", "NetworkPolicy", "notifications", "notifications-deliveries")
    policy["spec"]["ingress"][0]["ports"][0]["port"] = 8013
    (finding,) = run_check(protocols.check_network_policy_port_matches_protocol, render)
    assert "on 8013, queue-proxy's port for h2c" in finding.message and "selects http1" in finding.message
