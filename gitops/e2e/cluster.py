"""etcd and kube-apiserver for `make e2e`, built from pinned Go modules (hack/knative-cluster), on loopback only.

Started only inside the run's private network namespace (gitops/e2e/netns.py). The flags are those measured in
../shared/upstream/README.md: a service range inside 127.0.0.0/8, `--advertise-address=127.0.0.1`,
`--endpoint-reconciler-type=none` (no Endpoints for the `kubernetes` Service pointing anywhere), and the webhook
admission plugins off: no admission webhook configuration of the render is applied either (Knative's admission
code already runs in `make validate`, gitops/validate/admission.py).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from gitops.core.paths import CODE_ROOT
from gitops.e2e import netns
from gitops.e2e.kube import Kube
from gitops.e2e.processes import Supervisor

BIN = CODE_ROOT / "bin"
ETCD_CLIENT = "http://127.0.0.1:2379"
ETCD_PEER = "http://127.0.0.1:2380"
# 443 on 127.0.0.1: inside the namespace the run is root, and in-cluster clients (the data plane's fabric8 client,
# the controllers' rest.InClusterConfig) call kubernetes.default.svc:443, which the private /etc/hosts maps here.
APISERVER_PORT = 443
SERVICE_CIDR = "127.0.1.0/24"  # cluster IPs stay on loopback (kube-proxy's stand-in is lo itself)
ISSUER = "https://kubernetes.default.svc.cluster.local"
# Where discovery says the keys are (--service-account-jwks-uri): the in-cluster name every pod resolves, on 443.
JWKS_URI = "https://kubernetes.default.svc/openid/v1/jwks"
# The `kubernetes` Service's cluster IP: the first address of SERVICE_CIDR (what the kubelet puts into every pod's
# KUBERNETES_SERVICE_HOST; kube-apiserver's own service IP, pkg/controlplane/services.go).
KUBERNETES_SERVICE_IP = "127.0.1.1"
# The names the serving certificate carries: the in-cluster ones (the data plane's OIDC discovery calls
# https://kubernetes.default.svc, the issuer is https://kubernetes.default.svc.cluster.local) and loopback.
SERVING_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
)
SERVING_IPS = ("127.0.0.1", KUBERNETES_SERVICE_IP)
DISABLED_ADMISSION = "MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy"
READY_TIMEOUT_S = 120


class ClusterUnavailable(RuntimeError):
    """The control plane binaries are missing (run `make setup`)."""


def binary(name: str) -> Path:
    path = BIN / name
    if not path.is_file():
        raise ClusterUnavailable(
            f"{path} is missing: `make setup` builds it from hack/knative-cluster (kube-apiserver, etcd, "
            "kafka-controller, eventpolicy-controller; a cold build takes about 10 minutes on 2 cores)"
        )
    return path


@dataclass
class ApiServer:
    workdir: Path
    admin_token: str
    url: str = f"https://127.0.0.1:{APISERVER_PORT}"

    @property
    def ca_file(self) -> Path:
        # A throwaway CA of this run (throwaway_ca): what a pod finds in its ca.crt (kube-root-ca.crt).
        return self.workdir / "certs" / "ca.crt"

    def client(self, token: str | None = None) -> Kube:
        return Kube(self.url, token or self.admin_token, self.ca_file)

    def kubeconfig(self, name: str, token: str) -> Path:
        """A kubeconfig for one process (a controller as its ServiceAccount)."""
        path = self.workdir / f"{name}.kubeconfig"
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        trust = {"certificate-authority-data": ca}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {"server": self.url, **trust}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": name}}],
            "current-context": "e2e",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path


def throwaway_ca(certs: Path) -> tuple[Path, Path]:
    """A CA for this run only and the API server's serving certificate signed by it, naming SERVING_NAMES and
    SERVING_IPS. kube-apiserver's own self-signed fallback (k8s.io/apiserver MaybeDefaultWithSelfSignedCerts)
    names neither kubernetes.default.svc.cluster.local (the issuer's host) nor the Service IP, so a client that
    checks the issuer's TLS would fail. Returns (certificate, key) for --tls-cert-file/--tls-private-key-file."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    certs.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2e-throwaway-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in SERVING_NAMES] + [x509.IPAddress(ipaddress.ip_address(i)) for i in SERVING_IPS]
    serving = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (certs / "ca.crt").write_bytes(ca.public_bytes(pem))
    cert_file, key_file = certs / "serving.crt", certs / "serving.key"
    cert_file.write_bytes(serving.public_bytes(pem))
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


def _signing_key(workdir: Path, generation: int = 0) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    suffix = f"-{generation}" if generation else ""
    private, public = workdir / f"sa{suffix}.key", workdir / f"sa{suffix}.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    private.chmod(0o600)
    return private, public


def start_etcd(supervisor: Supervisor, workdir: Path) -> None:
    netns.require_private("etcd")
    supervisor.start(
        "etcd",
        [
            str(binary("etcd")),
            "--name=e2e",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={ETCD_CLIENT}",
            f"--advertise-client-urls={ETCD_CLIENT}",
            f"--listen-peer-urls={ETCD_PEER}",
            f"--initial-advertise-peer-urls={ETCD_PEER}",
            f"--initial-cluster=e2e={ETCD_PEER}",
            "--log-level=warn",
            "--quota-backend-bytes=1073741824",
        ],
    )


def apiserver_command(workdir: Path, token_file: Path, key: Path, pub: Path | list[Path]) -> list[str]:
    """`pub`: every public key tokens may be verified with (a rotation lists the old one beside the new one:
    --service-account-key-file is repeatable, and the JWKS serves each)."""
    pubs = pub if isinstance(pub, list) else [pub]
    return [
        str(binary("kube-apiserver")),
        f"--etcd-servers={ETCD_CLIENT}",
        "--bind-address=127.0.0.1",
        f"--secure-port={APISERVER_PORT}",
        "--advertise-address=127.0.0.1",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--endpoint-reconciler-type=none",
        f"--service-account-issuer={ISSUER}",
        *(f"--service-account-key-file={p}" for p in pubs),
        f"--service-account-signing-key-file={key}",
        f"--service-account-jwks-uri={JWKS_URI}",
        "--authorization-mode=RBAC",
        f"--token-auth-file={token_file}",
        f"--cert-dir={workdir / 'certs'}",
        f"--tls-cert-file={workdir / 'certs' / 'serving.crt'}",
        f"--tls-private-key-file={workdir / 'certs' / 'serving.key'}",
        f"--disable-admission-plugins={DISABLED_ADMISSION}",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "--v=1",
    ]


def start_apiserver(supervisor: Supervisor, workdir: Path) -> ApiServer:
    netns.require_private("kube-apiserver")
    throwaway_ca(workdir / "certs")
    key, pub = _signing_key(workdir)
    admin_token = secrets.token_hex(24)
    token_file = workdir / "tokens.csv"
    token_file.write_text(f'{admin_token},e2e-admin,e2e-admin,"system:masters"\n')
    token_file.chmod(0o600)
    supervisor.start("kube-apiserver", apiserver_command(workdir, token_file, key, pub))
    api = ApiServer(workdir, admin_token)
    wait_ready(api, supervisor)
    return api


def rotate_signing_key(supervisor: Supervisor, api: ApiServer) -> Path:
    """A service-account signing key rotation as Kubernetes documents it: a new signing key, and the old public key
    still listed beside the new one (--service-account-key-file), so tokens signed before stay valid until they
    expire; the API server restarts with the new flags (etcd keeps the state). Returns the new public key."""
    netns.require_private("kube-apiserver")
    generation = 1 + max((int(p.stem.split("-")[1]) for p in api.workdir.glob("sa-*.pub")), default=0)
    key, pub = _signing_key(api.workdir, generation)
    pubs = sorted(api.workdir.glob("sa*.pub"), key=lambda p: p.stat().st_mtime)
    supervisor.stop("kube-apiserver")
    supervisor.start("kube-apiserver", apiserver_command(api.workdir, api.workdir / "tokens.csv", key, pubs))
    wait_ready(api, supervisor)
    return pub


def wait_ready(api: ApiServer, supervisor: Supervisor, timeout: float = READY_TIMEOUT_S) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for name in ("etcd", "kube-apiserver"):
            proc = supervisor.procs.get(name)
            if proc is not None and not proc.alive():
                raise RuntimeError(f"{name} exited; last log lines:\n{proc.log_tail()}")
        if api.ca_file.is_file():
            try:
                response = httpx.get(
                    f"{api.url}/readyz",
                    verify=str(api.ca_file),
                    headers={"Authorization": f"Bearer {api.admin_token}"},
                    timeout=3,
                )
                if response.status_code == 200:
                    return
                last = response.text[-300:]
            except httpx.HTTPError as exc:
                last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"kube-apiserver not ready after {timeout:.0f}s: {last}")
