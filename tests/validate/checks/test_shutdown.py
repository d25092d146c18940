"""shutdown-grace: timeoutSeconds (the pods' termination grace) against queue-proxy's drain and the app's shutdown."""

import pytest

from gitops.validate.checks import shutdown
from tests.support import run_check
from tests.validate.checks.ksvc_support import container, ksvc

KSVC = "Service.serving.knative.dev notifications/notifications"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_shipped_renders_drain_within_the_grace(renders, env: str) -> None:
    assert run_check(shutdown.check_grace_covers_drain, renders[env]) == []


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_a_timeout_below_the_drain_is_flagged(broken, env: str) -> None:
    render = broken(env)
    ksvc(render)["spec"]["template"]["spec"]["timeoutSeconds"] = 25
    (finding,) = run_check(shutdown.check_grace_covers_drain, render)
    assert (finding.env, finding.obj, finding.origin) == (env, KSVC, "apps/notifications/deploy/service.yaml")
    assert "termination grace 25 s < shutdown 55 s" in finding.message
    assert "GRACEFUL_SHUTDOWN_SECONDS 25 s (default, apps/notifications/src/notifications/settings.py)" in (
        finding.message
    )


def test_a_longer_graceful_shutdown_on_the_container_is_flagged(broken) -> None:
    render = broken("dev")
    container(render).setdefault("env", []).append({"name": "GRACEFUL_SHUTDOWN_SECONDS", "value": "45"})
    (finding,) = run_check(shutdown.check_grace_covers_drain, render)
    assert "termination grace 60 s < shutdown 75 s" in finding.message


def test_a_graceful_shutdown_shorter_than_the_read_limits_is_flagged(broken) -> None:
    render = broken("dev")
    container(render).setdefault("env", []).append({"name": "BODY_TIMEOUT_SECONDS", "value": "30"})
    (finding,) = run_check(shutdown.check_grace_covers_drain, render)
    assert finding.origin == "apps/notifications/src/notifications/settings.py"
    assert "graceful shutdown 25 s < request read limits 40 s" in finding.message
    assert "BODY_TIMEOUT_SECONDS 30 s (apps/notifications/deploy/service.yaml)" in finding.message
