"""Send test notification/log events to the Kafka topics the KafkaSource reads.

    gitops produce --topic notifications --key user-42 --bootstrap-servers 127.0.0.1:9092
    gitops produce --topic loggings --ce structured --env dev --set level=ERROR --count 3

Exit codes: 0 all records acknowledged, 1 a delivery failed or timed out, 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gitops.core import environments
from gitops.core.errors import UserError
from gitops.events import kafka_settings, payloads
from gitops.events.payloads import CeMode, Record


@dataclass
class Delivery:
    record: Record
    partition: int | None = None
    offset: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.record.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.record.key.decode() if self.record.key is not None else None,
            "ce": self.record.ce,
            "error": self.error,
        }

    def line(self) -> str:
        key = self.record.key.decode() if self.record.key is not None else "-"
        where = f"topic={self.record.topic} partition={self.partition} offset={self.offset}"
        if self.record.ce is None:
            ce = "ce=none (plain JSON; the KafkaSource wraps it)"
        else:
            ce = " ".join(f"ce.{k}={v}" for k, v in self.record.ce.items())
        return f"{where} key={key} {ce}"


def producer_config(connection: kafka_settings.Connection, timeout_s: float) -> dict[str, Any]:
    return {
        **connection.client_config(),
        "client.id": "gitops-produce",
        "acks": "all",
        "enable.idempotence": True,
        # The Java client's partitioner (murmur2), so a key lands on the same partition whichever client
        # produced it; librdkafka's default (CRC32) would split one key's events across partitions.
        "partitioner": "murmur2_random",
        # Bounds every delivery (including retries); after it the delivery report carries _MSG_TIMED_OUT.
        "message.timeout.ms": int(timeout_s * 1000),
        "logger": logging.getLogger("gitops.events.produce.librdkafka"),
    }


def produce(
    records: Sequence[Record],
    config: Mapping[str, Any],
    timeout_s: float,
    watch: kafka_settings.AuthWatch | None = None,
) -> list[Delivery]:
    """Deliver `records`; with `watch`, stop at the first authentication or TLS failure (`watch.failure`)."""
    from confluent_kafka import KafkaError, KafkaException, Message, Producer

    deliveries = [Delivery(r) for r in records]
    try:
        producer = Producer({**config, "error_cb": watch} if watch is not None else dict(config))
    except KafkaException as exc:
        raise kafka_settings.SettingsError(f"invalid Kafka client settings: {exc}") from exc

    def report(delivery: Delivery) -> Any:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                delivery.error = f"{err.name()}: {err.str()}"
            else:
                delivery.partition, delivery.offset = msg.partition(), msg.offset()

        return on_delivery

    for d in deliveries:
        r = d.record
        try:
            producer.produce(r.topic, value=r.value, key=r.key, headers=r.headers, on_delivery=report(d))
        except (KafkaException, BufferError) as exc:
            d.error = str(exc)
        producer.poll(0)
    # message.timeout.ms already bounds each delivery; the margin covers the final callback round-trip.
    deadline = time.monotonic() + timeout_s + 5
    while time.monotonic() < deadline and producer.flush(max(0.0, min(1.0, deadline - time.monotonic()))) > 0:
        if watch is not None and watch.failure is not None:
            break
    for d in deliveries:
        if d.error is None and d.offset is None:
            d.error = f"no delivery report within {timeout_s:g}s"
    return deliveries


def build_records(args: argparse.Namespace) -> list[Record]:
    records = []
    for _ in range(args.count):
        payload = payloads.build_payload(args.topic, args.payload_file, tuple(args.set))
        records.append(payloads.encode(args.topic, payload, args.key, CeMode(args.ce), args.ce_type, args.ce_source))
    return records


def _topic_choices() -> list[str]:
    try:
        return payloads.topic_names()
    except payloads.PayloadError:
        return ["notifications"]  # the app is not installed; build_payload reports it in one line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gitops produce",
        description="Produce test events to the topics the KafkaSource reads (notifications.topics).",
    )
    p.add_argument(
        "--topic",
        default="notifications",
        help=f"one of the subscriber's topics ({', '.join(_topic_choices())}; notifications.topics)",
    )
    p.add_argument("--key", help="record key: events with one key go to one partition, in order")
    p.add_argument(
        "--ce",
        choices=[m.value for m in CeMode],
        default=CeMode.BINARY.value,
        help="CloudEvents Kafka binding: binary (ce_* headers), structured (envelope) or none (plain JSON)",
    )
    p.add_argument("--ce-type", default=payloads.KAFKASOURCE_TYPE, help="default matches the Triggers' filter")
    p.add_argument("--ce-source", help="default /apis/v1/namespaces/notifications/kafkasources/kafka-source#TOPIC")
    p.add_argument("--payload-file", type=Path, help="JSON object to send instead of the model's example()")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=TEXT|FIELD:=JSON",
        help="override a payload field (dotted for nested); repeatable",
    )
    p.add_argument("--count", type=int, default=1, help="number of records (1-10000)")
    p.add_argument("--env", help="take bootstrap servers from this environment's Broker ConfigMap (environments.yaml)")
    p.add_argument("--bootstrap-servers", help=f"host:port[,...]; wins over ${kafka_settings.BOOTSTRAP_ENV}")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for acknowledgements")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.add_argument("-v", "--verbose", action="store_true", help="show librdkafka's own log lines")
    return p


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    logging.basicConfig(level=logging.INFO if args.verbose else logging.CRITICAL, format="%(name)s: %(message)s")
    if not 1 <= args.count <= 10_000:
        print("error: --count must be between 1 and 10000", file=sys.stderr)
        return 2
    if not 1 <= args.timeout <= 300:  # librdkafka reads message.timeout.ms=0 as "forever"
        print("error: --timeout must be between 1 and 300 seconds", file=sys.stderr)
        return 2
    try:
        payloads.model_for(args.topic)  # an unknown topic fails before any render
        if args.env is not None:
            environments.load().get(args.env)
        connection = kafka_settings.resolve(args.bootstrap_servers, args.env, environ)
        records = build_records(args)
    except (kafka_settings.SettingsError, payloads.PayloadError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unreachable = kafka_settings.unreachable_here(connection.bootstrap)
    if unreachable:
        print(
            f"error: no Kafka reachable from here ({unreachable}; from {connection.bootstrap.origin}); for a local "
            "Kafka pass its address, e.g. the one `make kafka` prints: make produce BOOTSTRAP=127.0.0.1:<port> "
            "(gitops produce --bootstrap-servers 127.0.0.1:<port>)",
            file=sys.stderr,
        )
        return 2
    if connection.bootstrap.auth_secret and "security.protocol" not in connection.security:
        print(
            f"warning: the Broker ConfigMap names Secret {connection.bootstrap.auth_secret}; set"
            " KAFKA_SECURITY_PROTOCOL and the KAFKA_SASL_* / KAFKA_SSL_CA_LOCATION variables from it",
            file=sys.stderr,
        )
    default_source = payloads.default_source(args.topic)
    if args.ce != CeMode.NONE and (
        args.ce_type != payloads.KAFKASOURCE_TYPE or (args.ce_source or default_source) != default_source
    ):
        print(
            f"warning: the Triggers only pass type={payloads.KAFKASOURCE_TYPE} with source {default_source};"
            " this event will not reach the subscriber",
            file=sys.stderr,
        )
    print(f"producing {len(records)} x {args.topic} (ce={args.ce}) to {connection.describe()}", file=sys.stderr)
    watch = kafka_settings.AuthWatch()
    try:
        deliveries = produce(records, producer_config(connection, args.timeout), args.timeout, watch)
        if watch.failure is not None:
            raise watch.error(connection)
    except kafka_settings.SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = [d for d in deliveries if d.error is not None]
    for d in deliveries:
        if d.error is None:
            print(json.dumps(d.as_dict()) if args.output == "json" else d.line(), file=out)
    for d in failed:
        if args.output == "json":
            print(json.dumps(d.as_dict()), file=out)
        print(f"error: delivery to {d.record.topic} failed: {d.error}", file=sys.stderr)
    if failed:
        print(
            f"error: {len(failed)} of {len(deliveries)} records not delivered; check the bootstrap servers,"
            " the topic and the credentials (-v shows librdkafka's log)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
