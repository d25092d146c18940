"""What sender-token verification costs: the pieces `make bench BENCH_ARGS=--oidc` uses.

A loopback issuer (a key pair made here, its JWKS served on 127.0.0.1, a token shaped like the one the Kafka
Broker dispatcher sends) for the over-the-wire run, and an in-process timing of one uncached verification per
algorithm, which the wire run does not show: the dispatcher reuses one token per Trigger, so under load almost
every request takes the cached path.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from notifications.oidc import OidcSettings, TokenVerifier

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "bench-audience"


@dataclass(frozen=True)
class LoopbackIssuer:
    env: dict[str, str]
    token: str
    keys: dict[str, Any]
    """kid -> private key, for minting more tokens."""


def _jwk(kid: str, alg: str, private_key: Any) -> dict[str, Any]:
    entry = jwt.get_algorithm_by_name(alg).to_jwk(private_key.public_key(), as_dict=True)
    return {**entry, "kid": kid, "alg": alg, "use": "sig"}


def mint(private_key: Any, kid: str, alg: str, jti: str = "") -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": [AUDIENCE], "sub": "system:serviceaccount:bench:trigger", "iat": now,
              "nbf": now, "exp": now + 3600, "jti": jti}  # fmt: skip
    return jwt.encode(claims, private_key, algorithm=alg, headers={"kid": kid})


@contextmanager
def loopback_issuer() -> Iterator[LoopbackIssuer]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    document = orjson.dumps({"keys": [_jwk("bench-rsa", "RS256", rsa_key), _jwk("bench-ec", "ES256", ec_key)]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_ISSUER": ISSUER,
        "OIDC_JWKS_URL": f"http://127.0.0.1:{server.server_address[1]}/openid/v1/jwks",
        "OIDC_ALLOWED_SUBJECTS": "system:serviceaccount:bench:trigger",
    }
    try:
        yield LoopbackIssuer(env, mint(rsa_key, "bench-rsa", "RS256"), {"bench-rsa": rsa_key, "bench-ec": ec_key})
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _asgi_request_cost(app: Any, token: str | None, first_offset: int, requests: int) -> float:
    """Median microseconds per POST /events/notifications through the whole ASGI app, no sockets: the steady
    figure on a shared box, where wall-clock and even CPU per event over loopback swing by tens of percent."""
    from notifications.send_event import encode, example_payload, kafka_source_event

    payload = example_payload("notifications")
    prepared = []
    for offset in range(first_offset, first_offset + requests):
        message = encode(kafka_source_event("notifications", payload, offset=offset), "binary")
        headers = [(name.lower().encode(), value.encode()) for name, value in message.headers.items()]
        if token:
            headers.append((b"authorization", b"Bearer " + token.encode()))
        prepared.append((headers, message.body))

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 202:
            raise RuntimeError(f"bench request answered {message['status']}")

    async def run() -> float:
        samples = []
        for headers, body in prepared:
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                     "scheme": "http", "path": "/events/notifications", "raw_path": b"/events/notifications",
                     "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
                     "server": ("127.0.0.1", 8080)}  # fmt: skip
            messages = [{"type": "http.request", "body": body, "more_body": False}]

            async def receive(messages: list[dict[str, Any]] = messages) -> dict[str, Any]:
                return messages.pop() if messages else {"type": "http.disconnect"}

            started = time.perf_counter()
            await app(scope, receive, send)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples) * 1e6

    return asyncio.run(run())


def asgi_cost_report(rounds: int = 5, requests: int = 2000) -> str:
    """The same app with verification off and on (one reused token), alternating rounds, event log silenced."""
    from notifications.app import create_app
    from notifications.settings import Settings

    events_log = logging.getLogger("notifications.events")
    level = events_log.level
    events_log.setLevel(logging.CRITICAL)
    try:
        with loopback_issuer() as issuer:
            settings = Settings.from_env(issuer.env)
            apps = {"off": create_app(Settings()), "on": create_app(settings)}
            _asgi_request_cost(apps["on"], issuer.token, 0, 50)  # fetch the JWKS, verify the token once
            figures: dict[str, list[float]] = {"off": [], "on": []}
            for number in range(1, rounds + 1):
                for name, app in apps.items():
                    token = issuer.token if name == "on" else None
                    figures[name].append(_asgi_request_cost(app, token, number * 10_000_000, requests))
    finally:
        events_log.setLevel(level)
    off, on = (statistics.median(figures[name]) for name in ("off", "on"))
    return f"in-process ASGI request, median: verification off {off:.1f} us, on {on:.1f} us ({on - off:+.1f} us)"


def uncached_verification_report(tokens_per_algorithm: int = 300) -> str:
    """Median microseconds for one full verification (RS256, ES256) and for a cache hit, in this process."""
    with loopback_issuer() as issuer:
        settings = OidcSettings.from_env(issuer.env)
        assert settings is not None
        verifier = TokenVerifier(settings)
        lines = []

        async def timed(header: bytes) -> float:
            started = time.perf_counter()
            await verifier.verify(header)
            return (time.perf_counter() - started) * 1e6

        async def measure() -> None:
            await verifier.verify(b"Bearer " + issuer.token.encode())  # fetch the JWKS once, outside the timing
            for kid, alg in (("bench-rsa", "RS256"), ("bench-ec", "ES256")):
                tokens = [mint(issuer.keys[kid], kid, alg, jti=str(n)).encode() for n in range(tokens_per_algorithm)]
                samples = sorted([await timed(b"Bearer " + token) for token in tokens])
                lines.append(f"{alg} uncached {samples[len(samples) // 2]:.0f} us")
            hits = sorted([await timed(b"Bearer " + issuer.token.encode()) for _ in range(tokens_per_algorithm)])
            lines.append(f"cache hit {hits[len(hits) // 2]:.1f} us")

        asyncio.run(measure())
    return "token verification in process, median per request: " + ", ".join(lines)
