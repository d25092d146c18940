"""Sender identity: verify the OIDC bearer token Knative Eventing puts on every delivery.

With `authentication-oidc` enabled, the Kafka Broker dispatcher asks the API server (TokenRequest) for a token of
the Trigger's OIDC service account with the subscriber's audience (`spec.subscriber.audience`) and sends it as `Authorization: Bearer <jwt>`. Anyone who can reach the pod can also send a
request, so when `OIDC_AUDIENCE` is set every delivery route answers 401 unless the token is signed by a key of
the cluster's issuer (JWKS), names our issuer and audience, and is within its validity window.

Why the pieces look the way they do:
- The JWKS is fetched asynchronously (never blocking the event loop), single-flight, with a bounded total
  timeout and response size, cached for `OIDC_JWKS_TTL_SECONDS`. An unknown `kid` triggers a refetch (the issuer
  rotated its key), but at most once per `OIDC_JWKS_MIN_REFETCH_SECONDS`, so tokens with forged `kid`s cannot
  turn into a request flood against the API server.
- A JWKS we cannot fetch is our transient fault: 503, which the dispatcher retries, never a 2xx and never a
  401 (a 401 would dead-letter a genuine event). Keys already fetched keep working for
  `OIDC_JWKS_MAX_STALE_SECONDS` past their TTL while the issuer is unreachable.
- Verified tokens are cached until their `exp` (bounded), because the dispatcher reuses one token per Trigger for
  most of an hour: the hot path is then a dict lookup instead of an RSA/ECDSA verification.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import orjson
from jwt.api_jwk import PyJWK
from starlette.requests import Request
from starlette.responses import Response

from notifications.json_logging import FIELDS_ATTR
from notifications.metrics import EventMetrics

log = logging.getLogger("notifications.oidc")

ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
"""Asymmetric only: the issuer's public keys verify, nobody but the issuer signs. No `none`, no HS* (a public key
used as an HMAC secret is the classic algorithm-confusion forgery)."""

REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
LEEWAY_SECONDS = 30.0
"""Clock skew tolerated between the API server that signed the token and this pod."""
MAX_TOKEN_LIFETIME_SECONDS = 24 * 3600
"""Knative requests 1-hour tokens (eventing `pkg/auth/token_provider.go`, eventing-kafka-broker `TokenProvider`);
a token that claims to live longer than a day did not come from that path."""
MAX_JWKS_BYTES = 1024 * 1024
MAX_TOKEN_BYTES = 16 * 1024


class OidcConfigError(ValueError):
    """The OIDC_* environment is inconsistent; raised at startup, never per request."""


# Every OIDC_* variable this app reads (OidcSettings.from_env). In production an OIDC_* name outside this set is a
# misspelling: the real setting is then missing, and without the production rule a missing OIDC_AUDIENCE would
# silently turn verification off.
OIDC_SETTINGS = (
    "OIDC_AUDIENCE",
    "OIDC_ISSUER",
    "OIDC_JWKS_URL",
    "OIDC_JWKS_CA_FILE",
    "OIDC_JWKS_TOKEN_FILE",
    "OIDC_ALLOWED_SUBJECTS",
    "OIDC_JWKS_TTL_SECONDS",
    "OIDC_JWKS_MIN_REFETCH_SECONDS",
    "OIDC_JWKS_MAX_STALE_SECONDS",
    "OIDC_JWKS_TIMEOUT_SECONDS",
    "OIDC_TOKEN_CACHE_ENTRIES",
)
# What verification cannot run without, in every environment: who the tokens are for, who signs them, where the
# keys are, who may send. Any OIDC_* set means all of these are required; none set means verification is off
# (outside production), so a forgotten one can never leave a half-configured verifier that silently accepts anyone.
REQUIRED = ("OIDC_AUDIENCE", "OIDC_ISSUER", "OIDC_JWKS_URL", "OIDC_ALLOWED_SUBJECTS")
SERVICE_ACCOUNT_SUBJECT = "system:serviceaccount:"
SENDER_SCOPE_KEY = "notifications.oidc.sender"
"""Where `require_bearer` leaves the verified token's `sub` in the ASGI scope for the event's record."""


def oidc_names_set(env: Mapping[str, str]) -> list[str]:
    """The OIDC_* names given a value (a blank value counts as unset, as `NAME=` does in a shell)."""
    return sorted(name for name in env if name.startswith("OIDC_") and str(env[name]).strip())


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def configuration_problems(env: Mapping[str, str], *, production: bool) -> list[str]:
    """Why the subscriber cannot start with these OIDC_* settings, one phrase each naming the variable (empty: it
    can). Outside production no OIDC_* at all is fine (verification off); in production it never is.

    Pure (no files read), so `make validate` asks this same function about the rendered environment
    (gitops/validate/checks/identity.py) before a pod ever starts."""
    if not production and not oidc_names_set(env):
        return []
    problems = [
        f"{name} is not a setting the subscriber reads (known: {', '.join(OIDC_SETTINGS)})"
        for name in sorted(env)
        if name.startswith("OIDC_") and name not in OIDC_SETTINGS
    ]
    missing = [name for name in REQUIRED if not str(env.get(name, "")).strip()]
    if missing:
        problems.append(f"{_names(missing)} {'is' if len(missing) == 1 else 'are'} not set")
    issuer = env.get("OIDC_ISSUER", "").strip()
    if issuer and not _is_issuer(issuer):
        problems.append(
            f"OIDC_ISSUER={issuer!r} is not an https:// URL with a host and no query or fragment (the cluster's "
            "service-account issuer: `kubectl get --raw /.well-known/openid-configuration`)"
        )
    jwks_url = env.get("OIDC_JWKS_URL", "").strip()
    if jwks_url and not _is_jwks_url(jwks_url, loopback_http=not production):
        problems.append(
            f"OIDC_JWKS_URL={jwks_url!r} is not an https:// URL"
            + ("" if production else " (http:// is accepted for loopback only)")
        )
    subjects = [part.strip() for part in env.get("OIDC_ALLOWED_SUBJECTS", "").split(",") if part.strip()]
    problems += [
        f"OIDC_ALLOWED_SUBJECTS entry {subject!r} is not a {SERVICE_ACCOUNT_SUBJECT}<namespace>:<name> subject"
        for subject in subjects
        if not subject.startswith(SERVICE_ACCOUNT_SUBJECT) or subject.count(":") != 3
    ]
    for name in OIDC_SETTINGS:
        if name.endswith(("_SECONDS", "_ENTRIES")) and env.get(name, "").strip():
            try:
                _positive(env, name, 1.0)
            except OidcConfigError as error:
                problems.append(str(error))
    return problems


def production_problems(env: Mapping[str, str]) -> list[str]:
    """Why these OIDC_* settings cannot run in production (empty: they can): `configuration_problems` with
    verification mandatory and the JWKS over https only."""
    return configuration_problems(env, production=True)


def startup_line(env: Mapping[str, str], *, production: bool) -> str | None:
    """The one line the subscriber refuses to start with (None: it starts): every problem, joined."""
    problems = configuration_problems(env, production=production)
    if not problems:
        return None
    if production:
        return f"PRODUCTION=true and {'; '.join(problems)}: production never runs without sender verification"
    state = "half-configured" if any(p.endswith("not set") for p in problems) else "misconfigured"
    return (
        f"sender verification is {state}: {'; '.join(problems)} (set: {', '.join(oidc_names_set(env))}); "
        f"set all of {', '.join(REQUIRED)} to verify senders, or none to run without verification"
    )


@dataclass(frozen=True, slots=True)
class OidcSettings:
    audiences: tuple[str, ...]
    issuer: str
    jwks_url: str
    jwks_ca_file: str | None = None
    jwks_token_file: str | None = None
    allowed_subjects: tuple[str, ...] = ()
    jwks_ttl_seconds: float = 300.0
    jwks_min_refetch_seconds: float = 10.0
    jwks_max_stale_seconds: float = 3600.0
    jwks_timeout_seconds: float = 5.0
    token_cache_entries: int = 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OidcSettings | None:
        """None (verification off) when no OIDC_* is set; otherwise a complete, checked config (any OIDC_* set
        means every one of REQUIRED is: a half-configured verifier is refused, never silently off)."""
        if not oidc_names_set(env):
            return None
        line = startup_line(env, production=False)
        if line:
            raise OidcConfigError(line)
        audiences = tuple(part.strip() for part in env.get("OIDC_AUDIENCE", "").split(",") if part.strip())
        issuer = env.get("OIDC_ISSUER", "").strip()
        jwks_url = env.get("OIDC_JWKS_URL", "").strip()
        defaults = cls(audiences, issuer, jwks_url)
        settings = cls(
            audiences=audiences,
            issuer=issuer,
            jwks_url=jwks_url,
            jwks_ca_file=_existing_file(env, "OIDC_JWKS_CA_FILE"),
            jwks_token_file=_existing_file(env, "OIDC_JWKS_TOKEN_FILE"),
            allowed_subjects=tuple(
                part.strip() for part in env.get("OIDC_ALLOWED_SUBJECTS", "").split(",") if part.strip()
            ),
            jwks_ttl_seconds=_positive(env, "OIDC_JWKS_TTL_SECONDS", defaults.jwks_ttl_seconds),
            jwks_min_refetch_seconds=_positive(env, "OIDC_JWKS_MIN_REFETCH_SECONDS", defaults.jwks_min_refetch_seconds),
            jwks_max_stale_seconds=_positive(env, "OIDC_JWKS_MAX_STALE_SECONDS", defaults.jwks_max_stale_seconds),
            jwks_timeout_seconds=_positive(env, "OIDC_JWKS_TIMEOUT_SECONDS", defaults.jwks_timeout_seconds),
            token_cache_entries=int(_positive(env, "OIDC_TOKEN_CACHE_ENTRIES", defaults.token_cache_entries)),
        )
        return settings


def _is_issuer(issuer: str) -> bool:
    """An Issuer Identifier is an https URL with a host and no query or fragment (OpenID Connect Discovery 1.0 §3,
    Core 1.0 §2); a token's `iss` is compared to it exactly, so any other value would refuse every token."""
    parts = urlsplit(issuer)
    return parts.scheme == "https" and bool(parts.hostname) and not parts.query and not parts.fragment


