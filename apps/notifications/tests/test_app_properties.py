"""Property-based: generated CloudEvents, binary and structured, valid and hostile, posted to every route of the
real server over loopback; every answer must follow the acknowledgement rule (issue 12):

- a 2xx only with the event's record written by the time the answer arrives (one `processed` line carrying the
  event's id), or as a `duplicate` of a (source, id) whose record was written
  earlier in the run: never of one that was only ever rejected or failed;
- anything else is a 4xx with a short JSON reason (no 5xx: this server has no transient faults, so a 5xx would
  be a bug), and an event built only from valid parts is never refused.

Attribute types and sizes, nesting, encodings, extension names and values, and data/data_base64 are all drawn.
The example budget keeps the run well under a minute on a loaded 2-core machine.
"""

from __future__ import annotations

import base64
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from notifications.models import LogRecord, Notification
from notifications_testkit import LiveServer, start_server, stop_server

pytestmark = pytest.mark.timeout(300)

ROUTES = {
    "notifications": "/events/notifications",
    "loggings": "/events/loggings",
}
REFUSALS = {400, 413, 415, 422, 431}
MAX_EXAMPLES = 400


@dataclass
class Run:
    """What the server has acknowledged so far: (source, id) pairs whose record was written."""

    server: LiveServer
    http: httpx.Client
    log_offset: int = 0
    recorded: set[tuple[str, str]] = field(default_factory=set)

    def new_log_lines(self) -> list[dict]:
        with self.server.log_path.open("rb") as log:
            log.seek(self.log_offset)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.log_offset += len(complete)
        return [orjson.loads(line) for line in complete.splitlines() if line.startswith(b"{")]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    server = start_server(tmp_path_factory.mktemp("properties"))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield Run(server, http)
    stop_server(server)


# --- strategies --------------------------------------------------------------------------------------------------

# Any Unicode scalar value except surrogates (which no UTF-8 encoder, ours or a producer's, can emit).
TEXT = st.characters(exclude_categories=["Cs"])
valid_strings = st.text(TEXT, min_size=1, max_size=40)
id_pool = st.sampled_from(["1", "partition:0/offset:7", "é 50%", '"quoted"'])
hostile_ids = st.one_of(
    st.just(""),
    st.text(TEXT, min_size=1000, max_size=70_000).map(lambda s: s[:70_000]),
)
extension_names = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=20).filter(
    lambda n: n not in {"id", "source", "type", "specversion", "time", "datacontenttype", "data", "data_base64"}
)
hostile_names = st.sampled_from(["Bad-Name", "ce_x", "ÄÖ", "x" * 300 + "_", "dataschema!", "a.b"])
valid_values = st.one_of(valid_strings, st.booleans(), st.integers(-(2**31), 2**31 - 1))
hostile_value_json = st.one_of(
    st.integers(2**31, 2**200).map(lambda n: str(n).encode()),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: orjson.dumps(f) + b"" if f != int(f) else b"1.5"),
    st.integers(1, 1000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 1000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.just(b"null"),
)


def notification_payload(draw: st.DrawFn) -> dict:
    payload = orjson.loads(Notification.example().model_dump_json())
    payload["metadata"] = draw(st.dictionaries(valid_strings, valid_strings, max_size=5))
    payload["title"] = draw(st.text(string.ascii_letters + " éü", min_size=1, max_size=50).filter(str.strip))
    return payload


def log_record_json(draw: st.DrawFn) -> bytes:
    """Raw JSON, so attribute values can be what orjson cannot write: 2**64 and up, NaN, Infinity."""
    record = orjson.loads(LogRecord.example().model_dump_json())
    record["message"] = draw(st.text(TEXT, max_size=200))
    record.pop("attributes")
    values = st.one_of(
        valid_values.map(orjson.dumps),
        st.integers(2**63, 2**300).map(lambda n: str(n).encode()),
        st.integers(-(2**300), -(2**63)).map(lambda n: str(n).encode()),
        st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"null", b"1.5"]),
    )
    attributes = draw(st.dictionaries(valid_strings, values, max_size=6))
    members = b",".join(orjson.dumps(name) + b":" + value for name, value in attributes.items())
    return orjson.dumps(record)[:-1] + b',"attributes":{' + members + b"}}"


@dataclass
class Request:
    route: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    source: str | None
    event_id: str | None
    """The (source, id) the server will decode, when the generator knows it exactly."""
    valid: bool


def percent_encoded(value: str) -> bytes:
    """The HTTP binding's header encoding: space, '"', '%' and everything outside printable ASCII."""
    return quote(value, safe="".join(c for c in string.printable[:94] if c not in '%"')).encode("ascii")


