"""Post one KafkaSource-shaped CloudEvent to a running subscriber, as `kn event send` would.

    python -m notifications.send_event --url http://127.0.0.1:8080 --topic notifications [--mode structured]

The attributes follow what eventing-kafka-broker's KafkaSource dispatcher produces for a plain JSON record
(`InvalidCloudEventInterceptor`): type `dev.knative.kafka.event`,
source `/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>`, id `partition:<p>/offset:<o>`,
subject `partition:<p>#<o>`, `key`/`partitionkey`, `kafkaheader<name>`, `knativekafkapartition` and
`knativekafkaoffset`. The CloudEvents SDK does the encoding, so the subscriber's own decoder is checked
against an independent encoder.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from cloudevents.core.bindings.http import HTTPMessage, to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from notifications.models import LogRecord, Notification

KAFKA_SOURCE_EVENT_TYPE = "dev.knative.kafka.event"
TOPIC_PATHS = {"notifications": "/events/notifications", "loggings": "/events/loggings"}


def example_payload(topic: str) -> dict[str, Any]:
    model = Notification.example() if topic == "notifications" else LogRecord.example()
    return orjson.loads(model.model_dump_json())


def kafka_source_event(
    topic: str,
    data: dict[str, Any],
    *,
    partition: int = 0,
    offset: int = 0,
    key: str | None = "user-4711",
    namespace: str = "notifications",
    source_name: str = "kafka-source",
    kafka_headers: dict[str, str] | None = None,
) -> CloudEvent:
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "type": KAFKA_SOURCE_EVENT_TYPE,
        "source": f"/apis/v1/namespaces/{namespace}/kafkasources/{source_name}#{topic}",
        "id": f"partition:{partition}/offset:{offset}",
        "subject": f"partition:{partition}#{offset}",
        "time": datetime.now(UTC),
        # The record's `content-type` header becomes datacontenttype (and is not copied as kafkaheader*).
        "datacontenttype": "application/json",
        "knativekafkapartition": str(partition),
        "knativekafkaoffset": str(offset),
    }
    if key is not None:
        attributes["key"] = key
        attributes["partitionkey"] = key
    for name, value in (kafka_headers or {"x-request-id": secrets.token_hex(8)}).items():
        attributes["kafkaheader" + "".join(c for c in name.lower() if c.isalnum())] = value
    return CloudEvent(attributes=attributes, data=data)


def encode(event: CloudEvent, mode: str) -> HTTPMessage:
    return to_structured_event(event) if mode == "structured" else to_binary_event(event)


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="base URL of the subscriber")
    parser.add_argument("--topic", choices=sorted(TOPIC_PATHS), default="notifications")
    parser.add_argument("--mode", choices=("binary", "structured"), default="binary")
    parser.add_argument("--data", help="JSON payload to send instead of the model's example()")
    parser.add_argument("--partition", type=int, default=0)
    parser.add_argument("--offset", type=int, help="record offset (default: derived from the clock)")
    parser.add_argument("--key", default="user-4711", help="Kafka record key")
    parser.add_argument(
        "--namespace", default="notifications", help="KafkaSource namespace (the repo deploys to notifications)"
    )
    parser.add_argument("--source-name", default="kafka-source", help="KafkaSource name")
    parser.add_argument(
        "--bearer-token",
        default=os.environ.get("BEARER_TOKEN"),
        help="sent as 'Authorization: Bearer ...' for a subscriber with OIDC_AUDIENCE set, e.g. "
        "$(kubectl create token <sa> --audience <OIDC_AUDIENCE>) (default: $BEARER_TOKEN)",
    )
    args = parser.parse_args(argv)

    data = orjson.loads(args.data) if args.data else example_payload(args.topic)
    offset = args.offset if args.offset is not None else time.time_ns() // 1000
    event = kafka_source_event(
        args.topic,
        data,
        partition=args.partition,
        offset=offset,
        key=args.key,
        namespace=args.namespace,
        source_name=args.source_name,
    )
    message = encode(event, args.mode)
    headers = {**message.headers, "traceparent": new_traceparent()}
    if args.bearer_token:
        headers["Authorization"] = f"Bearer {args.bearer_token}"
    url = args.url.rstrip("/") + TOPIC_PATHS[args.topic]
    try:
        response = httpx.post(url, headers=headers, content=message.body, timeout=10)
    except httpx.HTTPError as exc:
        print(f"POST {url} failed: {exc}", file=sys.stderr)
        return 2
    print(f"POST {url} id={event.get_id()} -> {response.status_code} {response.text!r}")
    return 0 if response.status_code < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