def _is_jwks_url(url: str, *, loopback_http: bool) -> bool:
    """https, or (outside production) http to loopback: keys fetched over plain HTTP elsewhere could be swapped."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return loopback_http and parts.scheme == "http" and bool(parts.hostname) and _is_loopback(parts.hostname or "")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _existing_file(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not Path(value).is_file():
        raise OidcConfigError(f"{name}={value!r} is not a readable file: mount it, or unset {name}")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise OidcConfigError(f"{name}={raw!r} is not a number: set a positive number of seconds/entries") from None
    if value <= 0:
        raise OidcConfigError(f"{name}={raw!r} must be positive")
    return value


class AuthRejected(Exception):
    """The request carries no acceptable credentials: a client-side fault, never retried by the dispatcher."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        assert status in (401, 403), status
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail[:200]


class JwksUnavailable(Exception):
    """The issuer's keys cannot be had right now: our transient fault, answered 503 so the delivery is retried."""


@dataclass(frozen=True, slots=True)
class _KeySet:
    keys: dict[str, PyJWK]
    fetched_at: float


class JwksCache:
    """The issuer's signing keys by `kid`, refreshed on TTL and on an unknown `kid`, rate-limited and single-flight."""

    def __init__(self, settings: OidcSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._key_set: _KeySet | None = None
        self._last_attempt: float | None = None
        self._last_error = "not fetched yet"
        self._generation = 0
        self._lock = asyncio.Lock()
        self.fetches = 0
        """Fetch attempts so far (tests and the log use it to show the rate limit holds)."""

    def _usable(self, now: float) -> _KeySet | None:
        key_set = self._key_set
        if key_set is None:
            return None
        if now - key_set.fetched_at > self._settings.jwks_ttl_seconds + self._settings.jwks_max_stale_seconds:
            return None
        return key_set

    def _may_fetch(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self._settings.jwks_min_refetch_seconds

    def current_kids(self) -> Mapping[str, PyJWK]:
        key_set = self._usable(self._clock())
        return key_set.keys if key_set is not None else {}

    async def key_for(self, kid: str) -> PyJWK | None:
        """The key for `kid`; None if the issuer does not have it; JwksUnavailable if we cannot tell."""
        now = self._clock()
        key_set = self._usable(now)
        fresh = key_set is not None and now - key_set.fetched_at < self._settings.jwks_ttl_seconds
        if fresh and kid in key_set.keys:
            return key_set.keys[kid]
        # A fetch in flight (the first token with a rotated key started it) is awaited, not skipped: answering 401
        # unknown_kid meanwhile would dead-letter every delivery of the burst (`make e2e`, jwks-rotated).
        if self._may_fetch(now) or self._lock.locked():
            await self._refresh()
            key_set = self._usable(self._clock())
        if key_set is None:
            raise JwksUnavailable(f"issuer keys unavailable: {self._last_error}")
        return key_set.keys.get(kid)

    async def _refresh(self) -> None:
        generation = self._generation
        async with self._lock:
            if self._generation != generation:
                return  # another request refreshed (or tried to) while this one waited
            self._last_attempt = self._clock()
            self.fetches += 1
            try:
                keys = await self._fetch()
            except JwksUnavailable as exc:
                self._last_error = str(exc)
                log.warning(
                    "JWKS fetch failed",
                    extra={FIELDS_ATTR: {"jwks_url": self._settings.jwks_url, "error": str(exc)}},
                )
            else:
                self._key_set = _KeySet(keys, self._clock())
                self._last_error = ""
                log.info(
                    "JWKS fetched",
                    extra={FIELDS_ATTR: {"jwks_url": self._settings.jwks_url, "kids": sorted(keys)}},
                )
            finally:
                self._generation += 1

    async def _fetch(self) -> dict[str, PyJWK]:
        settings = self._settings
        # kube-apiserver serves the JWKS only as application/jwk-set+json and answers 406 to `Accept:
        # application/json` alone (k8s.io/kubernetes pkg/routes/openidmetadata.go; found by `make e2e ENV=prod`).
        headers = {"Accept": "application/jwk-set+json, application/json"}
        if settings.jwks_token_file:
            # Read per fetch: the kubelet rotates projected service-account tokens in place.
            token = Path(settings.jwks_token_file).read_text().strip()
            headers["Authorization"] = f"Bearer {token}"
        verify: ssl.SSLContext | bool = True
        if settings.jwks_ca_file:
            verify = ssl.create_default_context(cafile=settings.jwks_ca_file)
        try:
            async with asyncio.timeout(settings.jwks_timeout_seconds):
                async with (
                    httpx.AsyncClient(
                        verify=verify, timeout=settings.jwks_timeout_seconds, follow_redirects=False, trust_env=False
                    ) as client,
                    client.stream("GET", settings.jwks_url, headers=headers) as response,
                ):
                    if response.status_code != 200:
                        raise JwksUnavailable(f"GET {settings.jwks_url} answered {response.status_code}")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_JWKS_BYTES:
                            raise JwksUnavailable(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
        except TimeoutError:
            raise JwksUnavailable(
                f"GET {settings.jwks_url} took longer than {settings.jwks_timeout_seconds}s"
            ) from None
        except httpx.HTTPError as exc:
            raise JwksUnavailable(f"GET {settings.jwks_url} failed: {type(exc).__name__}: {exc}") from None
        return parse_jwks(bytes(body))


def parse_jwks(body: bytes) -> dict[str, PyJWK]:
    """Usable asymmetric signing keys by kid. Keys without kid, symmetric keys and encryption keys are skipped."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise JwksUnavailable(f"JWKS is not JSON: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksUnavailable("JWKS has no 'keys' list")
    keys: dict[str, PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("kty") not in ("RSA", "EC") or entry.get("use", "sig") != "sig":
            continue
        try:
            key = PyJWK(entry)
        except jwt.PyJWTError:
            continue
        if key.algorithm_name in ALLOWED_ALGORITHMS:
            keys[entry["kid"]] = key
    if not keys:
        raise JwksUnavailable("JWKS has no usable RSA/EC signing key with a kid")
    return keys


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str
    expires_at: float
    kid: str


class TokenVerifier:
    """Checks one `Authorization` header value: signature, issuer, audience, validity window, subject."""

    def __init__(self, settings: OidcSettings, keys: JwksCache | None = None) -> None:
        self.settings = settings
        self.keys = keys or JwksCache(settings)
        self._verified: dict[bytes, VerifiedToken] = {}

    @property
    def cached_tokens(self) -> int:
        return len(self._verified)

    async def verify(self, authorization: bytes | None) -> VerifiedToken:
        token = bearer_token(authorization)
        cache_key = hashlib.blake2b(token, digest_size=16).digest()
        cached = self._verified.get(cache_key)
        if cached is not None:
            if cached.expires_at > time.time() and cached.kid in self.keys.current_kids():
                return cached
            del self._verified[cache_key]
        verified = await self._verify_uncached(token)
        self._remember(cache_key, verified)
        return verified

    async def _verify_uncached(self, token: bytes) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthRejected(401, "malformed_token", f"not a JWT: {exc}") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise AuthRejected(
                401, "algorithm_not_allowed", f"alg {alg!r} is not one of {', '.join(ALLOWED_ALGORITHMS)}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthRejected(401, "missing_kid", "token header has no kid")
        key = await self.keys.key_for(kid)
        if key is None:
            raise AuthRejected(401, "unknown_kid", f"kid {kid[:64]!r} is not in the issuer's JWKS")
        settings = self.settings
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=list(settings.audiences),
                issuer=settings.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthRejected(401, "token_expired", "token exp is in the past") from None
        except jwt.InvalidAudienceError:
            raise AuthRejected(401, "wrong_audience", f"token aud does not include {settings.audiences[0]!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthRejected(401, "wrong_issuer", f"token iss is not {settings.issuer!r}") from None
        except jwt.ImmatureSignatureError:
            raise AuthRejected(401, "token_not_yet_valid", "token nbf/iat is in the future") from None
        except jwt.InvalidSignatureError:
            raise AuthRejected(401, "bad_signature", "signature does not verify with the issuer's key") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthRejected(401, "missing_claim", str(exc)) from None
        except jwt.PyJWTError as exc:
            raise AuthRejected(401, "invalid_token", f"{type(exc).__name__}: {exc}") from None
        exp, iat, subject = claims["exp"], claims["iat"], claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthRejected(401, "missing_claim", "token sub is empty")
        if exp - iat > MAX_TOKEN_LIFETIME_SECONDS:
            raise AuthRejected(
                401, "token_lifetime", f"token lives {exp - iat}s, more than {MAX_TOKEN_LIFETIME_SECONDS}s"
            )
        if settings.allowed_subjects and not subject_allowed(subject, settings.allowed_subjects):
            raise AuthRejected(403, "sender_not_allowed", f"sub {subject[:120]!r} is not in OIDC_ALLOWED_SUBJECTS")
        return VerifiedToken(subject, float(exp), kid)

    def _remember(self, cache_key: bytes, verified: VerifiedToken) -> None:
        limit = self.settings.token_cache_entries
        if len(self._verified) >= limit:
            now = time.time()
            for stale in [key for key, entry in self._verified.items() if entry.expires_at <= now]:
                del self._verified[stale]
            while len(self._verified) >= limit:
                del self._verified[next(iter(self._verified))]  # oldest first: dicts keep insertion order
        self._verified[cache_key] = verified


def bearer_token(authorization: bytes | None) -> bytes:
    if authorization is None:
        raise AuthRejected(401, "missing_token", "no Authorization header; expected 'Bearer <OIDC token>'")
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        raise AuthRejected(401, "missing_token", "Authorization is not 'Bearer <OIDC token>'")
    token = token.strip()
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthRejected(401, "malformed_token", f"token longer than {MAX_TOKEN_BYTES} bytes")
    return token


def subject_allowed(subject: str, patterns: tuple[str, ...]) -> bool:
    """EventPolicy `from.sub` semantics: an exact name, or a prefix ending in `*`."""
    return any(subject.startswith(p[:-1]) if p.endswith("*") else subject == p for p in patterns)


Endpoint = Callable[[Request], Awaitable[Response]]

_CHALLENGE = {
    401: 'Bearer error="invalid_token"',
    403: 'Bearer error="insufficient_scope"',
}
_IDENTITY_HEADERS = {b"ce-id": "ce_id", b"ce-source": "ce_source", b"ce-type": "ce_type"}


def require_bearer(verifier: TokenVerifier, route: str, endpoint: Endpoint, metrics: EventMetrics) -> Endpoint:
    """Wrap a delivery endpoint so nothing (body, dedup, sink) runs before the sender is authenticated."""

    async def authenticated(request: Request) -> Response:
        started = time.perf_counter()
        headers = request.scope["headers"]
        values = [value for name, value in headers if name == b"authorization"]
        try:
            if len(values) > 1:
                raise AuthRejected(401, "ambiguous_token", "more than one Authorization header")
            verified = await verifier.verify(values[0] if values else None)
        except AuthRejected as exc:
            challenge = "Bearer" if exc.reason == "missing_token" else _CHALLENGE[exc.status]
            outcome = "unauthorized" if exc.status == 401 else "forbidden"
            _log_refusal(route, outcome, exc.reason, exc.detail, headers, metrics, started)
            return _error(exc.status, exc.reason, exc.detail, {"WWW-Authenticate": challenge})
        except JwksUnavailable as exc:
            detail = str(exc)[:200]
            _log_refusal(route, "auth_unavailable", "jwks_unavailable", detail, headers, metrics, started)
            return _error(503, "jwks_unavailable", detail, {"Retry-After": "5"})
        # The event's record names who sent it (event_handling reads this): the verified `sub`, not a header.
        request.scope[SENDER_SCOPE_KEY] = verified.subject
        return await endpoint(request)

    return authenticated


def _error(status: int, reason: str, detail: str, headers: dict[str, str]) -> Response:
    # Short on purpose: the dispatcher copies at most 1024 bytes of it into the dead letter's knativeerrordata.
    body = orjson.dumps({"error": reason, "detail": detail})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _log_refusal(
    route: str,
    outcome: str,
    reason: str,
    detail: str,
    headers: list[tuple[bytes, bytes]],
    metrics: EventMetrics,
    started: float,
) -> None:
    metrics.observe(route, None, outcome, time.perf_counter() - started)
    fields: dict[str, Any] = {"route": route, "outcome": outcome, "error": reason, "detail": detail}
    for name, value in headers:
        if name in _IDENTITY_HEADERS:
            fields[_IDENTITY_HEADERS[name]] = value.decode("latin-1")[:256]
    log.warning("event " + outcome, extra={FIELDS_ATTR: fields})
