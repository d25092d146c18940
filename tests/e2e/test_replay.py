"""`gitops replay`'s selection, its reading of Knative's error extensions, and the render's dead-letter topic."""

import base64
import copy
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.core.errors import UserError
from gitops.core.paths import REPO_ROOT
from gitops.core.render import RenderResult
from gitops.e2e import replay
from gitops.e2e.replay import DeadLetter, Selection, dead_letter_topic, decode_error_data
from tests.events.kafka_broker import kafka_bootstrap, kafka_broker  # noqa: F401  (session fixtures)


def letter(offset: int, ts: int, **attrs: str) -> DeadLetter:
    base = {"type": "dev.knative.kafka.event", "source": "/s#notifications", "id": f"partition:0/offset:{offset}"}
    return DeadLetter(0, offset, ts, {**base, **attrs}, b"{}")


def test_selection_by_offset_time_type_source_and_error_code():
    letters = [
        letter(1, 1000, knativeerrorcode="422"),
        letter(2, 2000, knativeerrorcode="401"),
        letter(3, 3000, knativeerrorcode="422", type="other"),
    ]
    pick = lambda sel: [x.offset for x in letters if sel.matches(x)]  # noqa: E731
    assert pick(Selection(from_offset=2)) == [2, 3]
    assert pick(Selection(to_offset=1)) == [1]
    assert pick(Selection(since_ms=1500, until_ms=2500)) == [2]
    assert pick(Selection(error_codes=("422",))) == [1, 3]
    assert pick(Selection(types=("dev.knative.kafka.event",), error_codes=("422",))) == [1]
    assert pick(Selection(sources=("/elsewhere",))) == []


def test_the_reason_decodes_knativeerrordata():
    body = base64.b64encode(b'{"error":"invalid_payload","detail":"channel: bad"}').decode()
    reason = letter(1, 0, knativeerrorcode="422", knativeerrordest="http://x/events/notifications",
                    knativeerrordata=body).reason()  # fmt: skip
    assert reason == 'HTTP 422 from http://x/events/notifications: {"error":"invalid_payload","detail":"channel: bad"}'
    assert decode_error_data(None) == "(no response body)"
    assert decode_error_data("not base64!") == "not base64!"


def test_the_dead_letter_topic_is_the_brokers_kafka_sink(renders: dict[str, RenderResult]):
    objects = copy.deepcopy(renders["dev"].objects)
    sink = next(o for o in objects if o["kind"] == "KafkaSink")
    assert dead_letter_topic(objects) == sink["spec"]["topic"]
    broker = next(o for o in objects if o["kind"] == "Broker")
    broker["spec"]["delivery"].pop("deadLetterSink")
    with pytest.raises(UserError, match="no KafkaSink dead-letter sink"):
        dead_letter_topic(objects)


def test_prod_names_its_broker_ingress_and_replay_identity(renders: dict[str, RenderResult]):
    """The render tells the operator where to send and which identity to mint a token for (issue 28)."""
    prod = renders["prod"].objects
    assert (
        replay.ingress_url(prod)
        == "http://kafka-broker-ingress.knative-eventing.svc.cluster.local/notifications/events"
    )
    assert replay.replay_identities(prod) == [("notifications", "replay")]
    assert replay.token_command(prod) == (
        "kubectl create token replay -n notifications --audience eventing.knative.dev/broker/notifications/events "
        "--duration 15m > replay.token"
    )
    assert replay.token_command(renders["dev"].objects) is None  # dev's Broker takes events without a token


def _jwt(claims: dict) -> str:
    encode = lambda doc: base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")  # noqa: E731
    return f"{encode({'alg': 'RS256'})}.{encode(claims)}.sig"


def test_the_replay_record_says_what_when_who_and_from_where():
    token = _jwt({"sub": "system:serviceaccount:notifications:replay"})
    assert replay.token_subject(token) == "system:serviceaccount:notifications:replay"
    assert replay.token_subject("not a jwt") is None
    assert replay.who(token).endswith(" as system:serviceaccount:notifications:replay")
    line = json.loads(
        replay.record_line("prod", "dlq", letter(7, 1000, knativeerrorcode="503"), "http://i/n/e", 202, "me@host")
    )
    assert {k: line[k] for k in ("env", "topic", "partition", "offset", "id", "error_code", "status", "by")} == {
        "env": "prod", "topic": "dlq", "partition": 0, "offset": 7, "id": "partition:0/offset:7",
        "error_code": "503", "status": 202, "by": "me@host",
    }  # fmt: skip
    assert line["at"].endswith("+00:00")


