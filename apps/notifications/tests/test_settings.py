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


def test_production_names_every_missing_setting_in_one_line() -> None:
    env = {"PRODUCTION": "true", "OIDC_ISSUER": PRODUCTION_ENV["OIDC_ISSUER"]}
    with pytest.raises(OidcConfigError) as raised:
        Settings.from_env(env)
    assert str(raised.value) == (
        "PRODUCTION=true and OIDC_AUDIENCE, OIDC_JWKS_URL and OIDC_ALLOWED_SUBJECTS are not set: production never "
        "runs without sender verification"
    )


# The example: outside production, an issuer and allowed subjects but no audience used to start with
# verification silently off.
HALF_CONFIGURED = {k: v for k, v in PRODUCTION_ENV.items() if k in ("OIDC_ISSUER", "OIDC_ALLOWED_SUBJECTS")}


@pytest.mark.parametrize("production", ["false", None])
def test_outside_production_any_oidc_setting_requires_them_all(production: str | None) -> None:
    env = {**HALF_CONFIGURED, **({"PRODUCTION": production} if production else {})}
    with pytest.raises(OidcConfigError) as raised:
        Settings.from_env(env)
    assert str(raised.value) == (
        "sender verification is half-configured: OIDC_AUDIENCE and OIDC_JWKS_URL are not set (set: "
        "OIDC_ALLOWED_SUBJECTS, OIDC_ISSUER); set all of OIDC_AUDIENCE, OIDC_ISSUER, OIDC_JWKS_URL, "
        "OIDC_ALLOWED_SUBJECTS to verify senders, or none to run without verification"
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        # A misspelt optional setting is no longer a silent no-op outside production either.
        ({"OIDC_JWKS_TTL_SECOND": "60"}, "OIDC_JWKS_TTL_SECOND is not a setting the subscriber reads"),
        ({"OIDC_ALLOWED_SUBJECTS": "notifications"}, "OIDC_ALLOWED_SUBJECTS entry 'notifications'"),
        (
            {"OIDC_JWKS_URL": "http://10.0.0.1/jwks"},
            "OIDC_JWKS_URL='http://10.0.0.1/jwks' is not an https:// URL (http:// is accepted for loopback only)",
        ),
    ],
)
def test_outside_production_a_complete_set_is_still_checked(change: dict, named: str) -> None:
    env = {k: v for k, v in {**PRODUCTION_ENV, "PRODUCTION": "false", **change}.items() if v is not None}
    with pytest.raises(OidcConfigError, match=rf"^sender verification is misconfigured: {re.escape(named)}"):
        Settings.from_env(env)


def test_outside_production_no_oidc_setting_means_verification_off() -> None:
    assert Settings.from_env({}).oidc is None
    assert Settings.from_env({"OIDC_AUDIENCE": "", "OIDC_ISSUER": " "}).oidc is None  # blank is unset
    loopback = {**PRODUCTION_ENV, "PRODUCTION": "false", "OIDC_JWKS_URL": "http://127.0.0.1:1/jwks"}
    assert Settings.from_env(loopback).oidc is not None  # a local issuer over loopback http: on outside production
    with pytest.raises(OidcConfigError, match="PRODUCTION='yes' must be true or false"):
        Settings.from_env({"PRODUCTION": "yes"})


def _without_oidc(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if not k.startswith(("OIDC_", "PRODUCTION"))}


def test_serve_refuses_a_half_configured_verifier_outside_production() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "notifications.serve"],
        env={**_without_oidc(dict(os.environ)), **HALF_CONFIGURED, "PORT": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "notifications: bad setting: sender verification is half-configured: OIDC_AUDIENCE and OIDC_JWKS_URL are "
        "not set"
    ), proc.stderr


def test_serve_says_once_at_start_that_verification_is_off(tmp_path) -> None:
    from notifications_testkit import start_server, stop_server

    os_env = dict(os.environ)
    saved = {k: os.environ.pop(k) for k in list(os_env) if k.startswith(("OIDC_", "PRODUCTION"))}
    try:
        server = start_server(tmp_path)
    finally:
        os.environ.update(saved)
    try:
        said = [e for e in server.log_entries() if "sender verification" in str(e.get("message", e))]
    finally:
        stop_server(server)
    assert len(said) == 1, server.log_path.read_text()
    assert said[0]["level"] == "WARNING"
    assert said[0]["message"].startswith("sender verification off: no OIDC_* setting is set")


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
