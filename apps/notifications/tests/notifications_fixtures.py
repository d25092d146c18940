"""Fixtures for the loopback tests, loaded with `pytest_plugins = ["notifications_fixtures"]`.

No conftest.py: the repo's tests import `conftest` by name, and a second one would shadow it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from notifications_testkit import LiveServer, start_server, stop_server


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("live"), env={"MAX_BODY_BYTES": "65536"})
    yield server
    stop_server(server)


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=5) as http:
        yield http
