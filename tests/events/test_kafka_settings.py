"""Where make produce reaches Kafka and how it authenticates: flag, environment or the rendered ConfigMap."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gitops.events import kafka_settings, produce


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs KAFKA_SASL_USERNAME"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS'"),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "GSSAPI",
                "KAFKA_SASL_USERNAME": "u",
            },
            "KAFKA_SASL_MECHANISM='GSSAPI'",
        ),
    ],
)
def test_inconsistent_security_settings_are_rejected(environ: dict[str, str], message: str) -> None:
    with pytest.raises(kafka_settings.SettingsError, match=message.replace("(", r"\(")):
        kafka_settings.security_from_env(environ)


def test_bootstrap_precedence(fake_render: Callable[..., None]) -> None:
    fake_render("cm-a:9092, cm-b:9092", **{"auth.secret.ref.name": "kafka-credentials"})
    from_cm = kafka_settings.resolve_bootstrap(None, "prod", {})
    assert from_cm.servers == "cm-a:9092,cm-b:9092"
    assert from_cm.origin == "ConfigMap notifications/kafka-broker-config rendered for prod"
    assert from_cm.auth_secret == "kafka-credentials"
    env = {"KAFKA_BOOTSTRAP_SERVERS": "env:9092"}
    assert kafka_settings.resolve_bootstrap(None, "prod", env).servers == "env:9092"
    assert kafka_settings.resolve_bootstrap("flag:9092", "prod", env).servers == "flag:9092"


def test_the_configmap_is_the_one_the_kafka_broker_names(fake_render: Callable[..., None]) -> None:
    """No ConfigMap name is hard-coded: a fork that renames it (and its Broker's spec.config) still produces."""
    import gitops.core.render

    fake_render("cm:9092")
    objects = gitops.core.render.render_env("dev").objects
    objects[1]["spec"]["config"]["name"] = "renamed"
    objects[2]["metadata"]["name"] = "renamed"
    origin = kafka_settings.resolve_bootstrap(None, "dev", {}).origin
    assert origin == "ConfigMap notifications/renamed rendered for dev"
    objects[1]["metadata"]["annotations"]["eventing.knative.dev/broker.class"] = "MTChannelBasedBroker"
    with pytest.raises(kafka_settings.SettingsError, match="no Kafka Broker naming a ConfigMap"):
        kafka_settings.resolve_bootstrap(None, "dev", {})


def test_render_without_broker_configmap_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import gitops.core.render

    monkeypatch.setattr(gitops.core.render, "render_env", lambda env: type("R", (), {"objects": []})())
    with pytest.raises(kafka_settings.SettingsError, match=r"no Kafka Broker naming a ConfigMap in spec\.config"):
        kafka_settings.resolve_bootstrap(None, "dev", {})


@pytest.mark.parametrize("servers", ["", "kafka", "kafka:port", ":9092"])
def test_malformed_bootstrap_servers(servers: str) -> None:
    with pytest.raises(kafka_settings.SettingsError):
        kafka_settings.resolve_bootstrap(servers or ",", None, {})


def test_security_env_maps_to_librdkafka_properties() -> None:
    environ = {
        "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "KAFKA_SASL_MECHANISM": "scram-sha-512",
        "KAFKA_SASL_USERNAME": "notifier",
        "KAFKA_SASL_PASSWORD": "s3cret",
        "KAFKA_SSL_CA_LOCATION": "/etc/kafka/ca.crt",
    }
    conf = kafka_settings.security_from_env(environ)
    assert conf == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "notifier",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/kafka/ca.crt",
    }
    connection = kafka_settings.Connection(kafka_settings.Bootstrap("k:9093", "test"), conf)
    assert "s3cret" not in connection.describe()

    # librdkafka itself accepts every property name and value (it rejects unknown ones at construction).
    from confluent_kafka import Producer

    config = produce.producer_config(connection, 1)
    config.pop("ssl.ca.location")  # librdkafka loads the CA file at construction; the name is checked above
    Producer(config).flush(0)


class _Error:
    """The two methods of confluent_kafka.KafkaError that AuthWatch reads."""

    def __init__(self, name: str, text: str) -> None:
        self._name, self._text = name, text

    def name(self) -> str:
        return self._name

    def str(self) -> str:
        return self._text


def test_auth_watch_keeps_the_first_refusal_and_names_the_setting_to_fix() -> None:
    connection = kafka_settings.Connection(kafka_settings.Bootstrap("127.0.0.1:9093", "--bootstrap-servers"))
    watch = kafka_settings.AuthWatch()
    watch(_Error("_TRANSPORT", "sasl_ssl://127.0.0.1:9093/bootstrap: Connection refused"))
    assert watch.failure is None  # not a credentials problem: the client keeps retrying it
    watch(_Error("_AUTHENTICATION", "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: invalid"))
    watch(_Error("_SSL", "sasl_ssl://127.0.0.1:9093/bootstrap: SSL handshake failed"))
    assert str(watch.error(connection)) == (
        "Kafka at 127.0.0.1:9093 refused us: SASL authentication error: invalid; "
        "check KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD (user, password)"
    )
    tls = kafka_settings.AuthWatch()
    tls(_Error("_SSL", "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: certificate verify failed"))
    assert str(tls.error(connection)).endswith("check KAFKA_SSL_CA_LOCATION (the Kafka's CA, ca.crt)")
