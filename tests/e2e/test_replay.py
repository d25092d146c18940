"""`gitops replay`'s selection, its reading of Knative's error extensions, and the render's dead-letter topic."""

import base64
import copy

import pytest

from gitops.core.errors import UserError
from gitops.core.render import RenderResult
from gitops.e2e.replay import DeadLetter, Selection, dead_letter_topic, decode_error_data


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
