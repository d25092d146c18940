"""The test CloudEvent payloads: attributes the Triggers match, fields set and validated by the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from gitops.events import payloads

REPO = Path(__file__).resolve().parents[2]


def test_default_ce_attributes_match_the_trigger_filters() -> None:
    """The KafkaSource forwards a real CloudEvent unchanged, so only these attributes reach the subscriber."""
    yaml = YAML(typ="safe")
    triggers = [d for d in yaml.load_all((REPO / "base/eventing/triggers.yaml").read_text()) if d]
    by_path = {t["spec"]["subscriber"]["uri"]: t["spec"]["filter"]["attributes"] for t in triggers}
    for topic in payloads.topic_names():
        record = payloads.encode(topic, b"{}", "k", payloads.CeMode.BINARY)
        assert record.ce is not None
        attributes = by_path[f"/events/{topic}"]
        assert record.ce["type"] == attributes["type"]
        assert record.ce["source"] == attributes["source"]


def test_set_overrides_fields_and_is_validated() -> None:
    fixed_id = "0f8fad5b-d9cb-469f-a165-70867728950f"
    payload = json.loads(
        payloads.build_payload(
            "notifications",
            None,
            ("channel=sms", "priority=high", "metadata.ticket=T-7", f"notification_id={fixed_id}"),
        )
    )
    assert payload["channel"] == "sms"
    assert payload["priority"] == "high"
    assert payload["metadata"] == {"order_id": "1042", "ticket": "T-7"}
    assert payload["notification_id"] == fixed_id  # an explicit value is not replaced by a fresh one

    log = json.loads(payloads.build_payload("loggings", None, ("level=warn", 'attributes:={"attempt": 3}')))
    assert log["level"] == "WARNING"  # normalised by the model, so the payload is what the subscriber parses
    assert log["attributes"] == {"attempt": 3}

    with pytest.raises(payloads.PayloadError, match="does not match Notification"):
        payloads.build_payload("notifications", None, ("channel=pigeon",))
    with pytest.raises(payloads.PayloadError, match="FIELD=TEXT or FIELD:=JSON"):
        payloads.build_payload("notifications", None, ("no-equals-sign",))
    with pytest.raises(payloads.PayloadError, match="attributes:="):
        payloads.build_payload("loggings", None, ("attributes:={not json",))
