"""Real signing keys, real tokens and a JWKS endpoint on loopback, for the sender-authentication tests.

Everything is created by the test run itself: RSA and EC key pairs from `cryptography`, tokens signed by PyJWT
(or by hand where PyJWT rightly refuses, e.g. HS256 keyed with a public key), a JWKS served by a stdlib HTTP
server bound to 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "serving.knative.dev/service/notifications/notifications"
SUBJECT = "system:serviceaccount:notifications:notifications-oidc-eventing.knative.dev-trigger"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_key: Any

    @classmethod
    def rsa(cls, kid: str, alg: str = "RS256") -> SigningKey:
        return cls(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        entry = algorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**entry, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, kid: str | None = None, **claim_overrides: Any) -> str:
        return jwt.encode(
            claims(**claim_overrides), self.private_key, algorithm=self.alg, headers={"kid": kid or self.kid}
        )


def claims(**overrides: Any) -> dict[str, Any]:
    """Shaped like a Kubernetes TokenRequest token for the Trigger's OIDC service account (1 hour)."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": [AUDIENCE],
        "sub": SUBJECT,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "kubernetes.io": {"namespace": "notifications", "serviceaccount": {"name": "trigger-oidc"}},
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A JWT built without PyJWT's guard rails: `alg: none` (secret None) or HS256 keyed with `secret`."""
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"
    signature = b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@dataclass
class JwksServer:
    """A loopback JWKS endpoint whose key set, status and availability the test changes while it runs."""

    keys: list[SigningKey]
    status: int = 200
    hits: int = 0
    required_token: str | None = None
    """Like the API server: answer 401 unless the fetch carries `Authorization: Bearer <required_token>`."""
    scheme: str = "http"
    delay_s: float = 0.0
    """How long each answer takes (an API server under load: requests arriving meanwhile)."""
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}/openid/v1/jwks"

    def document(self) -> bytes:
        return orjson.dumps({"keys": [key.jwk() for key in self.keys]})


def write_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it: (ca.crt, server.crt, server.key)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test issuer CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server_cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@contextmanager
def serve_jwks(
    keys: list[SigningKey], tls: tuple[Path, Path] | None = None, required_token: str | None = None
) -> Iterator[JwksServer]:
    """`tls`: (certificate, key) to serve HTTPS with, as the API server does."""
    state = JwksServer(keys, required_token=required_token, scheme="https" if tls else "http")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits += 1
            time.sleep(state.delay_s)
            status = state.status
            if state.required_token and self.headers.get("Authorization") != f"Bearer {state.required_token}":
                status = 401
            # Like kube-apiserver: the route produces only application/jwk-set+json (k8s.io/kubernetes
            # pkg/routes/openidmetadata.go, go-restful `Produces(mimeJWKS)`), and answers 406 to an Accept without it.
            accept = self.headers.get("Accept", "")
            if accept and not any(m in accept for m in ("application/jwk-set+json", "*/*", "application/*")):
                status = 406
            body = state.document() if status == 200 else b'{"error":"down"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/jwk-set+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    state._server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def oidc_env(jwks_url: str, **overrides: str) -> dict[str, str]:
    return {
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_ISSUER": ISSUER,
        "OIDC_JWKS_URL": jwks_url,
        "OIDC_ALLOWED_SUBJECTS": SUBJECT,
        **overrides,
    }
