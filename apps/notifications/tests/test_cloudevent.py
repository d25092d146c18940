"""Pure units: CloudEvent decoding, the dedup window, payload models, settings and log formatting."""

from __future__ import annotations

import base64
import logging
import os
import uuid

import orjson
import pytest
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent as SdkCloudEvent
from notifications import cloudevent
from notifications.dedup import Claim, RecentEvents, event_key
from notifications.errors import MalformedEvent
from notifications.event_handling import decode_error_data, decode_payload
from notifications.json_logging import JsonLinesHandler, StructuredLogger, configure_logging
from notifications.kafka_context import kafka_fields
from notifications.models import Channel, LogLevel, LogRecord, Notification, Priority
from notifications.settings import Settings
from pydantic import ValidationError


def raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode("utf-8")) for k, v in headers.items()]


BASE = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}


class TestFromHttp:
    def test_sdk_encoded_event_round_trips_with_percent_encoded_extensions(self) -> None:
        event = SdkCloudEvent(
            attributes={"type": "t", "source": "/s", "id": "a b", "kafkaheadernote": 'café "50%"'},
            data={"x": 1},
        )
        message = to_binary_event(event)
        assert "%" in message.headers["ce-kafkaheadernote"]  # the SDK really percent-encoded it

        decoded = cloudevent.from_http(raw(message.headers), message.body)

        assert decoded.id == "a b"
        assert decoded.attributes["kafkaheadernote"] == 'café "50%"'
        assert orjson.loads(decoded.data) == {"x": 1}

    def test_missing_content_type_counts_as_json(self) -> None:
        # KafkaSource sets datacontenttype only if the record had a content-type header.
        event = cloudevent.from_http(raw(BASE), b"{}")
        assert "datacontenttype" not in event.attributes

    @pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                              "application/vnd.example+json", "text/json"])  # fmt: skip
    def test_json_content_types_are_accepted(self, content_type: str) -> None:
        event = cloudevent.from_http(raw(BASE | {"content-type": content_type}), b"{}")
        assert event.attributes["datacontenttype"] == content_type

    @pytest.mark.parametrize(
        ("headers", "status", "reason"),
        [
            (BASE | {"ce-id": ""}, 400, "missing_attribute"),
            (BASE | {"ce-Bad_Name": "x"}, 400, "bad_attribute"),
            (BASE | {"ce-note": "%C3%28"}, 400, "bad_attribute"),
            (BASE | {"content-type": "application/xml"}, 415, "unsupported_media_type"),
            (BASE | {"content-type": "application/cloudevents+xml"}, 415, "unsupported_media_type"),
        ],
    )
    def test_rejections(self, headers: dict[str, str], status: int, reason: str) -> None:
        with pytest.raises(MalformedEvent) as caught:
            cloudevent.from_http(raw(headers), b"{}")
        assert (caught.value.status, caught.value.reason) == (status, reason)

    def test_structured_rejects_both_data_forms_and_non_string_datacontenttype(self) -> None:
        attrs = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
        for document in (attrs | {"data": {}, "data_base64": "e30="}, attrs | {"datacontenttype": 5}):
            with pytest.raises(MalformedEvent) as caught:
                cloudevent.from_http(raw({"content-type": "application/cloudevents+json"}), orjson.dumps(document))
            assert caught.value.status == 400

    def test_dead_letter_mode_accepts_any_data(self) -> None:
        event = cloudevent.from_http(raw(BASE | {"content-type": "image/png"}), b"\x89PNG", require_json_data=False)
        assert event.data == b"\x89PNG"


class TestDecodePayload:
    def test_structured_json_string_data_is_parsed(self) -> None:
        document = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t",
                    "data": Notification.example().model_dump_json()}  # fmt: skip
        event = cloudevent.from_http(raw({"content-type": "application/cloudevents+json"}), orjson.dumps(document))
        assert decode_payload(event, Notification) == Notification.example()

    def test_validation_detail_names_the_field(self) -> None:
        payload = orjson.loads(Notification.example().model_dump_json()) | {"priority": "urgent"}
        event = cloudevent.from_http(raw(BASE), orjson.dumps(payload))
        with pytest.raises(MalformedEvent) as caught:
            decode_payload(event, Notification)
        assert caught.value.status == 422
        assert caught.value.detail.startswith("priority:")


