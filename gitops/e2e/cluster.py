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
        # kube-apiserver writes a self-signed serving certificate into --cert-dir when given none; it is its own CA
        # and names 127.0.0.1, localhost and kubernetes.default.svc (k8s.io/apiserver MaybeDefaultWithSelfSignedCerts).
        return self.workdir / "certs" / "apiserver.crt"

    def client(self, token: str | None = None) -> Kube:
        return Kube(self.url, token or self.admin_token, self.ca_file)

    def kubeconfig(self, name: str, token: str, ca_path: bool = False) -> Path:
        """A kubeconfig for one process (a controller as its ServiceAccount). `ca_path`: name the CA by its file, as
        a pod's mounted ca.crt is (the data plane's receiver reads fabric8's Config.getCaCertFile() to trust the
        API server's OIDC discovery: receiver/impl/auth/OIDCDiscoveryConfig.java)."""
        path = self.workdir / f"{name}.kubeconfig"
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        trust = {"certificate-authority": str(self.ca_file)} if ca_path else {"certificate-authority-data": ca}
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


def _signing_key(workdir: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = workdir / "sa.key", workdir / "sa.pub"
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


def apiserver_command(workdir: Path, token_file: Path, key: Path, pub: Path) -> list[str]:
    return [
        str(binary("kube-apiserver")),
        f"--etcd-servers={ETCD_CLIENT}",
        "--bind-address=127.0.0.1",
        f"--secure-port={APISERVER_PORT}",
        "--advertise-address=127.0.0.1",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--endpoint-reconciler-type=none",
        f"--service-account-issuer={ISSUER}",
        f"--service-account-key-file={pub}",
        f"--service-account-signing-key-file={key}",
        "--authorization-mode=RBAC",
        f"--token-auth-file={token_file}",
        f"--cert-dir={workdir / 'certs'}",
        f"--disable-admission-plugins={DISABLED_ADMISSION}",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "--v=1",
    ]


def start_apiserver(supervisor: Supervisor, workdir: Path) -> ApiServer:
    netns.require_private("kube-apiserver")
    (workdir / "certs").mkdir(exist_ok=True)
    key, pub = _signing_key(workdir)
    admin_token = secrets.token_hex(24)
    token_file = workdir / "tokens.csv"
    token_file.write_text(f'{admin_token},e2e-admin,e2e-admin,"system:masters"\n')
    token_file.chmod(0o600)
    supervisor.start("kube-apiserver", apiserver_command(workdir, token_file, key, pub))
    api = ApiServer(workdir, admin_token)
    wait_ready(api, supervisor)
    return api


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