MUTATIONS = (
    "hostile_id", "missing_attribute", "bad_specversion", "bad_time", "hostile_extension_value",
    "hostile_extension_name", "garbage_data", "deep_data", "empty_data", "bad_data_base64", "not_json_content_type",
)  # fmt: skip


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """Half of the events are built from valid parts only; the other half carry one to three hostile parts."""
    route = draw(st.sampled_from(sorted(ROUTES)))
    structured = draw(st.booleans())
    mutations: set[str] = set()
    if draw(st.booleans()):
        mutations = draw(st.sets(st.sampled_from(MUTATIONS), min_size=1, max_size=3))
    valid = not mutations

    event_id = draw(st.one_of(id_pool, valid_strings))
    if "hostile_id" in mutations:
        event_id = draw(hostile_ids)
    source = draw(st.one_of(st.just("/apis/v1/namespaces/n/kafkasources/k#t"), valid_strings))
    attributes: dict[str, object] = {"specversion": "1.0", "id": event_id, "source": source, "type": "t"}
    if "missing_attribute" in mutations:
        attributes.pop(draw(st.sampled_from(["specversion", "id", "source", "type"])))
    if "bad_specversion" in mutations:
        attributes["specversion"] = draw(st.sampled_from(["0.3", "", "1.0 ", "1"]))
    attributes["time"] = draw(st.sampled_from(["2026-11-26T07:12:03.512Z", "2026-11-26T07:12:03+01:00"]))
    if "bad_time" in mutations:
        attributes["time"] = draw(st.sampled_from(["yesterday", "", "2026-13-01T00:00:00Z"]))
    attributes.update(draw(st.dictionaries(extension_names, valid_values, max_size=8)))
    raw_extensions: dict[str, bytes] = {}
    if "hostile_extension_value" in mutations:
        raw_extensions[draw(extension_names)] = draw(hostile_value_json)
    if "hostile_extension_name" in mutations:
        attributes[draw(hostile_names)] = "x"

    data = log_record_json(draw) if route == "loggings" else orjson.dumps(notification_payload(draw))
    if "garbage_data" in mutations:
        data = draw(st.binary(min_size=1, max_size=200))
    if "deep_data" in mutations:
        depth = draw(st.integers(200, 1100))
        data = b"[" * depth + b"]" * depth
    if "empty_data" in mutations:
        data = b""

    if structured:
        headers = [(b"content-type", b"application/cloudevents+json")]
        if "not_json_content_type" in mutations:
            attributes["datacontenttype"] = "text/plain"
        if "bad_data_base64" in mutations:
            raw_extensions["data_base64"] = draw(st.sampled_from([b'"%%%"', orjson.dumps("é3sifQ=="), b"12", b"[]"]))
        elif draw(st.booleans()) or not data:
            raw_extensions["data_base64"] = orjson.dumps(base64.b64encode(data).decode())
        else:
            try:
                is_json = orjson.loads(data) is not None
            except orjson.JSONDecodeError:
                is_json = False
            # Not JSON (garbage, or nested beyond the parser): sent as a JSON string, which the models refuse.
            raw_extensions["data"] = data if is_json else orjson.dumps(data.decode("latin-1"))
        body = orjson.dumps(attributes)[:-1]
        body += b"".join(b"," + orjson.dumps(name) + b":" + value for name, value in raw_extensions.items()) + b"}"
    else:
        content_type = draw(st.sampled_from([b"application/json", b"application/x+json"]))
        if "not_json_content_type" in mutations:
            content_type = b"text/plain"
        headers = [(b"content-type", content_type)]
        if "bad_data_base64" in mutations:  # binary mode has no data_base64: a body that is not base64 or JSON
            data = "é3sifQ==".encode()
        for name, value in attributes.items():
            if not all(c in string.ascii_lowercase + string.digits for c in name):
                # Only HTTP tokens can be header names at all; the rest of the hostile names go structured only.
                headers.append((b"ce-" + name.encode("ascii", "replace").replace(b"?", b"_")[:300], b"x"))
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            headers.append((b"ce-" + name.encode(), percent_encoded(text)))
        for name, value in raw_extensions.items():
            # In binary mode every attribute is a header string: a nested "value" is just odd text, not hostile.
            headers.append((b"ce-" + name.encode(), value))
        body = data
    return Request(ROUTES[route], headers, body, source, event_id, valid)


# --- the property ---------------------------------------------------------------------------------------------------


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
def test_every_answer_follows_the_acknowledgement_rule(run: Run, request: Request) -> None:
    response = run.http.post(request.route, headers=request.headers, content=request.body)
    lines = run.new_log_lines()
    event(f"{request.route} {response.status_code} {'valid' if request.valid else 'hostile'}")
    assert run.server.process.poll() is None, "server died"

    if response.status_code == 202:
        assert response.content == b""
        acknowledged = [line for line in lines if line.get("outcome") in ("processed", "duplicate")]
        assert len(acknowledged) == 1, lines
        [line] = acknowledged
        if request.event_id is not None and request.source is not None:
            assert (line["ce_id"], line["ce_source"]) == (request.event_id, request.source)
        pair = (line["ce_source"], line["ce_id"])
        if line["outcome"] == "duplicate":
            assert pair in run.recorded, "acknowledged as a duplicate of an event that was never recorded"
        else:
            run.recorded.add(pair)
    else:
        assert response.status_code in REFUSALS, (response.status_code, response.text, lines)
        assert not request.valid, f"a valid event was refused: {response.status_code} {response.text}"
        error = response.json()
        assert error.keys() == {"error", "detail"}
        assert len(response.content) < 1024
        assert not [line for line in lines if line.get("outcome") == "processed"]
