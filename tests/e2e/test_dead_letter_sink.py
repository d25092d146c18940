"""dead-letter-sink-refuses' runbook step: a KafkaSink receiver whose Kafka producer thread died while the topic
refused writes is restarted before anything else is dead-lettered; one whose producer lived is left alone."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gitops.e2e import scenarios as sc

DIED = (
    "23:01:08.581 ERROR o.a.kafka.common.utils.KafkaThread - Uncaught exception in thread "
    "'kafka-producer-network-thread | producer-1':\njava.lang.StackOverflowError\n"
)


def _stack(calls: list[str]) -> Any:
    supervisor = SimpleNamespace(stop=lambda role: calls.append(f"stop {role}"),
                                 restart=lambda role: calls.append(f"restart {role}"))  # fmt: skip
    return SimpleNamespace(supervisor=supervisor, wait_receivers_ready=lambda: calls.append("ready"))


@pytest.mark.parametrize(("before", "after", "restarts"), [("", DIED, True), (DIED, "WARN MESSAGE_TOO_LARGE\n", False)])
def test_restart_only_when_the_producer_died_during_the_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: str, after: str, restarts: bool
) -> None:
    log = tmp_path / "sink-receiver.log"
    log.write_text(before)
    start = log.stat().st_size
    with log.open("a") as out:
        out.write(after)
    calls: list[str] = []
    note = sc._restart_sink_if_its_producer_died(_stack(calls), log, start)
    if restarts:
        assert calls == ["stop sink-receiver", "restart sink-receiver", "ready"] and "restarted" in note
    else:
        assert calls == [] and note == ""
