"""gitops.events.produce against a real Apache Kafka broker (gitops/events/kafka_local.py), and its usage errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gitops.events import payloads, produce
from tests.events.kafka_broker import KafkaBroker, kafka_bootstrap, kafka_broker  # noqa: F401  (session fixtures)

REPO = Path(__file__).resolve().parents[2]
CE_HEADERS = {"ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time"}
UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1 of loopback: connections are refused at once


def models() -> tuple[Any, Any]:
    from notifications.models import LogRecord, Notification

    return Notification, LogRecord


def same_except_fresh(topic: str, value: bytes) -> None:
    """The record is the model's example, except the per-record id/time fields, which are new and recent."""
    notification, log_record = models()
    model = {"notifications": notification, "loggings": log_record}[topic]
    fresh = set(payloads.fresh_fields(topic))
    got = model.model_validate_json(value)
    assert got.model_dump(exclude=fresh) == model.example().model_dump(exclude=fresh)
    for name in fresh:
        assert getattr(got, name) != getattr(model.example(), name), name
        if isinstance(getattr(got, name), datetime):
            assert abs(time.time() - getattr(got, name).timestamp()) < 120, name


@dataclass
class Consumed:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    offset: int


def run_cli(argv: list[str], environ: dict[str, str] | None = None) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    rc = produce.main([*argv, "--output", "json"], environ=environ or {}, out=out)
    return rc, [json.loads(line) for line in out.getvalue().splitlines()]


