"""Runtime settings from the environment (notifications.settings)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from notifications.oidc import OidcConfigError
from notifications.settings import Settings


def test_settings_from_env() -> None:
    settings = Settings.from_env({"PORT": "9090", "MAX_BODY_BYTES": "1024", "LOG_LEVEL": "debug"})
    assert (settings.port, settings.max_body_bytes, settings.log_level) == (9090, 1024, "DEBUG")
    assert Settings.from_env({}).port == 8080


PRODUCTION_ENV = {
    "PRODUCTION": "true",
    "OIDC_AUDIENCE": "serving.knative.dev/service/notifications/notifications",
    "OIDC_ISSUER": "https://kubernetes.default.svc.cluster.local",
    "OIDC_JWKS_URL": "https://kubernetes.default.svc/openid/v1/jwks",
    "OIDC_ALLOWED_SUBJECTS": "system:serviceaccount:notifications:notifications-oidc-eventing.knative.dev-trigger",
}


def test_production_runs_with_a_complete_oidc_set() -> None:
    settings = Settings.from_env(PRODUCTION_ENV)
    assert settings.production and settings.oidc is not None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        # The misspelling that used to turn verification off: OIDC_AUDIENCE is then missing.
        ({"OIDC_AUDEINCE": PRODUCTION_ENV["OIDC_AUDIENCE"], "OIDC_AUDIENCE": None}, "OIDC_AUDEINCE is not a setting"),
        ({"OIDC_AUDIENCE": ""}, "OIDC_AUDIENCE is not set"),
        ({"OIDC_ALLOWED_SUBJECTS": None}, "OIDC_ALLOWED_SUBJECTS is not set"),
        ({"OIDC_ALLOWED_SUBJECTS": "notifications-oidc"}, "OIDC_ALLOWED_SUBJECTS entry 'notifications-oidc'"),
        ({"OIDC_ISSUER": "http://issuer"}, "OIDC_ISSUER='http://issuer' is not an https:// URL"),
        ({"OIDC_JWKS_TTL_SECONDS": "soon"}, "OIDC_JWKS_TTL_SECONDS='soon' is not a number"),
    ],
)
def test_production_refuses_a_missing_or_malformed_oidc_setting(change: dict, named: str) -> None:
    env = {k: v for k, v in {**PRODUCTION_ENV, **change}.items() if v is not None}
    with pytest.raises(OidcConfigError, match=rf"^PRODUCTION=true and {re.escape(named)}") as raised:
        Settings.from_env(env)
    assert "\n" not in str(raised.value)


def test_outside_production_a_missing_audience_still_means_verification_off() -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k not in ("PRODUCTION", "OIDC_AUDIENCE")}
    assert Settings.from_env(env).oidc is None
    with pytest.raises(OidcConfigError, match="PRODUCTION='yes' must be true or false"):
        Settings.from_env({"PRODUCTION": "yes"})


def test_serve_exits_with_one_line_before_listening() -> None:
    """The container's command: one line on stderr, exit 1, no port ever opened, so readiness never passes."""
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "OIDC_ISSUER"}
    proc = subprocess.run(
        [sys.executable, "-m", "notifications.serve"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "PRODUCTION"))}, **env, "PORT": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "notifications: bad setting: PRODUCTION=true and OIDC_ISSUER is not set: production never runs without "
        "sender verification"
    ]


def test_environment_variables_are_recorded_from_every_reader() -> None:
    from notifications.settings import environment_variables

    names = environment_variables()
    # Settings, the OIDC settings (read only once OIDC_AUDIENCE turns them on) and the connection limits.
    assert {"MAX_BODY_BYTES", "PORT", "HOST", "OIDC_AUDIENCE", "OIDC_JWKS_TOKEN_FILE", "LIMIT_CONCURRENCY"} <= names
    assert "MAX_BODY_BYTE" not in names
