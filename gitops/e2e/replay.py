"""`gitops replay`: list an environment's dead-lettered events, say why each failed, re-send chosen ones.

The dead-letter topic is the one of the KafkaSink that the render's Broker uses as its dead-letter sink (the
dlq change: a KafkaSink `dead-letters`), or `--topic`. Each record is a CloudEvent with Knative's error extensions
(eventing-kafka-broker RecordDispatcherImpl): `knativeerrorcode` (the subscriber's HTTP status), `knativeerrordest`
(where delivery failed) and `knativeerrordata` (the base64 of the response body, at most 1024 bytes), decoded here.
`--send URL` re-sends the selected events, without the error extensions and with their own id and source (so the
subscriber's dedup still recognises one that was processed meanwhile), to a Broker ingress such as
`http://127.0.0.1:8080/notifications/events` (a port-forward of kafka-broker-ingress in a cluster).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gitops.core.errors import UserError
from gitops.core.manifests import Obj
from gitops.events.kafka_settings import AuthWatch, Connection, SettingsError, resolve

ERROR_EXTENSIONS = ("knativeerrorcode", "knativeerrordest", "knativeerrordata")
# Added by the dispatcher on every delivery; a replayed event gets fresh ones.
DISPATCHER_EXTENSIONS = ("knativekafkapartition", "knativekafkaoffset")


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    attributes: dict[str, str]
    data: bytes

    @property
    def key(self) -> tuple[str, str]:
        return (self.attributes.get("source", ""), self.attributes.get("id", ""))

    def reason(self) -> str:
        code = self.attributes.get("knativeerrorcode", "?")
        dest = self.attributes.get("knativeerrordest", "?")
        return f"HTTP {code} from {dest}: {decode_error_data(self.attributes.get('knativeerrordata'))}"


def decode_error_data(encoded: str | None) -> str:
    if not encoded:
        return "(no response body)"
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        return encoded
    text = raw.decode("utf-8", "replace")
    try:
        return json.dumps(json.loads(text), separators=(",", ":"))
    except ValueError:
        return text


def dead_letter_topic(objects: list[Obj]) -> str:
    """The topic of the KafkaSink the render's Broker dead-letters to."""
    sinks = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects if o["kind"] == "KafkaSink"}
    for broker in (o for o in objects if o["kind"] == "Broker"):
        ref = ((broker["spec"].get("delivery") or {}).get("deadLetterSink") or {}).get("ref") or {}
        if ref.get("kind") == "KafkaSink":
            sink = sinks.get((ref.get("namespace") or broker["metadata"].get("namespace"), ref.get("name")))
            if sink is not None:
                return sink["spec"]["topic"]
    raise UserError(
        "the render's Broker has no KafkaSink dead-letter sink, so there is no dead-letter topic to read",
        fix="pass --topic <dead-letter topic>",
    )


@dataclass(frozen=True)
class Selection:
    from_offset: int | None = None
    to_offset: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    types: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    error_codes: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()

    def matches(self, letter: DeadLetter) -> bool:
        a = letter.attributes
        return (
            (self.from_offset is None or letter.offset >= self.from_offset)
            and (self.to_offset is None or letter.offset <= self.to_offset)
            and (self.since_ms is None or letter.timestamp_ms >= self.since_ms)
            and (self.until_ms is None or letter.timestamp_ms <= self.until_ms)
            and (not self.types or a.get("type") in self.types)
            and (not self.sources or a.get("source") in self.sources)
            and (not self.error_codes or a.get("knativeerrorcode") in self.error_codes)
            and (not self.ids or a.get("id") in self.ids)
        )


# Silent unless the caller configures logging (a NullHandler keeps Python's last-resort handler from printing it).
LIBRDKAFKA_LOG = logging.getLogger("gitops.e2e.replay.librdkafka")
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())


