"""An app factory for `python -m notifications.serve --factory notifications_flaky_app:create_app` in tests.

Its notification sink misbehaves on purpose, keyed by the Kafka record key of the event:
`fail-once-*` raises TransientFailure on the first attempt, `slow-*` takes a second, `crash` raises a bug.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from notifications import app
from notifications.cloudevent import CloudEvent
from notifications.errors import TransientFailure
from notifications.models import Notification
from notifications.settings import Settings

_failed_once: set[str] = set()


async def misbehaving_sink(_notification: Notification, event: CloudEvent) -> None:
    key = str(event.attributes.get("key", ""))
    if key.startswith("fail-once-") and event.id not in _failed_once:
        _failed_once.add(event.id)
        raise TransientFailure("mail relay unavailable")
    if key.startswith("slow-"):
        await asyncio.sleep(1.0)
    if key == "crash":
        raise RuntimeError("bug in the sink")


def create_app(settings: Settings) -> FastAPI:
    return app.create_app(settings, notification_sink=misbehaving_sink)
