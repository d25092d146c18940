"""The facts `make validate` holds the render to, read by the server's own readers (notifications.runtime_facts)."""

import pytest
from notifications.runtime_facts import runtime_facts, server_protocols


def test_defaults_are_the_settings_defaults() -> None:
    facts = runtime_facts({})
    assert facts["dedup_window_seconds"] == (600.0, "DEDUP_WINDOW_SECONDS")
    assert facts["graceful_shutdown_seconds"] == (25.0, "GRACEFUL_SHUTDOWN_SECONDS")
    assert facts["header_timeout_seconds"][0] + facts["body_timeout_seconds"][0] == 20.0


def test_the_container_env_sets_them() -> None:
    facts = runtime_facts({"DEDUP_WINDOW_SECONDS": "900", "BODY_TIMEOUT_SECONDS": "3", "DRAIN_DELAY_SECONDS": "5"})
    assert facts["dedup_window_seconds"][0] == 900.0
    assert facts["body_timeout_seconds"][0] == 3.0 and facts["drain_delay_seconds"][0] == 5.0


def test_production_and_oidc_do_not_stop_the_time_facts() -> None:
    # The OIDC files exist only in the pod; production's completeness is app-env's rule, not this one's.
    env = {"PRODUCTION": "true", "OIDC_AUDIENCE": "a", "OIDC_JWKS_CA_FILE": "/nowhere", "DEDUP_WINDOW_SECONDS": "60"}
    assert runtime_facts(env)["dedup_window_seconds"][0] == 60.0


def test_a_malformed_value_is_refused_as_at_start_up() -> None:
    with pytest.raises(ValueError):
        runtime_facts({"GRACEFUL_SHUTDOWN_SECONDS": "soon"})


def test_the_server_speaks_http1_only() -> None:
    # uvicorn's httptools protocol (serve.build_server): HTTP/1.x, no h2c.
    assert server_protocols() == frozenset({"http1"})
