"""Production server: `python -m notifications.serve` (one worker, uvloop + httptools, JSON logs at INFO).

On SIGTERM readiness turns false at once; the listener closes after `DRAIN_DELAY_SECONDS` and in-flight
requests get up to `GRACEFUL_SHUTDOWN_SECONDS` to finish. A second SIGTERM/SIGINT skips the delay.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

from notifications.connection_limits import ConnectionLimits, protocol_class
from notifications.json_logging import configure_logging
from notifications.lifecycle import Lifecycle
from notifications.settings import Settings

log = logging.getLogger("notifications.serve")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_delay_seconds: float) -> None:
        super().__init__(config)
        self._lifecycle = lifecycle
        self._drain_delay = drain_delay_seconds
        self._stop_listening_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first_signal = not self._lifecycle.draining
        self._lifecycle.draining = True
        if first_signal and self._drain_delay > 0:
            self._stop_listening_at = time.monotonic() + self._drain_delay
            log.info("draining: readiness is false, listener closes in %.1fs", self._drain_delay)
            return
        log.info("draining: closing listener, waiting for in-flight requests")
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._stop_listening_at is not None and time.monotonic() >= self._stop_listening_at:
            return True
        return await super().on_tick(counter)


def _load_factory(spec: str) -> Callable[[Settings], FastAPI]:
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def build_server(
    settings: Settings, factory: Callable[[Settings], FastAPI], limits: ConnectionLimits | None = None
) -> DrainingServer:
    app = factory(settings)
    limits = limits or ConnectionLimits.from_env()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # uvicorn's httptools protocol plus header/body read timeouts and header limits (connection_limits.py).
        http=protocol_class(limits),
        limit_concurrency=limits.limit_concurrency,
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        # queue-proxy is the only client; X-Forwarded-* rewriting buys nothing and costs per request.
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds),
        timeout_keep_alive=limits.keep_alive_seconds,
    )
    return DrainingServer(config, app.state.lifecycle, settings.drain_delay_seconds)


def port_in_use(host: str, port: int) -> bool:
    """Whether binding host:port fails as uvicorn's would (it sets SO_REUSEADDR too), checked before the app is
    built so a busy port is one line with a hint rather than uvicorn's log record."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def log_sender_verification(settings: Settings) -> None:
    """Say once, at start, whether deliveries are verified: "off" must never be a silent default."""
    oidc = settings.oidc
    if oidc is None:
        log.warning(
            "sender verification off: no OIDC_* setting is set, so the event routes accept requests without a token "
            "(set OIDC_AUDIENCE, OIDC_ISSUER, OIDC_JWKS_URL and OIDC_ALLOWED_SUBJECTS to verify senders)"
        )
        return
    log.info(
        "sender verification on: issuer %s, audience %s, %d allowed subject(s)",
        oidc.issuer,
        ",".join(oidc.audiences),
        len(oidc.allowed_subjects),
    )


def _exit_cleanly(_sig: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--factory",
        default="notifications.app:create_app",
        help="module:callable taking Settings and returning the app (tests inject a slow sink this way)",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        limits = ConnectionLimits.from_env()
    except ValueError as exc:  # a bad setting is one line and exit status 1, not a traceback
        raise SystemExit(f"notifications: bad setting: {exc}") from None
    if port_in_use(settings.host, settings.port):
        print(
            f"serve: {settings.host}:{settings.port} is already in use (another `make serve`?); stop that process "
            f"or pick a free port: make serve PORT={settings.port + 1}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    configure_logging(settings.log_level)
    log_sender_verification(settings)
    server = build_server(settings, _load_factory(args.factory), limits)
    # uvicorn re-raises the captured SIGTERM after a graceful shutdown; with this as the restored handler the
    # process then exits 0 instead of dying from the signal.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    server.run()


if __name__ == "__main__":
    main()
