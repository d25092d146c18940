"""Runtime settings from the environment (the Knative Service sets them; defaults suit local runs)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from notifications.connection_limits import ConnectionLimits
from notifications.oidc import OidcConfigError, OidcSettings, startup_line

# Set by the render from environments.yaml (`production: true` -> "true"); `make validate` checks the two agree.
PRODUCTION = "PRODUCTION"


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8080
    log_level: str = "INFO"
    # None: each route accepts its topic's `max_record_bytes` (notifications.topics), the one place a record's
    # largest size is stated, so the body limit follows the topic (a binary-mode body is the record's value, which
    # is smaller). MAX_BODY_BYTES overrides it for every route; `make validate` (check `record-size`) fails when
    # that is below a topic's records.
    max_body_bytes: int | None = None
    dedup_window_seconds: float = 600.0
    dedup_max_entries: int = 100_000
    # Knative's preStop hook already holds SIGTERM until queue-proxy has drained, so no delay is needed there;
    # elsewhere (plain Deployment) set it to the endpoints propagation time so /readyz=503 is seen first.
    drain_delay_seconds: float = 0.0
    graceful_shutdown_seconds: float = 25.0
    # Sender authentication (notifications.oidc): None, i.e. off, when no OIDC_* is set; any OIDC_* set means the
    # whole set, well-formed, or from_env refuses. In production it is never off.
    oidc: OidcSettings | None = None
    production: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        production = _production(env)
        line = startup_line(env, production=production)
        if line:
            # One line, then exit 1 (serve.main): the pod never passes readiness, so Serving never routes to it.
            raise OidcConfigError(line)
        return cls(
            host=env.get("HOST", defaults.host),
            port=int(env.get("PORT", defaults.port)),
            log_level=env.get("LOG_LEVEL", defaults.log_level).upper(),
            max_body_bytes=_optional_int(env.get("MAX_BODY_BYTES")),
            dedup_window_seconds=float(env.get("DEDUP_WINDOW_SECONDS", defaults.dedup_window_seconds)),
            dedup_max_entries=int(env.get("DEDUP_MAX_ENTRIES", defaults.dedup_max_entries)),
            drain_delay_seconds=float(env.get("DRAIN_DELAY_SECONDS", defaults.drain_delay_seconds)),
            graceful_shutdown_seconds=float(env.get("GRACEFUL_SHUTDOWN_SECONDS", defaults.graceful_shutdown_seconds)),
            oidc=OidcSettings.from_env(env),
            production=production,
        )


def _optional_int(raw: str | None) -> int | None:
    return None if raw is None or not raw.strip() else int(raw)


def _production(env: Mapping[str, str]) -> bool:
    raw = env.get(PRODUCTION, "").strip().lower()
    if raw not in ("", "true", "false"):
        raise OidcConfigError(f"{PRODUCTION}={raw!r} must be true or false")
    return raw == "true"


class _Recorder(Mapping[str, str]):
    """An environment that remembers every name read from it (and holds only what `values` gives)."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values, self.read = dict(values), set[str]()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self.values[name]

    def get(self, name: str, default: object = None) -> object:  # type: ignore[override]
        self.read.add(name)
        return self.values.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


# Just enough to turn sender-token verification on, so its reader reads every OIDC_* name it knows.
_OIDC_ON = {
    "OIDC_AUDIENCE": "a",
    "OIDC_ISSUER": "https://issuer.example",
    "OIDC_JWKS_URL": "https://issuer.example/k",
    "OIDC_ALLOWED_SUBJECTS": "system:serviceaccount:a:b",
}


def environment_variables() -> frozenset[str]:
    """Every environment variable the subscriber reads: recorded from the readers themselves (Settings, with the
    OIDC settings on, and ConnectionLimits), so a new setting is known here the moment it is read, and
    `make validate` can flag a name on the app's container that nothing reads (a typo such as MAX_BODY_BYTE)."""
    recorder = _Recorder(_OIDC_ON)
    Settings.from_env(recorder)
    ConnectionLimits.from_env(recorder)
    return frozenset(recorder.read)
