"""`gitops replay`: list an environment's dead-lettered events, say why each failed, re-send chosen ones.

The dead-letter topic is the one of the KafkaSink that the render's Broker uses as its dead-letter sink (the
dlq change: a KafkaSink `dead-letters`), or `--topic`. Each record is a CloudEvent with Knative's error extensions
(eventing-kafka-broker RecordDispatcherImpl): `knativeerrorcode` (the subscriber's HTTP status), `knativeerrordest`
(where delivery failed) and `knativeerrordata` (the base64 of the response body, at most 1024 bytes), decoded here.
`--send [URL]` re-sends the selected events, without the error extensions and with their own id and source, to the
Broker ingress: by default the address the render's Broker gets (eventing-kafka-broker
control-plane/pkg/receiver/address.go: http://kafka-broker-ingress.knative-eventing.svc.cluster.local/<ns>/<name>),
or a port-forward of it such as `http://127.0.0.1:8080/notifications/events`.

In production the Broker admits only the identities its EventPolicy names (Eventing OIDC): the replay identity is a
ServiceAccount that policy names by `sub`, and `--token-file` carries a token minted for it with `kubectl create
token` for the Broker's audience (both printed from the render). Every event re-sent is one JSON line in the replay
record (`--record`): what, when, by whom, from which partition and offset, and the answer. `--dry-run` shows what
would be re-sent, and where, and sends and records nothing.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gitops.core import manifests
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


# The Kafka Broker's ingress Service (eventing-kafka-broker data-plane/config/broker/500-receiver.yaml: Service
# kafka-broker-ingress in knative-eventing, port 80 -> 8080) and the path the control plane gives each Broker
# (control-plane/pkg/receiver/address.go Address: /<namespace>/<name>).
INGRESS_SERVICE = "kafka-broker-ingress"
INGRESS_NAMESPACE = "knative-eventing"
SERVICE_ACCOUNT_SUBJECT = "system:serviceaccount:"  # eventing pkg/auth/event_policy.go kubernetesServiceAccountPrefix


def broker(objects: list[Obj]) -> Obj:
    """The render's Broker (the one whose dead letters are replayed)."""
    found = list(manifests.of_kind(objects, "eventing.knative.dev", "Broker"))
    if not found:
        raise UserError("the render has no Broker to re-send to", fix="pass --send <Broker ingress URL>")
    return found[0]


def ingress_path(objects: list[Obj]) -> str:
    meta = manifests.meta(broker(objects))
    return f"/{meta.get('namespace', '')}/{meta.get('name', '')}"


def ingress_url(objects: list[Obj]) -> str:
    """The Broker's address inside the cluster, as the Kafka Broker's control plane sets it."""
    return f"http://{INGRESS_SERVICE}.{INGRESS_NAMESPACE}.svc.cluster.local{ingress_path(objects)}"


def broker_audience(objects: list[Obj]) -> str:
    """The OIDC audience of the Broker: eventing pkg/auth/audience.go GetAudience, <group>/<kind>/<ns>/<name>,
    lower-cased."""
    meta = manifests.meta(broker(objects))
    return f"eventing.knative.dev/broker/{meta.get('namespace', '')}/{meta.get('name', '')}".lower()


def replay_identities(objects: list[Obj]) -> list[tuple[str, str]]:
    """(namespace, name) of every ServiceAccount of the render an EventPolicy on the Broker names by `sub`: who may
    re-send. The policy also names senders by the ServiceAccounts the controller creates for them
    (`<name>-oidc-<group>-<kind>`, not in the render): those are a KafkaSource's or Trigger's identity, not a
    person's, so they are not offered."""
    target = manifests.ObjKey.of(broker(objects))
    declared = {
        (manifests.meta(sa).get("namespace", ""), manifests.meta(sa).get("name", ""))
        for sa in manifests.of_kind(objects, "", "ServiceAccount")
    }
    found = []
    for policy in manifests.of_kind(objects, "eventing.knative.dev", "EventPolicy"):
        ns = manifests.meta(policy).get("namespace", "")
        to = [t.get("ref") or {} for t in manifests.dig(policy, "spec", "to") or []]
        if ns != target.namespace or (
            to and not any(r.get("kind") == "Broker" and r.get("name") == target.name for r in to)
        ):
            continue
        for entry in manifests.dig(policy, "spec", "from") or []:
            sub = str(entry.get("sub") or "")
            if sub.startswith(SERVICE_ACCOUNT_SUBJECT) and sub.count(":") == 3:
                account_ns, name = sub.split(":")[2:]
                if (account_ns, name) in declared:
                    found.append((account_ns, name))
    return found