def test_prod_send_without_a_token_is_refused_with_the_command_to_mint_one(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "gitops.cli", "replay", "--env", "prod", "--send", "--topic", "t",
         "--bootstrap", "127.0.0.1:9", "--record", str(tmp_path / "r.jsonl")],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line.startswith(("!", "  ", "WARNING"))]
    assert len(errors) == 1 and "kubectl create token replay -n notifications" in errors[0], proc.stderr
    assert "--token-file" in errors[0] and not (tmp_path / "r.jsonl").exists()


def test_no_kafka_is_one_line_and_exit_2():
    """Issue 28: with nothing listening, librdkafka's ~190 log lines and `this is a bug` (exit 70) became one line."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "gitops.cli", "replay", "--topic", "t", "--bootstrap", f"127.0.0.1:{port}",
         "--kafka-timeout", "2"],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"no Kafka answered at 127.0.0.1:{port}" in proc.stderr and "bug" not in proc.stderr


@pytest.mark.kafka
def test_replay_lists_why_and_resends_to_an_ingress(
    kafka_bootstrap: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
):
    """The verb end to end on a real Kafka: a dead letter as the KafkaSink writes it (binary mode, ce_ headers),
    listed with its decoded reason, filtered by error code, and re-sent without Knative's error extensions."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from confluent_kafka import Producer

    from gitops.e2e.replay import main
    from tests.events.kafka_broker import create_topics

    topic = "replay-test-dead-letters"
    create_topics(kafka_bootstrap, {topic: 1})
    body = base64.b64encode(b'{"error":"invalid_payload","detail":"channel"}').decode()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for code, event_id in (("422", "partition:0/offset:7"), ("401", "partition:0/offset:8")):
        headers = {"ce_specversion": "1.0", "ce_id": event_id, "ce_source": "/s#notifications",
                   "ce_type": "dev.knative.kafka.event", "ce_knativeerrorcode": code,
                   "ce_knativeerrordest": "http://sub/events/notifications", "ce_knativeerrordata": body,
                   "content-type": "application/json"}  # fmt: skip
        producer.produce(topic, b'{"x":1}', headers=list(headers.items()))
    producer.flush(30)

    received: list[dict[str, str]] = []

    class Ingress(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            received.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Ingress)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    record = tmp_path / "replay.jsonl"
    token_file = tmp_path / "replay.token"
    token_file.write_text(_jwt({"sub": "system:serviceaccount:notifications:replay"}) + "\n")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/notifications/events"
        args = ["--topic", topic, "--bootstrap", kafka_bootstrap, "--error-code", "422", "--record", str(record)]
        # --dry-run: the same listing, where it would go, nothing sent and nothing recorded.
        assert main([*args, "--send", url, "--dry-run"]) == 0
        dry = capsys.readouterr().out
        assert f"-> would re-send to {url}" in dry and "1 would be re-sent (dry run" in dry
        assert received == [] and not record.exists()
        assert main([*args, "--send", url, "--token-file", str(token_file)]) == 0
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert 'partition:0/offset:7: HTTP 422 from http://sub/events/notifications: {"error":"invalid_payload"' in out
    assert "offset:8" not in out and "re-sent, HTTP 202" in out
    assert out.strip().endswith(
        f"replay: 1 dead-lettered event(s) in replay-test-dead-letters, 1 re-sent (recorded in {record})"
    )
    assert len(received) == 1 and received[0]["ce-id"] == "partition:0/offset:7"
    assert not any(name.startswith("ce-knativeerror") for name in received[0])
    assert received[0]["authorization"] == f"Bearer {token_file.read_text().strip()}"
    (line,) = [json.loads(x) for x in record.read_text().splitlines()]
    assert (line["topic"], line["partition"], line["offset"], line["status"]) == (topic, 0, 0, 202)
    assert line["by"].endswith(" as system:serviceaccount:notifications:replay") and line["ingress"] == url
