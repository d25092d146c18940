"""The test Kafka as prod runs it: SASL_SSL with SCRAM-SHA-512 and a CA of its own (overlays/prod/kafka.yaml).

`SaslSsl.create(workdir)` makes a throwaway CA and a server certificate for 127.0.0.1 (Python `cryptography`), and
picks the users' passwords; `start_broker(sasl_ssl=True)` (kafka_local.py) appends hack/kafka/sasl-ssl.properties
to the broker's config and creates the SCRAM users when it formats the storage (`kafka-storage format --add-scram`,
KIP-900). `client_env()` is what a person exports for `make produce` / `gitops replay`: the KAFKA_* variables of
gitops/events/kafka_settings.py, the same four facts the `kafka-credentials` Secret carries (protocol,
sasl.mechanism, user, password, ca.crt).
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MECHANISM = "SCRAM-SHA-512"
PROPERTIES = Path(__file__).resolve().parents[2] / "hack" / "kafka" / "sasl-ssl.properties"
BROKER_USER = "broker"
CLIENT_USER = "notifications"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _subject_alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """IP 127.0.0.1 and every host a broker is reached or advertised as: an IP SAN for an address, a DNS SAN for a
    name (clients verify the name they connect to: librdkafka's and the Java client's
    `ssl.endpoint.identification.algorithm=https`, Go's crypto/tls ServerName in the kafka-controller)."""
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    for host in dict.fromkeys(hosts):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            names.append(x509.DNSName(host))
            continue
        if str(address) != "127.0.0.1":
            names.append(x509.IPAddress(address))
    return names


def write_ca_and_server_cert(workdir: Path, hosts: Sequence[str] = ()) -> tuple[Path, Path]:
    """(ca.crt, server.pem): a CA valid for a day and a server certificate it signs for IP 127.0.0.1 and `hosts`
    (the advertised names of a cluster's brokers, which share the certificate), the server's PKCS #8 key and
    certificate chain in one PEM file (Kafka's PEM keystore)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("test Kafka CA"))
        .issuer_name(_name("test Kafka CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(_subject_alt_names(hosts)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, keystore = workdir / "ca.crt", workdir / "server.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    keystore.write_bytes(
        _pem_key(server_key)
        + server_cert.public_bytes(serialization.Encoding.PEM)
        + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    keystore.chmod(0o600)
    return ca_file, keystore


@dataclass(frozen=True)
class SaslSsl:
    """One broker's SASL_SSL setup: its CA, keystore and SCRAM users (the broker's own and one client)."""

    ca_file: Path
    keystore: Path
    broker_password: str
    user: str
    password: str

    @classmethod
    def create(cls, workdir: Path, hosts: Sequence[str] = ()) -> SaslSsl:
        ca_file, keystore = write_ca_and_server_cert(workdir, hosts)
        return cls(ca_file, keystore, secrets.token_urlsafe(18), CLIENT_USER, secrets.token_urlsafe(18))

    def properties(self) -> str:
        """The lines appended to server.properties ($PORT and $CONTROLLER_PORT are substituted with the rest)."""
        return (
            PROPERTIES.read_text()
            .replace("${BROKER_USER}", BROKER_USER)
            .replace("${BROKER_PASSWORD}", self.broker_password)
            .replace("${KEYSTORE}", str(self.keystore))
            .replace("${CA_FILE}", str(self.ca_file))
        )

    def format_args(self) -> list[str]:
        """`kafka-storage format` arguments creating both SCRAM users (KIP-900: before the broker first starts)."""
        return [
            arg
            for name, password in ((BROKER_USER, self.broker_password), (self.user, self.password))
            for arg in ("--add-scram", f"{MECHANISM}=[name={name},password={password}]")
        ]

    def client_config(self, password: str | None = None) -> dict[str, str]:
        """librdkafka settings of a client authenticating as the client user."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": MECHANISM,
            "sasl.username": self.user,
            "sasl.password": self.password if password is None else password,
            "ssl.ca.location": str(self.ca_file),
        }

    def client_env(self, password: str | None = None) -> dict[str, str]:
        """The same as KAFKA_* variables (gitops/events/kafka_settings.py SECURITY_ENV), for `make produce`."""
        return {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_SASL_USERNAME": self.user,
            "KAFKA_SASL_PASSWORD": self.password if password is None else password,
            "KAFKA_SSL_CA_LOCATION": str(self.ca_file),
        }