def read(
    client_config: dict[str, Any], topic: str, timeout_s: float = 20.0, connection: Connection | None = None
) -> list[DeadLetter]:
    """Every record of the dead-letter topic, oldest first per partition. A refused login or TLS handshake is one
    line (UserError) instead of a metadata timeout."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    watch = AuthWatch()
    consumer = Consumer(
        {
            **client_config,
            "group.id": "gitops-replay-reader",
            "enable.auto.commit": False,
            # librdkafka's own lines (a refused login repeats every reconnect) go to a logger nobody prints by
            # default; the failure itself becomes one line below.
            "logger": LIBRDKAFKA_LOG,
            "error_cb": watch,
        }
    )
    letters: list[DeadLetter] = []
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                meta = consumer.list_topics(topic, timeout=1).topics.get(topic)
                break
            except KafkaException as exc:
                consumer.poll(0.1)  # serves the error queue: the error callback sees a refused login here
                if watch.failure is not None and connection is not None:
                    raise UserError(str(watch.error(connection))) from None
                if time.monotonic() >= deadline:
                    raise UserError(
                        f"cannot read the topics of {client_config['bootstrap.servers']}: {exc.args[0].str()}"
                        + (f" ({watch.failure})" if watch.failure else "")
                    ) from None
        if meta is None or meta.error is not None:
            raise UserError(f"dead-letter topic {topic!r} does not exist on {client_config['bootstrap.servers']}")
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in meta.partitions}
        assign = [TopicPartition(topic, p, low) for p, (low, high) in ends.items() if high > low]
        if not assign:
            return []
        consumer.assign(assign)
        pending = {tp.partition for tp in assign}
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            attrs = {
                k[3:]: (v or b"").decode("utf-8", "replace") for k, v in (msg.headers() or []) if k.startswith("ce_")
            }
            data = msg.value() or b""
            if not attrs and data:  # structured mode
                try:
                    doc = json.loads(data)
                    attrs = {k: str(v) for k, v in doc.items() if k not in ("data", "data_base64")}
                    data = (
                        json.dumps(doc.get("data")).encode()
                        if "data" in doc
                        else base64.b64decode(doc.get("data_base64", ""))
                    )
                except ValueError:
                    pass
            for name, value in msg.headers() or []:
                if name.lower() == "content-type" and "datacontenttype" not in attrs:
                    attrs["datacontenttype"] = (value or b"").decode()
            letters.append(DeadLetter(msg.partition(), msg.offset(), msg.timestamp()[1], attrs, data))
            if msg.offset() + 1 >= ends[msg.partition()][1]:
                pending.discard(msg.partition())
    finally:
        consumer.close()
    return sorted(letters, key=lambda letter: (letter.partition, letter.offset))


def resend(letter: DeadLetter, ingress: str, timeout_s: float = 30.0) -> int:
    """POST the event in binary mode to a Broker ingress without Knative's error and dispatch extensions."""
    headers = {}
    for name, value in letter.attributes.items():
        if name in ERROR_EXTENSIONS or name in DISPATCHER_EXTENSIONS or name == "datacontenttype":
            continue
        headers[f"ce-{name}"] = value
    headers["content-type"] = letter.attributes.get("datacontenttype", "application/json")
    request = urllib.request.Request(ingress, data=letter.data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{text!r} is not an ISO 8601 time", fix="e.g. 2026-12-03T18:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gitops replay",
        description="List an environment's dead-lettered events (the dead-letter topic of its Broker's KafkaSink), "
        "show why each failed, and re-send chosen ones to a Broker ingress.",
    )
    p.add_argument("--env", default="dev", help="environment whose render names the dead-letter topic (default dev)")
    p.add_argument("--topic", help="the dead-letter topic (default: the render's KafkaSink dead-letter sink)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS, else the render's)")
    p.add_argument("--from-offset", type=int, help="first offset (every partition)")
    p.add_argument("--to-offset", type=int, help="last offset (every partition)")
    p.add_argument("--since", help="first record time, ISO 8601 (e.g. 2026-12-03T18:00:00Z)")
    p.add_argument("--until", help="last record time, ISO 8601")
    p.add_argument("--type", action="append", default=[], help="only this CloudEvent type (repeatable)")
    p.add_argument("--source", action="append", default=[], help="only this CloudEvent source (repeatable)")
    p.add_argument("--error-code", action="append", default=[], help="only this knativeerrorcode (repeatable)")
    p.add_argument("--id", action="append", default=[], help="only this CloudEvent id (repeatable)")
    p.add_argument("--send", metavar="INGRESS_URL", help="re-send the selected events to this Broker ingress URL")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    import os

    objects: list[Obj] = []
    if args.topic is None or args.bootstrap is None:
        from gitops.core.render import render_env

        objects = render_env(args.env).objects
    topic = args.topic or dead_letter_topic(objects)
    try:
        connection = resolve(args.bootstrap, args.env, os.environ) if objects or args.bootstrap else None
    except SettingsError as exc:
        raise UserError(str(exc), fix="pass --bootstrap or set KAFKA_BOOTSTRAP_SERVERS") from None
    assert connection is not None
    selection = Selection(
        args.from_offset,
        args.to_offset,
        _ms(args.since),
        _ms(args.until),
        tuple(args.type),
        tuple(args.source),
        tuple(args.error_code),
        tuple(args.id),
    )
    letters = [
        letter for letter in read(connection.client_config(), topic, connection=connection) if selection.matches(letter)
    ]
    failed = 0
    for letter in letters:
        a = letter.attributes
        when = datetime.fromtimestamp(letter.timestamp_ms / 1000, UTC).isoformat(timespec="seconds")
        line = f"{topic}[{letter.partition}]@{letter.offset} {when} {a.get('type')} {a.get('source')} {a.get('id')}: {letter.reason()}"
        if args.send:
            status = resend(letter, args.send)
            line += f" -> re-sent, HTTP {status}"
            failed += not 200 <= status < 300
        print(line)
    print(
        f"replay: {len(letters)} dead-lettered event(s) in {topic}"
        + (f", {len(letters) - failed} re-sent" if args.send else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