def token_command(objects: list[Obj]) -> str | None:
    """The `kubectl create token` line for the render's replay identity, or None when the Broker names none."""
    identities = replay_identities(objects)
    if not identities:
        return None
    ns, name = identities[0]
    return f"kubectl create token {name} -n {ns} --audience {broker_audience(objects)} --duration 15m > replay.token"


def token_subject(token: str) -> str | None:
    """The `sub` claim of a JWT, read without verifying it (the receiver verifies; this only names who re-sent)."""
    try:
        payload = token.split(".")[1]
        return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("sub"))
    except (IndexError, ValueError, AttributeError):
        return None


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


# librdkafka's own log lines (one per failed connection attempt, ~190 in ten seconds with no broker) go to this
# logger, which drops them: an unreachable Kafka is one line (KafkaUnreachable), not a flood.
LIBRDKAFKA_LOG = logging.getLogger("gitops.e2e.replay.librdkafka")
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())
LIBRDKAFKA_LOG.propagate = False


class KafkaUnreachable(UserError):
    """No Kafka answered at the bootstrap servers: bad set-up, exit 2."""


def read(
    client_config: dict[str, Any],
    topic: str,
    timeout_s: float = 20.0,
    connect_timeout_s: float = 10.0,
    connection: Connection | None = None,
) -> list[DeadLetter]:
    """Every record of the dead-letter topic, oldest first per partition. A refused login or TLS handshake is one
    line (UserError), and so is a Kafka that does not answer (KafkaUnreachable), instead of a metadata timeout."""
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
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                meta = consumer.list_topics(topic, timeout=1).topics.get(topic)
                break
            except KafkaException as exc:
                consumer.poll(0.1)  # serves the error queue: the error callback sees a refused login here
                if watch.failure is not None and connection is not None:
                    raise UserError(str(watch.error(connection))) from None
                if time.monotonic() >= deadline:
                    error = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else exc
                    raise KafkaUnreachable(
                        f"no Kafka answered at {client_config.get('bootstrap.servers')} within "
                        f"{connect_timeout_s:g}s ({error}" + (f"; {watch.failure})" if watch.failure else ")"),
                        fix="check --bootstrap (or KAFKA_BOOTSTRAP_SERVERS) and that this machine can reach it",
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


def resend(letter: DeadLetter, ingress: str, timeout_s: float = 30.0, token: str | None = None) -> int:
    """POST the event in binary mode to a Broker ingress without Knative's error and dispatch extensions; with a
    token, as that identity (`Authorization: Bearer`, what the Kafka Broker receiver verifies under OIDC)."""
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
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
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(
            f"cannot reach the Broker ingress {ingress} ({getattr(exc, 'reason', exc)})",
            fix="port-forward it first: kubectl -n knative-eventing port-forward svc/kafka-broker-ingress 8080:80, "
            "then --send http://127.0.0.1:8080/<namespace>/<broker>",
        ) from None


def record_line(
    env: str, topic: str, letter: DeadLetter, ingress: str, status: int, by: str, at: datetime | None = None
) -> str:
    """One replay record: what was re-sent (id, source, type), from where (topic, partition, offset), when, by whom,
    to which ingress, and its answer. A JSON line in a file, not a header on the event: the event re-sent stays the
    event that failed (the subscriber compares content to drop duplicates), and the record outlives the run."""
    a = letter.attributes
    return json.dumps(
        {
            "at": (at or datetime.now(UTC)).isoformat(timespec="seconds"),
            "by": by,
            "env": env,
            "topic": topic,
            "partition": letter.partition,
            "offset": letter.offset,
            "id": a.get("id"),
            "source": a.get("source"),
            "type": a.get("type"),
            "error_code": a.get("knativeerrorcode"),
            "ingress": ingress,
            "status": status,
        },
        sort_keys=True,
    )


def who(token: str | None) -> str:
    """The person at the keyboard, and the identity the Broker saw (the token's subject)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    person = f"{user}@{socket.gethostname()}"
    subject = token_subject(token) if token else None
    return f"{person} as {subject}" if subject else person


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


RENDERED = "rendered"  # `--send` without a URL: the render's Broker address


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gitops replay",
        description="List an environment's dead-lettered events (the dead-letter topic of its Broker's KafkaSink), "
        "show why each failed, and re-send chosen ones to the Broker ingress, recording each re-send.",
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
    p.add_argument(
        "--send",
        metavar="INGRESS_URL",
        nargs="?",
        const=RENDERED,
        help="re-send the selected events to this Broker ingress URL (no URL: the render's Broker address, "
        "reachable from inside the cluster; from a workstation, a port-forward of it)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="with --send: list what would be re-sent and where; send nothing"
    )
    token = p.add_mutually_exclusive_group()
    token.add_argument("--token", help="a bearer token for the Broker's audience (prefer --token-file)")
    token.add_argument(
        "--token-file", help="a file holding the token (`kubectl create token <replay identity> --audience ...`)"
    )
    p.add_argument(
        "--record",
        default="replay-record.jsonl",
        help="the JSON lines file each re-sent event is appended to (default replay-record.jsonl)",
    )
    p.add_argument("--kafka-timeout", type=float, default=10.0, help="seconds to wait for Kafka to answer (default 10)")
    return p


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        try:
            text = open(args.token_file).read().strip()  # noqa: SIM115
        except OSError as error:
            raise UserError(f"{args.token_file}: cannot read the token ({error.strerror})") from None
        if not text:
            raise UserError(f"{args.token_file}: the token file is empty", fix="re-run `kubectl create token ...`")
        return text
    return args.token


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.dry_run and not args.send:
        args.send = RENDERED
    token = _token(args)
    objects: list[Obj] = []
    if args.topic is None or args.bootstrap is None or args.send == RENDERED:
        from gitops.core.render import render_env

        objects = render_env(args.env).objects
    if args.send and objects:
        print(f"replay: {args.env}'s Broker ingress: {ingress_url(objects)} (inside the cluster); from a workstation: "
              f"`kubectl -n {INGRESS_NAMESPACE} port-forward svc/{INGRESS_SERVICE} 8080:80`, then "
              f"--send http://127.0.0.1:8080{ingress_path(objects)}")  # fmt: skip
        command = token_command(objects)
        if command and token is None:
            message = (
                f"{args.env}'s Broker admits only the identities its EventPolicy names: mint a token with `{command}`"
            )
            if not args.dry_run:
                raise UserError(message, fix="then pass --token-file replay.token")
            print(f"replay: {message} (a real run needs it)")
    ingress = ingress_url(objects) if args.send == RENDERED else args.send
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
        letter
        for letter in read(
            connection.client_config(), topic, connect_timeout_s=args.kafka_timeout, connection=connection
        )
        if selection.matches(letter)
    ]
    failed = 0
    by = who(token)
    record = None if args.dry_run or not ingress else open(args.record, "a")  # noqa: SIM115
    try:
        for letter in letters:
            a = letter.attributes
            when = datetime.fromtimestamp(letter.timestamp_ms / 1000, UTC).isoformat(timespec="seconds")
            line = f"{topic}[{letter.partition}]@{letter.offset} {when} {a.get('type')} {a.get('source')} {a.get('id')}: {letter.reason()}"
            if ingress and args.dry_run:
                line += f" -> would re-send to {ingress}"
            elif ingress and record is not None:
                status = resend(letter, ingress, token=token)
                line += f" -> re-sent, HTTP {status}"
                failed += not 200 <= status < 300
                record.write(record_line(args.env, topic, letter, ingress, status, by) + "\n")
                record.flush()
            print(line)
    finally:
        if record is not None:
            record.close()
    summary = f"replay: {len(letters)} dead-lettered event(s) in {topic}"
    if ingress and args.dry_run:
        summary += f", {len(letters)} would be re-sent (dry run: nothing sent, nothing recorded)"
    elif ingress:
        summary += f", {len(letters) - failed} re-sent (recorded in {args.record})"
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
