"""The session fixtures over the repository's test Kafka (gitops/events/kafka_local.py, also `gitops kafka`).

Import ``kafka_broker``/``kafka_bootstrap`` into a test module to get one real broker per session; a machine
without Java or the jars skips instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gitops.events.kafka_local import KafkaBroker, KafkaUnavailable, create_topics, jars_dir, start_broker

__all__ = ["KafkaBroker", "create_topics", "kafka_bootstrap", "kafka_broker"]


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    try:
        jars_dir()
    except KafkaUnavailable as exc:
        pytest.skip(f"no real Kafka broker for this run: {exc}")
    broker = start_broker()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.bootstrap_servers
