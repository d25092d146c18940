"""CloudEvent decoding from HTTP (notifications.cloudevent): binary and structured mode, and what it refuses."""

from __future__ import annotations

import orjson
import pytest
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent as SdkCloudEvent
from notifications import cloudevent
from notifications.errors import MalformedEvent
from notifications_testkit import BASE, raw


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
