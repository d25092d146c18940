"""The kafka-credentials check: prod's Kafka credentials are declared in git (an ExternalSecret) with exactly the keys
the Kafka auth contract reads for SASL_SSL, judged also by eventing-kafka-broker's own code. Each mistake is fed to
the check and seen to fail, naming env, object and file."""

import pytest

from gitops.model import external_secrets, kafka_auth
from gitops.validate.checks import kafka_credentials
from tests.support import obj, run_check

NS = "notifications"
ES = f"[prod] ExternalSecret {NS}/kafka-credentials (overlays/prod/kafka-credentials.yaml)"


def declaration(render):
    return obj(render, "external-secrets.io", "ExternalSecret", NS, "kafka-credentials")


def template_data(render) -> dict:
    return declaration(render)["spec"]["target"]["template"]["data"]


def messages(render) -> list[str]:
    return [str(f) for f in run_check(kafka_credentials.check_kafka_credentials, render)]


def test_the_committed_declaration_passes(renders):
    assert messages(renders["prod"]) == []
    assert messages(renders["dev"]) == []  # dev's Kafka has no auth: nothing reads a Secret


def test_the_declared_secret_has_exactly_the_sasl_ssl_keys(renders):
    (secret,) = external_secrets.derived_secrets(renders["prod"].objects)
    assert (secret.namespace, secret.name) == (NS, "kafka-credentials")
    assert set(secret.data) == kafka_auth.PROTOCOL_KEYS["SASL_SSL"]
    assert (secret.data["protocol"], secret.data["sasl.mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert {k for k, v in secret.data.items() if v is None} == {"user", "password", "ca.crt"}
    readers = {(u.reader["kind"], u.name) for u in kafka_auth.secret_uses(renders["prod"].objects)}
    assert readers == {
        ("ConfigMap", "kafka-credentials"),
        ("KafkaSink", "kafka-credentials"),
        ("KafkaSource", "kafka-credentials"),
    }


def test_a_declaration_missing_a_required_key_fails(broken):
    """The issue's broken manifest: no `password` in the Secret; our table and upstream's code both say so."""
    render = broken("prod")
    del template_data(render)["password"]
    found = messages(render)
    assert any(
        m.startswith(ES) and "Secret notifications/kafka-credentials (protocol SASL_SSL) lacks password" in m
        for m in found
    ), found
    assert any(
        m.startswith(ES)
        and "eventing-kafka-broker's Kafka auth" in m
        and "[protocol SASL_SSL] SASL password required (key: password)" in m
        for m in found
    ), found


def test_a_misspelt_key_is_missing_and_extra(broken):
    render = broken("prod")
    data = template_data(render)
    data["pasword"] = data.pop("password")
    found = messages(render)
    assert any(m.startswith(ES) and "lacks password" in m for m in found), found
    assert any(m.startswith(ES) and "has pasword, which nothing reads for SASL_SSL" in m for m in found), found


def test_our_policy_keys_are_named_as_policy(broken):
    """Upstream accepts a SASL_SSL Secret without sasl.mechanism (PLAIN) or ca.crt (system roots); we do not, and
    say which requirement is ours. The KafkaSource names sasl.mechanism itself, so it is named as well."""
    render = broken("prod")
    del template_data(render)["ca.crt"]
    found = messages(render)
    assert any(
        m.startswith(ES) and "lacks ca.crt" in m and "KafkaSource notifications/kafka-source reads ca.crt" in m
        for m in found
    ), found
    source = obj(render, "sources.knative.dev", "KafkaSource", NS, "kafka-source")
    del source["spec"]["net"]["tls"]["caCert"]  # now only our policy asks for it
    found = messages(render)
    assert any(m.startswith(ES) and "lacks ca.crt" in m and "ca.crt by our policy" in m for m in found), found
    assert not any("refuses" in m for m in found), found  # upstream itself would take the system roots


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"protocol": "{{ .protocol }}"}, "refers to 'protocol', which no spec.data[].secretKey defines"),
        ({"protocol": "SASL-SSL"}, "protocol 'SASL-SSL' is not one of PLAINTEXT, SASL_PLAINTEXT, SASL_SSL, SSL"),
        ({"sasl.mechanism": "SCRAM-SHA-1"}, "[protocol SASL_SSL] unsupported SASL mechanism (key: sasl.mechanism)"),
        ({"user": "{{ .user | lower }}"}, "is a template validate cannot evaluate"),
    ],
)
def test_template_mistakes(broken, change, expected):
    render = broken("prod")
    template_data(render).update(change)
    found = messages(render)
    assert any(m.startswith(ES) and expected in m for m in found), found


def test_keys_the_store_decides_are_refused(broken):
    render = broken("prod")
    spec = declaration(render)["spec"]
    spec["dataFrom"] = [{"extract": {"key": "kafka/notifications"}}]
    spec["target"]["creationPolicy"] = "Merge"
    found = messages(render)
    assert any(m.startswith(ES) and "spec.dataFrom takes its keys from the secret store" in m for m in found), found
    assert any(m.startswith(ES) and "creationPolicy is Merge" in m for m in found), found


def test_an_undeclared_secret_fails_at_each_reader(broken):
    """The Secret created by hand (no declaration): a fresh cluster never converges from git."""
    render = broken("prod")
    render.objects.remove(declaration(render))
    found = messages(render)
    for reader, origin in (
        ("ConfigMap notifications/kafka-broker-config", "overlays/prod/kafka.yaml"),
        ("KafkaSink notifications/dead-letters", "overlays/prod/kafka.yaml"),
        ("KafkaSource notifications/kafka-source", "overlays/prod/kafka.yaml"),
    ):
        assert any(
            m.startswith(f"[prod] {reader} ({origin})") and "which no ExternalSecret in the render declares" in m
            for m in found
        ), (reader, found)


def test_a_kafka_source_speaking_another_protocol_fails(broken):
    render = broken("prod")
    source = obj(render, "sources.knative.dev", "KafkaSource", NS, "kafka-source")
    source["spec"]["net"]["tls"]["enable"] = False
    found = messages(render)
    assert any(
        m.startswith(f"[prod] KafkaSource {NS}/kafka-source (")
        and "spec.net speaks SASL_PLAINTEXT but Secret notifications/kafka-credentials says protocol SASL_SSL" in m
        for m in found
    ), found


def test_materialise_writes_the_secret_the_operator_would(renders):
    (secret,) = external_secrets.derived_secrets(renders["prod"].objects)
    written = external_secrets.materialise(secret, {"user": "u", "password": "p", "ca": "PEM"})
    assert written["metadata"] == {"name": "kafka-credentials", "namespace": NS}
    assert written["stringData"] == {
        "protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "user": "u",
        "password": "p",
        "ca.crt": "PEM",
    }
    with pytest.raises(ValueError, match="no store value for secretKey 'ca'"):
        external_secrets.materialise(secret, {"user": "u", "password": "p"})
