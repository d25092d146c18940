"""`python -m notifications.send_event` against the production server over loopback: the KafkaSource-shaped event
it posts is accepted and recorded as such."""

from __future__ import annotations

import pytest
from notifications.send_event import main as send_event_main
from notifications_testkit import LiveServer

pytest_plugins = ["notifications_fixtures"]
pytestmark = pytest.mark.timeout(60)


def test_send_event_cli_posts_a_kafka_source_event(live_server: LiveServer, capsys) -> None:
    assert send_event_main(["--url", live_server.url, "--topic", "loggings", "--offset", "987654321"]) == 0
    assert "-> 202" in capsys.readouterr().out
    [line] = live_server.wait_for_log(lambda e: e.get("ce_id") == "partition:0/offset:987654321")
    assert line["route"] == "loggings"
    assert line["kafka_headers"].keys() == {"xrequestid"}
    assert send_event_main(["--url", live_server.url, "--mode", "structured"]) == 0
