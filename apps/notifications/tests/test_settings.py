"""Runtime settings from the environment (notifications.settings)."""

from __future__ import annotations

from notifications.settings import Settings


def test_settings_from_env() -> None:
    settings = Settings.from_env({"PORT": "9090", "MAX_BODY_BYTES": "1024", "LOG_LEVEL": "debug"})
    assert (settings.port, settings.max_body_bytes, settings.log_level) == (9090, 1024, "DEBUG")
    assert Settings.from_env({}).port == 8080


def test_environment_variables_are_recorded_from_every_reader() -> None:
    from notifications.settings import environment_variables

    names = environment_variables()
    # Settings, the OIDC settings (read only once OIDC_AUDIENCE turns them on) and the connection limits.
    assert {"MAX_BODY_BYTES", "PORT", "HOST", "OIDC_AUDIENCE", "OIDC_JWKS_TOKEN_FILE", "LIMIT_CONCURRENCY"} <= names
    assert "MAX_BODY_BYTE" not in names