def consume_at(bootstrap: str, topic: str, partition: int, offset: int, timeout: float = 15.0) -> Consumed:
    """Read exactly the record the producer reported, so tests sharing the topic cannot interfere."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            assert msg.offset() == offset
            return Consumed(msg.key(), msg.value(), dict(msg.headers() or []), msg.partition(), msg.offset())
    finally:
        consumer.close()
    raise AssertionError(f"no record at {topic}[{partition}]@{offset} within {timeout}s")


# --- the real broker


@pytest.mark.kafka
def test_binary_mode_through_the_cli_entry_point(kafka_bootstrap: str) -> None:  # noqa: F811
    proc = subprocess.run(
        [sys.executable, "-m", "gitops.events.produce", "--topic", "notifications", "--key", "user-42"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")},
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "from $KAFKA_BOOTSTRAP_SERVERS" in proc.stderr
    (line,) = proc.stdout.splitlines()
    fields = dict(part.split("=", 1) for part in line.split())
    assert fields["topic"] == "notifications"
    assert fields["key"] == "user-42"
    assert fields["ce.type"] == "dev.knative.kafka.event"
    assert fields["ce.source"] == "/apis/v1/namespaces/notifications/kafkasources/kafka-source#notifications"

    rec = consume_at(kafka_bootstrap, "notifications", int(fields["partition"]), int(fields["offset"]))
    assert rec.key == b"user-42"
    assert rec.headers.keys() >= CE_HEADERS
    assert rec.headers["ce_specversion"] == b"1.0"
    assert rec.headers["ce_id"].decode() == fields["ce.id"]
    assert rec.headers["ce_type"] == b"dev.knative.kafka.event"
    assert rec.headers["ce_source"].decode() == fields["ce.source"]
    assert rec.headers["ce_partitionkey"] == b"user-42"
    assert rec.headers["ce_key"] == b"user-42"
    assert rec.headers["content-type"] == b"application/json"  # datacontenttype maps to content-type
    assert datetime.fromisoformat(rec.headers["ce_time"].decode()).tzinfo is not None
    same_except_fresh("notifications", rec.value)

    # What a CloudEvents SDK consumer (like the KafkaSource's) decodes from the record.
    from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
    from cloudevents.core.formats.json import JSONFormat

    event = from_binary(KafkaMessage(rec.headers, rec.key, rec.value), JSONFormat())
    assert event.get_id() == fields["ce.id"]
    assert event.get_type() == "dev.knative.kafka.event"
    assert event.get_extension("partitionkey") == "user-42"
    assert json.loads(rec.value) == event.get_data()


@pytest.mark.kafka
def test_structured_mode_envelope(kafka_bootstrap: str, tmp_path: Path) -> None:  # noqa: F811
    _, log_record = models()
    payload = json.loads(log_record.example().model_dump_json())
    payload_file = tmp_path / "log.json"
    payload_file.write_text(json.dumps(payload))
    rc, (report,) = run_cli(
        ["--topic", "loggings", "--ce", "structured", "--key", "svc-a", "--payload-file", str(payload_file)],
        {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )
    assert rc == 0

    rec = consume_at(kafka_bootstrap, "loggings", report["partition"], report["offset"])
    assert rec.key == b"svc-a"
    assert rec.headers == {"content-type": b"application/cloudevents+json"}
    envelope = json.loads(rec.value)
    assert envelope["specversion"] == "1.0"
    assert envelope["id"] == report["ce"]["id"]
    assert envelope["type"] == "dev.knative.kafka.event"
    assert envelope["source"] == "/apis/v1/namespaces/notifications/kafkasources/kafka-source#loggings"
    assert envelope["datacontenttype"] == "application/json"
    assert envelope["partitionkey"] == "svc-a"
    assert "data_base64" not in envelope  # the payload is embedded as JSON, not as opaque bytes
    assert log_record.model_validate(envelope["data"]) == log_record.model_validate(payload)


@pytest.mark.kafka
def test_none_mode_sends_plain_json_without_ce_headers(kafka_bootstrap: str) -> None:  # noqa: F811
    rc, (report,) = run_cli(["--topic", "loggings", "--ce", "none"], {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    assert rc == 0
    assert report["ce"] is None

    rec = consume_at(kafka_bootstrap, "loggings", report["partition"], report["offset"])
    assert rec.key is None
    assert not [h for h in rec.headers if h.lower().startswith("ce_")]
    # No ce_specversion, no cloudevents content-type: the KafkaSource wraps it with this datacontenttype.
    assert rec.headers == {"content-type": b"application/json"}
    same_except_fresh("loggings", rec.value)


@pytest.mark.kafka
@pytest.mark.parametrize("mode", ["binary", "structured", "none"])
def test_the_dispatchers_cloudevents_sdk_reads_the_record(kafka_broker: KafkaBroker, mode: str) -> None:  # noqa: F811
    """Decode with the CloudEvents Java SDK, as the KafkaSource dispatcher does (knative-facts §1): binary and
    structured records are real CloudEvents passed through unchanged; a plain record is not, so it is wrapped."""
    rc, (report,) = run_cli(
        ["--topic", "notifications", "--key", "user-4711", "--ce", mode],
        {"KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers},
    )
    assert rc == 0
    decoded = kafka_broker.ce_decode("notifications", report["partition"], report["offset"])
    assert decoded["key"] == "user-4711"
    if mode == "none":
        assert "Unknown encoding" in decoded["error"]
        return
    assert "error" not in decoded, decoded
    assert decoded["attributes"] == {
        "specversion": "1.0",
        "id": report["ce"]["id"],
        "type": "dev.knative.kafka.event",
        "source": "/apis/v1/namespaces/notifications/kafkasources/kafka-source#notifications",
        "datacontenttype": "application/json",
        "time": decoded["attributes"]["time"],
    }
    assert datetime.fromisoformat(decoded["attributes"]["time"]).tzinfo is not None
    assert decoded["extensions"] == {"partitionkey": "user-4711", "key": "user-4711"}
    same_except_fresh("notifications", decoded["data"].encode())


def java_murmur2(data: bytes) -> int:
    """org.apache.kafka.common.utils.Utils.murmur2, as an unsigned 32-bit value."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    tail = len(data) & ~3
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = data[tail:]
    if len(rest) == 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h = ((h ^ rest[0]) * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return h ^ (h >> 15)


def java_partition(key: str, partitions: int) -> int:
    return (java_murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def test_java_murmur2_matches_kafka_clients() -> None:
    # Values printed by org.apache.kafka.common.utils.Utils.murmur2 (kafka-clients 4.4.0), as signed ints.
    for key, signed in {
        "21": -973932308,
        "foobar": -790332482,
        "abc": 479470107,
        "user-42": 1459644460,
    }.items():
        assert java_murmur2(key.encode()) == signed & 0xFFFFFFFF


@pytest.mark.kafka
def test_key_routes_to_one_partition_like_the_java_client(kafka_bootstrap: str) -> None:  # noqa: F811
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    rc, reports = run_cli(["--key", "user-42", "--count", "5"], env)
    assert rc == 0
    assert len(reports) == 5
    assert {r["partition"] for r in reports} == {java_partition("user-42", 3)}
    offsets = [r["offset"] for r in reports]
    assert offsets == list(range(offsets[0], offsets[0] + 5))  # in order, nothing interleaved or lost
    assert len({r["ce"]["id"] for r in reports}) == 5  # one CloudEvent id per record
    values = [consume_at(kafka_bootstrap, "notifications", r["partition"], r["offset"]).value for r in reports]
    assert len({json.loads(v)["notification_id"] for v in values}) == 5  # five notifications, not one copy

    seen = set()
    for key in ("order-1", "order-2", "order-3", "tenant-a", "tenant-b", "tenant-c"):
        rc, (report,) = run_cli(["--key", key], env)
        assert rc == 0
        assert report["partition"] == java_partition(key, 3), key
        seen.add(report["partition"])
    assert len(seen) > 1  # keys really spread; a constant partition would pass the check above too


@pytest.mark.kafka
def test_bootstrap_from_the_rendered_configmap(
    kafka_bootstrap: str,  # noqa: F811
    fake_render: Callable[[str], None],
) -> None:
    fake_render(kafka_bootstrap)
    rc, (report,) = run_cli(["--env", "dev", "--key", "cm"], {})
    assert rc == 0
    rec = consume_at(kafka_bootstrap, "notifications", report["partition"], report["offset"])
    assert rec.key == b"cm"


@pytest.mark.kafka
def test_environment_wins_over_the_configmap(
    kafka_bootstrap: str,  # noqa: F811
    fake_render: Callable[[str], None],
) -> None:
    fake_render(UNREACHABLE)
    rc, (report,) = run_cli(["--env", "dev", "--timeout", "5"], {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    assert rc == 0, report
    assert report["offset"] is not None


# --- failures


def test_unreachable_broker_fails_within_the_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    rc, (report,) = run_cli(["--bootstrap-servers", UNREACHABLE, "--timeout", "2"])
    elapsed = time.monotonic() - started
    assert rc == 1
    assert report["offset"] is None
    assert "timed out" in report["error"].lower()
    assert elapsed < 10
    assert "not delivered" in capsys.readouterr().err


def test_no_bootstrap_source_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert produce.main([], environ={}) == 2
    assert "--bootstrap-servers" in capsys.readouterr().err


def test_payload_that_the_model_rejects_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert produce.main(["--bootstrap-servers", UNREACHABLE, "--payload-file", str(bad)], environ={}) == 2
    assert "expected a JSON object" in capsys.readouterr().err
    bad.write_text("{}")
    assert produce.main(["--bootstrap-servers", UNREACHABLE, "--payload-file", str(bad)], environ={}) == 2
    assert "does not match Notification" in capsys.readouterr().err


@pytest.mark.kafka
def test_custom_ce_type_is_sent_but_warned_about(
    kafka_bootstrap: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc, (report,) = run_cli(
        ["--ce-type", "com.example.notification", "--ce-source", "/tests"],
        {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )
    assert rc == 0
    assert "will not reach the subscriber" in capsys.readouterr().err
    rec = consume_at(kafka_bootstrap, "notifications", report["partition"], report["offset"])
    assert rec.headers["ce_type"] == b"com.example.notification"
    assert rec.headers["ce_source"] == b"/tests"


@pytest.mark.parametrize("argv", [["--timeout", "0.5"], ["--timeout", "301"], ["--count", "0"]])
def test_out_of_range_limits_are_usage_errors(argv: list[str]) -> None:
    assert produce.main(["--bootstrap-servers", UNREACHABLE, *argv], environ={}) == 2


def test_in_cluster_address_fails_fast_naming_bootstrap(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """dev's Broker ConfigMap names kafka-kafka-bootstrap.kafka.svc: unreachable from a laptop. Say so at once with
    the make variable that fixes it, instead of librdkafka retrying it until --timeout."""

    def never(*_args: object) -> None:
        raise AssertionError("no producer may be started for an address that cannot be reached")

    monkeypatch.setattr(produce, "produce", never)
    rc, reports = run_cli(["--env", "dev", "--timeout", "30"])
    assert rc == 2 and reports == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        "error: no Kafka reachable from here (kafka-kafka-bootstrap.kafka.svc:9092 is a cluster-internal name; from "
    )
    assert "make produce BOOTSTRAP=127.0.0.1:<port>" in err


def test_unresolvable_servers_are_unreachable_only_when_none_resolves() -> None:
    from gitops.events.kafka_settings import Bootstrap, unreachable_here

    def resolves(host: str, _port: int) -> bool:
        return host == "kafka.example.com"

    assert unreachable_here(Bootstrap("nope.example:9092", "--bootstrap-servers"), resolves) == (
        "nope.example:9092 does not resolve here"
    )
    assert unreachable_here(Bootstrap("nope.example:9092,kafka.example.com:9092", "x"), resolves) is None
    assert unreachable_here(Bootstrap(UNREACHABLE, "x")) is None  # a literal loopback address resolves offline
