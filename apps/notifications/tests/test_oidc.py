"""Sender authentication (notifications.oidc) against the real server over loopback.

Keys, tokens and the JWKS endpoint are real and made here (oidc_testkit): what passes is what a Kubernetes
TokenRequest token signed by the cluster's issuer looks like; every forgery below is one an in-cluster attacker
can actually send.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from notifications.app import create_app
from notifications.oidc import (
    JwksCache,
    JwksUnavailable,
    OidcConfigError,
    OidcSettings,
    TokenVerifier,
    require_bearer,
    subject_allowed,
)
from notifications.send_event import main as send_event_main
from notifications.settings import Settings
from notifications_testkit import LiveServer, binary_event, start_server, stop_server
from oidc_testkit import (
    AUDIENCE,
    ISSUER,
    SUBJECT,
    JwksServer,
    SigningKey,
    claims,
    hand_signed,
    oidc_env,
    serve_jwks,
    write_tls_files,
)

pytestmark = pytest.mark.timeout(90)

NOTIFICATIONS = "/events/notifications"
LOGGINGS = "/events/loggings"
DELIVERY_ROUTES = (NOTIFICATIONS, LOGGINGS)

RSA_KEY = SigningKey.rsa("rsa-2026-11")
EC_KEY = SigningKey.ec("ec-2026-11")


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with serve_jwks([RSA_KEY, EC_KEY]) as server:
        yield server


@pytest.fixture(scope="module")
def secured(jwks: JwksServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("oidc"), env=oidc_env(jwks.url))
    yield server
    stop_server(server)


@pytest.fixture
def client(secured: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=secured.url, timeout=10) as http:
        yield http


def post(client: httpx.Client, token: str | None, path: str = NOTIFICATIONS) -> tuple[httpx.Response, str]:
    topic = "loggings" if path == LOGGINGS else "notifications"
    headers, body, ce_id = binary_event(topic)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(path, headers=headers, content=body), ce_id


def assert_unauthorized(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == reason
    assert len(response.content) < 1024  # it becomes the dead letter's knativeerrordata


@pytest.mark.parametrize("key", [RSA_KEY, EC_KEY], ids=["RS256", "ES256"])
def test_token_signed_by_the_issuer_is_accepted_and_the_event_processed(
    client: httpx.Client, secured: LiveServer, key: SigningKey
) -> None:
    response, ce_id = post(client, key.token())

    assert (response.status_code, response.content) == (202, b"")
    [line] = secured.wait_for_log(lambda entry: entry.get("ce_id") == ce_id)
    assert line["outcome"] == "processed"


def test_the_record_names_the_verified_subject(client: httpx.Client, secured: LiveServer) -> None:
    response, ce_id = post(client, RSA_KEY.token())

    assert response.status_code == 202, response.text
    [line] = secured.wait_for_log(lambda entry: entry.get("ce_id") == ce_id)
    assert (line["outcome"], line["sender_sub"]) == ("processed", SUBJECT)


@pytest.mark.parametrize("path", DELIVERY_ROUTES)
def test_every_delivery_route_refuses_a_request_without_a_token(client: httpx.Client, path: str) -> None:
    response, _ = post(client, None, path)

    assert_unauthorized(response, "missing_token")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", DELIVERY_ROUTES)
def test_every_delivery_route_accepts_a_valid_token(client: httpx.Client, path: str) -> None:
    response, _ = post(client, RSA_KEY.token(), path)

    assert response.status_code == 202, response.text


def test_probes_and_metrics_need_no_token(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200


def _forgeries() -> dict[str, tuple[str, str]]:
    other_key = SigningKey.rsa(RSA_KEY.kid)  # same kid, a key the issuer never had
    now = int(time.time())
    return {
        "wrong audience": (RSA_KEY.token(aud=["some-other-service"]), "wrong_audience"),
        "wrong issuer": (RSA_KEY.token(iss="https://attacker.example"), "wrong_issuer"),
        "expired": (RSA_KEY.token(iat=now - 7200, nbf=now - 7200, exp=now - 3600), "token_expired"),
        "not yet valid": (RSA_KEY.token(nbf=now + 3600), "token_not_yet_valid"),
        "issued in the future": (RSA_KEY.token(iat=now + 3600, nbf=None), "token_not_yet_valid"),
        "no exp": (RSA_KEY.token(exp=None), "missing_claim"),
        "lives longer than a day": (RSA_KEY.token(exp=now + 3 * 86400), "token_lifetime"),
        "bad signature": (other_key.token(), "bad_signature"),
        "unknown kid": (SigningKey.rsa("forged-kid").token(), "unknown_kid"),
        "alg none": (hand_signed({"alg": "none", "kid": RSA_KEY.kid}, claims(), None), "algorithm_not_allowed"),
        "HS256 keyed with the public key": (
            hand_signed({"alg": "HS256", "kid": RSA_KEY.kid, "typ": "JWT"}, claims(), RSA_KEY.public_pem()),
            "algorithm_not_allowed",
        ),
        "RS256 header on the EC key": (
            hand_signed({"alg": "RS256", "kid": EC_KEY.kid}, claims(), b"x"),
            "invalid_token",
        ),
        "not a JWT": ("definitely-not-a-jwt", "malformed_token"),
    }


FORGERIES = _forgeries()


@pytest.mark.parametrize("name", FORGERIES)
def test_forged_or_invalid_token_is_refused_and_nothing_is_processed(
    client: httpx.Client, secured: LiveServer, name: str
) -> None:
    token, reason = FORGERIES[name]

    response, ce_id = post(client, token)

    assert_unauthorized(response, reason)
    [line] = secured.wait_for_log(lambda entry: entry.get("ce_id") == ce_id)
    assert (line["outcome"], line["error"]) == ("unauthorized", reason)


def test_refused_event_is_not_remembered_as_a_duplicate(client: httpx.Client, secured: LiveServer) -> None:
    # Auth runs before dedup: a forged copy must not make the genuine delivery of the same id look done.
    headers, body, ce_id = binary_event()
    forged = client.post(NOTIFICATIONS, headers={**headers, "Authorization": "Bearer forged"}, content=body)
    genuine = client.post(
        NOTIFICATIONS, headers={**headers, "Authorization": f"Bearer {RSA_KEY.token()}"}, content=body
    )

    assert (forged.status_code, genuine.status_code) == (401, 202)
    outcomes = [line["outcome"] for line in secured.wait_for_log(lambda e: e.get("ce_id") == ce_id)]
    deadline = time.monotonic() + 5
    while "processed" not in outcomes and time.monotonic() < deadline:
        time.sleep(0.05)
        outcomes = [line["outcome"] for line in secured.events_for(ce_id)]
    assert outcomes == ["unauthorized", "processed"]


def test_send_event_carries_a_bearer_token(secured: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert send_event_main(["--url", secured.url]) == 1
    assert " -> 401 " in capsys.readouterr().out

    assert send_event_main(["--url", secured.url, "--bearer-token", RSA_KEY.token()]) == 0
    assert " -> 202 " in capsys.readouterr().out


def test_connection_stays_usable_after_a_refusal_with_an_unread_body(secured: LiveServer) -> None:
    # The dispatcher keeps connections alive: a 401 sent before the body was read must not desync the next request.
    with httpx.Client(base_url=secured.url, timeout=10, limits=httpx.Limits(max_connections=1)) as http:
        headers, body, _ = binary_event(data={"padding": "x" * 200_000})
        refused = http.post(NOTIFICATIONS, headers=headers, content=body)
        accepted, _ = post(http, RSA_KEY.token())

    assert (refused.status_code, accepted.status_code) == (401, 202)


def test_authorization_scheme_other_than_bearer_is_refused(client: httpx.Client) -> None:
    headers, body, _ = binary_event()
    response = client.post(NOTIFICATIONS, headers={**headers, "Authorization": "Basic dXNlcjpwYXNz"}, content=body)

    assert_unauthorized(response, "missing_token")


def _unauthorized_count(client: httpx.Client, route: str) -> float:
    sample = f'notifications_events_total{{outcome="unauthorized",route="{route}",type="unknown"}} '
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(sample):
            return float(line[len(sample) :])
    return 0.0


def test_refusals_are_counted_in_metrics(client: httpx.Client) -> None:
    before = _unauthorized_count(client, "loggings")

    post(client, None, LOGGINGS)

    assert _unauthorized_count(client, "loggings") == before + 1


# --- the JWKS endpoint: outages, rotation, and forged kids -----------------------------------------------------


def test_jwks_down_is_a_retryable_503_never_a_2xx(tmp_path) -> None:
    with serve_jwks([RSA_KEY]) as jwks:
        jwks.status = 500
        server = start_server(tmp_path, env=oidc_env(jwks.url, OIDC_JWKS_MIN_REFETCH_SECONDS="1"))
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                response, ce_id = post(http, RSA_KEY.token())
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "jwks_unavailable"
                assert "Retry-After" in response.headers
                [line] = server.wait_for_log(lambda entry: entry.get("ce_id") == ce_id)
                assert line["outcome"] == "auth_unavailable"

                # Once the issuer answers again (and the refetch interval has passed) the same delivery goes through.
                jwks.status = 200
                time.sleep(1.1)
                retried = http.post(NOTIFICATIONS, headers=response.request.headers, content=response.request.content)
                assert retried.status_code == 202, retried.text
        finally:
            stop_server(server)


def test_deliveries_arriving_while_a_rotation_is_fetched_wait_for_it(tmp_path) -> None:
    """After the issuer rotates its key, the first token with the new kid starts one JWKS fetch; the deliveries that
    arrive while it runs must wait for it, not answer 401 unknown_kid (seen in `make e2e`'s jwks-rotated: 4 of a
    burst dead-lettered)."""
    with serve_jwks([RSA_KEY]) as jwks:
        server = start_server(tmp_path, env=oidc_env(jwks.url, OIDC_JWKS_MIN_REFETCH_SECONDS="1"))
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                assert post(http, RSA_KEY.token())[0].status_code == 202
                rotated = SigningKey.rsa("rsa-rotated")
                jwks.keys, jwks.delay_s = [RSA_KEY, rotated], 0.5
                time.sleep(1.1)  # past the refetch interval, as a rotation minutes later is
                with ThreadPoolExecutor(8) as pool:
                    statuses = list(pool.map(lambda _: post(http, rotated.token())[0].status_code, range(8)))
            assert statuses == [202] * 8
        finally:
            stop_server(server)


def test_jwks_unreachable_is_a_503(tmp_path) -> None:
    with serve_jwks([RSA_KEY]) as jwks:
        dead_url = jwks.url  # the server stops at the end of this block: nothing listens there any more
    server = start_server(tmp_path, env=oidc_env(dead_url, OIDC_JWKS_TIMEOUT_SECONDS="2"))
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            response, _ = post(http, RSA_KEY.token())
        assert response.status_code == 503, response.text
    finally:
        stop_server(server)


def test_key_rotation_is_picked_up_and_forged_kids_cannot_hammer_the_issuer(tmp_path) -> None:
    with serve_jwks([RSA_KEY]) as jwks:
        server = start_server(tmp_path, env=oidc_env(jwks.url, OIDC_JWKS_MIN_REFETCH_SECONDS="1"))
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                assert post(http, RSA_KEY.token())[0].status_code == 202
                assert jwks.hits == 1

                # 30 tokens with forged kids in a burst: at most one refetch per interval reaches the issuer.
                forged = [SigningKey.ec(f"forged-{n}") for n in range(30)]
                for key in forged:
                    assert post(http, key.token())[0].status_code == 401
                assert jwks.hits <= 3

                # The issuer rotates to a new key; its tokens are accepted without a restart.
                rotated = SigningKey.rsa("rsa-2026-12")
                jwks.keys = [rotated]
                time.sleep(1.1)
                response, _ = post(http, rotated.token())
                assert response.status_code == 202, response.text
        finally:
            stop_server(server)


def test_a_cached_token_stops_working_when_its_key_leaves_the_jwks(tmp_path) -> None:
    with serve_jwks([RSA_KEY]) as jwks:
        server = start_server(tmp_path, env=oidc_env(jwks.url, OIDC_JWKS_MIN_REFETCH_SECONDS="1"))
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                token = RSA_KEY.token()
                for _ in range(20):
                    assert post(http, token)[0].status_code == 202
                assert jwks.hits == 1  # keys are cached too: no fetch per request

                # A cached token whose signing key left the JWKS is not served from the cache.
                jwks.keys = [SigningKey.rsa("rsa-next")]
                time.sleep(1.1)
                post(http, SigningKey.rsa("unknown").token())  # unknown kid: triggers the refetch
                response, _ = post(http, token)
                assert response.status_code == 401
                assert response.json()["error"] == "unknown_kid"
        finally:
            stop_server(server)


def test_jwks_over_https_with_the_pods_ca_file_and_token_file(tmp_path) -> None:
    # The production shape: https://kubernetes.default.svc/openid/v1/jwks, trusted through the projected ca.crt and
    # authenticated with the pod's own (rotating) service-account token.
    ca_file, cert_file, key_file = write_tls_files(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text("pod-service-account-token\n")
    with serve_jwks([RSA_KEY], tls=(cert_file, key_file), required_token="pod-service-account-token") as jwks:
        env = oidc_env(jwks.url, OIDC_JWKS_CA_FILE=str(ca_file), OIDC_JWKS_TOKEN_FILE=str(token_file))
        env["OIDC_JWKS_MIN_REFETCH_SECONDS"] = "1"
        server = start_server(tmp_path, env=env)
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                assert post(http, RSA_KEY.token())[0].status_code == 202

                # The kubelet rotated the token file: the next fetch must send the new content.
                jwks.required_token = "rotated-token"
                token_file.write_text("rotated-token\n")
                rotated = SigningKey.rsa("rsa-rotated")
                jwks.keys = [RSA_KEY, rotated]
                time.sleep(1.1)
                assert post(http, rotated.token())[0].status_code == 202
        finally:
            stop_server(server)


@pytest.mark.parametrize(
    ("trouble", "detail"),
    [("CA not trusted", "CERTIFICATE_VERIFY_FAILED"), ("issuer refuses our token", "answered 401")],
)
def test_jwks_fetch_that_fails_tls_or_authentication_is_a_503(tmp_path, trouble: str, detail: str) -> None:
    ca_file, cert_file, key_file = write_tls_files(tmp_path)
    token_file = tmp_path / "token"
    with serve_jwks([RSA_KEY], tls=(cert_file, key_file), required_token="current-token") as jwks:
        env = oidc_env(jwks.url, OIDC_JWKS_TOKEN_FILE=str(token_file))
        if trouble == "CA not trusted":  # right token, but no OIDC_JWKS_CA_FILE: the default trust store rejects it
            token_file.write_text("current-token")
        else:  # trusted, but the token is not the one the issuer accepts
            token_file.write_text("stale-token")
            env["OIDC_JWKS_CA_FILE"] = str(ca_file)
        server = start_server(tmp_path, env=env)
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                response, _ = post(http, RSA_KEY.token())
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "jwks_unavailable"
            assert detail in response.json()["detail"]
        finally:
            stop_server(server)


def test_allowed_subjects_answer_403_for_another_sender(tmp_path) -> None:
    with serve_jwks([RSA_KEY]) as jwks:
        env = oidc_env(jwks.url, OIDC_ALLOWED_SUBJECTS="system:serviceaccount:notifications:notifications-oidc-*")
        server = start_server(tmp_path, env=env)
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                assert post(http, RSA_KEY.token())[0].status_code == 202
                response, _ = post(http, RSA_KEY.token(sub="system:serviceaccount:default:default"))
                assert response.status_code == 403
                assert response.json()["error"] == "sender_not_allowed"
        finally:
            stop_server(server)


# --- the verified-token cache, in process ---------------------------------------------------------------------


def test_a_verified_token_is_served_from_the_cache_and_the_cache_is_bounded() -> None:
    with serve_jwks([RSA_KEY]) as jwks:
        settings = OidcSettings.from_env(oidc_env(jwks.url, OIDC_TOKEN_CACHE_ENTRIES="3"))
        verifier = TokenVerifier(settings)

        async def scenario() -> None:
            token = RSA_KEY.token().encode()
            first = await verifier.verify(b"Bearer " + token)
            again = await verifier.verify(b"Bearer " + token)
            assert again is first  # the very object cached at the first verification
            assert (first.subject, first.kid) == (SUBJECT, RSA_KEY.kid)
            for n in range(5):
                await verifier.verify(b"Bearer " + RSA_KEY.token(jti=str(n)).encode())
            assert verifier.cached_tokens == 3

        asyncio.run(scenario())


def test_keys_past_their_ttl_serve_while_the_issuer_is_down_but_not_forever() -> None:
    now = [1000.0]
    with serve_jwks([RSA_KEY]) as jwks:
        settings = OidcSettings.from_env(oidc_env(jwks.url))
        cache = JwksCache(settings, clock=lambda: now[0])

        async def scenario() -> None:
            assert await cache.key_for(RSA_KEY.kid) is not None
            jwks.status = 500
            now[0] += settings.jwks_ttl_seconds + 1  # stale: refetch is attempted, fails, old keys still serve
            assert await cache.key_for(RSA_KEY.kid) is not None
            assert cache.fetches == 2
            now[0] += 1  # within the refetch interval: no new attempt
            assert await cache.key_for(RSA_KEY.kid) is not None
            assert cache.fetches == 2
            now[0] += settings.jwks_max_stale_seconds  # too old to trust any more
            with pytest.raises(JwksUnavailable):
                await cache.key_for(RSA_KEY.kid)
            jwks.status = 200
            now[0] += settings.jwks_min_refetch_seconds
            assert await cache.key_for(RSA_KEY.kid) is not None

        asyncio.run(scenario())


def test_verification_off_leaves_the_delivery_endpoints_unwrapped() -> None:
    # `make bench` (verification off) must not pay for the feature: the routes call the endpoints directly.
    plain = create_app(Settings())
    with serve_jwks([RSA_KEY]) as jwks:
        secured_app = create_app(Settings.from_env(oidc_env(jwks.url)))

    def endpoints(app) -> dict[str, object]:
        return {route.path: route.endpoint for route in app.routes if route.path.startswith("/events/")}

    def wrapped(endpoint: object) -> bool:
        return getattr(endpoint, "__qualname__", "").startswith(require_bearer.__qualname__ + ".")

    assert len(endpoints(plain)) == len(endpoints(secured_app)) == len(DELIVERY_ROUTES)
    assert not any(wrapped(e) for e in endpoints(plain).values())
    assert all(wrapped(e) for e in endpoints(secured_app).values())


# --- configuration ----------------------------------------------------------------------------------------------


def test_verification_is_off_only_without_any_oidc_setting() -> None:
    assert OidcSettings.from_env({}) is None
    assert OidcSettings.from_env({"OIDC_AUDIENCE": " ", "OIDC_ISSUER": ""}) is None  # blank counts as unset
    # A blank audience beside a set issuer used to mean "off"; it is a half-configured verifier now, refused.
    with pytest.raises(OidcConfigError, match=r"OIDC_AUDIENCE, OIDC_JWKS_URL and OIDC_ALLOWED_SUBJECTS are not set"):
        OidcSettings.from_env({"OIDC_AUDIENCE": " ", "OIDC_ISSUER": ISSUER})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OIDC_AUDIENCE": AUDIENCE, "OIDC_JWKS_URL": "https://kubernetes.default.svc/openid/v1/jwks"}, "OIDC_ISSUER"),
        ({"OIDC_AUDIENCE": AUDIENCE, "OIDC_ISSUER": ISSUER}, "OIDC_JWKS_URL"),
        (
            {**oidc_env("https://kubernetes.default.svc/openid/v1/jwks"), "OIDC_ALLOWED_SUBJECTS": ""},
            "OIDC_ALLOWED_SUB",
        ),
        (oidc_env("http://10.96.0.1/jwks"), "https://"),
        (
            {**oidc_env("https://kubernetes.default.svc/openid/v1/jwks"), "OIDC_JWKS_CA_FILE": "/nonexistent/ca.crt"},
            "OIDC_JWKS_CA_FILE",
        ),
        (
            {**oidc_env("https://kubernetes.default.svc/openid/v1/jwks"), "OIDC_JWKS_TIMEOUT_SECONDS": "0"},
            "OIDC_JWKS_TIMEOUT_SECONDS",
        ),
        (
            {
                **oidc_env("https://kubernetes.default.svc/openid/v1/jwks"),
                "OIDC_ISSUER": "http://kubernetes.default.svc",
            },
            "OIDC_ISSUER=.http://",
        ),
        (
            {**oidc_env("https://kubernetes.default.svc/openid/v1/jwks"), "OIDC_ISSUER": "kubernetes.default.svc"},
            "OIDC_ISSUER=.kubernetes",
        ),
        (
            {**oidc_env("https://kubernetes.default.svc/openid/v1/jwks"), "OIDC_ISSUER": "https://k8s?x=1"},
            "OIDC_ISSUER=.https://k8s.x=1",
        ),
        (
            {**oidc_env("https://kubernetes.default.svc/openid/v1/jwks"), "OIDC_ISSUER": "https://k8s#frag"},
            "OIDC_ISSUER=.https://k8s#frag",
        ),
    ],
    ids=[
        "no issuer",
        "no jwks url",
        "no allowed subjects",
        "plain http off loopback",
        "missing CA file",
        "zero timeout",
        "http issuer",
        "issuer without scheme",
        "issuer with query",
        "issuer with fragment",
    ],
)
def test_inconsistent_settings_are_refused_with_the_variable_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(OidcConfigError, match=message):
        OidcSettings.from_env(env)


def test_server_with_bad_oidc_settings_exits_with_one_line(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "notifications.serve"],
        env={"OIDC_AUDIENCE": AUDIENCE, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "OIDC_ISSUER" in result.stderr


def test_subject_patterns_follow_event_policy_semantics() -> None:
    assert subject_allowed(SUBJECT, (SUBJECT,))
    assert subject_allowed(SUBJECT, ("system:serviceaccount:notifications:*",))
    assert not subject_allowed(SUBJECT, ("system:serviceaccount:other:*",))
    assert not subject_allowed(SUBJECT + "x", (SUBJECT,))