class TestRecentEvents:
    def test_duplicate_within_window_then_forgotten_after_it(self) -> None:
        now = [0.0]
        recent = RecentEvents(window_seconds=10, max_entries=100, clock=lambda: now[0])
        key = event_key("/s", "1")
        assert recent.claim(key) is Claim.NEW
        recent.complete(key)
        now[0] = 9.9
        assert recent.claim(key) is Claim.DUPLICATE
        now[0] = 10.1
        assert recent.claim(key) is Claim.NEW
        assert len(recent) == 0

    def test_memory_is_bounded_by_evicting_the_oldest(self) -> None:
        recent = RecentEvents(window_seconds=3600, max_entries=3)
        for i in range(5):
            key = event_key("/s", str(i))
            assert recent.claim(key) is Claim.NEW
            recent.complete(key)
        assert len(recent) == 3
        assert recent.claim(event_key("/s", "0")) is Claim.NEW
        assert recent.claim(event_key("/s", "4")) is Claim.DUPLICATE

    def test_in_flight_and_released_claims(self) -> None:
        recent = RecentEvents(window_seconds=60, max_entries=10)
        key = event_key("/s", "1")
        assert recent.claim(key) is Claim.NEW
        assert recent.claim(key) is Claim.IN_FLIGHT
        recent.release(key)
        assert recent.claim(key) is Claim.NEW

    def test_keys_cannot_collide_across_the_source_id_boundary(self) -> None:
        assert event_key("/a", "b/c") != event_key("/a/b", "/c")
        assert event_key("ab", "c") != event_key("a", "bc")


class TestModels:
    def test_examples_are_valid_and_round_trip_as_json(self) -> None:
        for model in (Notification, LogRecord):
            example = model.example()
            assert model.model_validate_json(example.model_dump_json()) == example

    def test_notification_defaults_and_unknown_fields(self) -> None:
        payload = orjson.loads(Notification.example().model_dump_json())
        del payload["priority"], payload["metadata"]
        payload["added_later"] = True
        notification = Notification.model_validate(payload)
        assert notification.priority is Priority.NORMAL
        assert notification.metadata == {}
        assert notification.channel is Channel.EMAIL

    @pytest.mark.parametrize(("given", "expected"), [("warn", LogLevel.WARNING), ("Fatal", LogLevel.CRITICAL),
                                                      ("trace", LogLevel.DEBUG), ("error", LogLevel.ERROR)])  # fmt: skip
    def test_log_level_spellings(self, given: str, expected: LogLevel) -> None:
        payload = orjson.loads(LogRecord.example().model_dump_json()) | {"level": given}
        assert LogRecord.model_validate(payload).level is expected

    @pytest.mark.parametrize(
        "change",
        [{"notification_id": "not-a-uuid"}, {"recipient": " "}, {"title": "x" * 300}, {"created_at": "soon"}],
    )
    def test_invalid_notifications(self, change: dict) -> None:
        payload = orjson.loads(Notification.example().model_dump_json()) | change
        with pytest.raises(ValidationError):
            Notification.model_validate(payload)

    def test_log_record_trace_ids_are_checked(self) -> None:
        payload = orjson.loads(LogRecord.example().model_dump_json()) | {"trace_id": "XYZ"}
        with pytest.raises(ValidationError):
            LogRecord.model_validate(payload)


def test_kafka_fields_from_kafka_source_id_when_extensions_are_absent() -> None:
    fields = kafka_fields({"type": "dev.knative.kafka.event", "id": "partition:2/offset:9", "partitionkey": "k",
                           "kafkaheaderxtraceid": "abc"})  # fmt: skip
    assert fields == {"kafka_partition": 2, "kafka_offset": 9, "kafka_key": "k", "kafka_headers": {"xtraceid": "abc"}}
    assert kafka_fields({"type": "com.example", "id": "partition:2/offset:9"}) == {}


def test_decode_error_data() -> None:
    assert decode_error_data(base64.b64encode(b'{"a":1}').decode()) == {"a": 1}
    assert decode_error_data(base64.b64encode(b"plain text").decode()) == "plain text"
    assert decode_error_data("not base64!") == "not base64!"


def test_settings_from_env() -> None:
    settings = Settings.from_env({"PORT": "9090", "MAX_BODY_BYTES": "1024", "LOG_LEVEL": "debug"})
    assert (settings.port, settings.max_body_bytes, settings.log_level) == (9090, 1024, "DEBUG")
    assert Settings.from_env({}).port == 8080


_LOGGING_FLAGS = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")


def test_direct_log_lines_match_the_stdlib_path(tmp_path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    root = logging.getLogger()
    access = logging.getLogger("uvicorn.access")
    saved = (root.handlers[:], root.level, access.disabled, access.propagate)
    saved_flags = {name: getattr(logging, name) for name in _LOGGING_FLAGS}
    try:
        configure_logging("INFO", fd)
        events = StructuredLogger(f"notifications.test.{uuid.uuid4().hex}")
        events.log(logging.INFO, "direct", {"ce_id": "1"})
        events.log(logging.DEBUG, "filtered", {"ce_id": "2"})
        extra = JsonLinesHandler(fd)
        events.logger.addHandler(extra)  # any other handler forces the stdlib path
        events.log(logging.WARNING, "stdlib", {"ce_id": "3"})
        events.logger.removeHandler(extra)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        access.disabled, access.propagate = saved[2], saved[3]
        for name, value in saved_flags.items():
            setattr(logging, name, value)
        os.close(fd)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [(line["message"], line["level"], line["ce_id"]) for line in lines] == [
        ("direct", "INFO", "1"),
        ("stdlib", "WARNING", "3"),  # written by the extra handler
        ("stdlib", "WARNING", "3"),  # propagated to the root handler
    ]
    assert all(line.keys() >= {"time", "level", "logger", "message"} for line in lines)
