"""The topics' JSON payloads (notifications.models): examples, defaults, spellings and what is invalid."""

from __future__ import annotations

import orjson
import pytest
from notifications.models import Channel, LogLevel, LogRecord, Notification, Priority
from pydantic import ValidationError


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
