"""The test Kafka as prod runs it (SASL_SSL, SCRAM-SHA-512, a throwaway CA), and our clients authenticating to it:
`make produce` (gitops.events.produce) and `gitops replay` with the KAFKA_* settings, a wrong password as one line."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from gitops.core.errors import UserError
from gitops.events import produce
from gitops.events.kafka_local import KafkaBroker, KafkaUnavailable, create_topics, jars_dir, start_broker

pytestmark = pytest.mark.kafka
TOPIC = "notifications"
DEAD_LETTERS = "sasl-dead-letters"


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[KafkaBroker]:
    try:
        jars_dir()
    except KafkaUnavailable as exc:
        pytest.skip(f"no real Kafka broker for this run: {exc}")
    broker = start_broker({TOPIC: 1, DEAD_LETTERS: 1}, sasl_ssl=True)
    try:
        yield broker
    finally:
        broker.stop()


def read_back(broker: KafkaBroker, topic: str, partition: int, offset: int) -> bytes:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap_servers, "group.id": "sasl-test", **broker.client_security}
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg.value()
    finally:
        consumer.close()
    raise AssertionError(f"no record at {topic}[{partition}]@{offset}")


def test_only_sasl_ssl_is_served(secure_broker: KafkaBroker) -> None:
    # java.util.Properties: the last occurrence of a key wins, as the broker reads it.
    lines = (secure_broker.workdir / "server.properties").read_text().splitlines()
    props = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    assert props["listeners"].split(",")[0] == f"SASL_SSL://{secure_broker.bootstrap_servers}"
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert secure_broker.sasl_ssl is not None
    assert (secure_broker.sasl_ssl.ca_file.read_text()).startswith("-----BEGIN CERTIFICATE-----")


def test_produce_authenticates_and_the_record_reads_back(secure_broker: KafkaBroker) -> None:
    assert secure_broker.sasl_ssl is not None
    out = io.StringIO()
    environ = secure_broker.sasl_ssl.client_env()
    rc = produce.main(
        ["--bootstrap-servers", secure_broker.bootstrap_servers, "--topic", TOPIC, "--output", "json", "--key", "k1"],
        environ=environ,
        out=out,
    )
    assert rc == 0
    (delivery,) = [json.loads(line) for line in out.getvalue().splitlines()]
    value = read_back(secure_broker, TOPIC, delivery["partition"], delivery["offset"])
    assert json.loads(value)  # the topic's example payload, as produced


def test_a_wrong_password_is_one_line(secure_broker: KafkaBroker, capsys: pytest.CaptureFixture[str]) -> None:
    assert secure_broker.sasl_ssl is not None
    environ = secure_broker.sasl_ssl.client_env(password="not-the-password")
    rc = produce.main(
        ["--bootstrap-servers", secure_broker.bootstrap_servers, "--topic", TOPIC, "--timeout", "60"],
        environ=environ,
        out=io.StringIO(),
    )
    assert rc == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"error: Kafka at {secure_broker.bootstrap_servers} refused us: SASL authentication")
    assert errors[0].endswith("check KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD (user, password)")
    assert "not-the-password" not in errors[0]


def test_replay_reads_dead_letters_over_sasl_ssl(
    secure_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from confluent_kafka import Producer

    from gitops.e2e import replay

    assert secure_broker.sasl_ssl is not None
    # log_level 0: this client outlives the module's broker until garbage-collected; its reconnect lines are noise.
    producer = Producer(
        {"bootstrap.servers": secure_broker.bootstrap_servers, "log_level": 0, **secure_broker.client_security}
    )
    headers = {"ce_specversion": "1.0", "ce_id": "partition:0/offset:1", "ce_source": "/s#notifications",
               "ce_type": "dev.knative.kafka.event", "ce_knativeerrorcode": "422"}  # fmt: skip
    producer.produce(DEAD_LETTERS, b'{"x":1}', headers=list(headers.items()))
    assert producer.flush(30) == 0
    for name, value in secure_broker.sasl_ssl.client_env().items():
        monkeypatch.setenv(name, value)
    assert replay.main(["--topic", DEAD_LETTERS, "--bootstrap", secure_broker.bootstrap_servers]) == 0
    assert "replay: 1 dead-lettered event(s) in sasl-dead-letters" in capsys.readouterr().out

    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "not-the-password")
    capsys.readouterr()
    with pytest.raises(UserError) as refused:
        replay.main(["--topic", DEAD_LETTERS, "--bootstrap", secure_broker.bootstrap_servers])
    line = str(refused.value)
    assert "\n" not in line and "refused us: SASL authentication" in line, line
    assert capsys.readouterr().err == ""  # librdkafka's repeated FAIL lines stay out of the terminal


def test_topics_are_created_over_sasl_ssl(secure_broker: KafkaBroker) -> None:
    """create_topics (what the e2e and the fixtures use) authenticates with the same settings."""
    create_topics(secure_broker.bootstrap_servers, {"sasl-created": 1}, secure_broker.client_security)
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": secure_broker.bootstrap_servers, **secure_broker.client_security})
    assert "sasl-created" in admin.list_topics(timeout=10).topics


def test_a_wrong_ca_is_one_line_naming_the_ca_setting(
    secure_broker: KafkaBroker, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CA that did not sign the broker's certificate (another cluster's ca.crt): the TLS handshake fails, and
    the line says which setting to fix."""
    from gitops.events.kafka_sasl_ssl import write_ca_and_server_cert

    assert secure_broker.sasl_ssl is not None
    other_ca, _ = write_ca_and_server_cert(tmp_path)
    environ = {**secure_broker.sasl_ssl.client_env(), "KAFKA_SSL_CA_LOCATION": str(other_ca)}
    rc = produce.main(
        ["--bootstrap-servers", secure_broker.bootstrap_servers, "--topic", TOPIC, "--timeout", "60"],
        environ=environ,
        out=io.StringIO(),
    )
    assert rc == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"error: Kafka at {secure_broker.bootstrap_servers} refused us: SSL"), errors
    assert errors[0].endswith("check KAFKA_SSL_CA_LOCATION (the Kafka's CA, ca.crt)"), errors
