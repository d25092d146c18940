"""Failures that decide the HTTP status the Kafka dispatcher sees, and therefore whether it retries.

Retried by the dispatcher: 5xx, 404, 408, 409, 429 (eventing-kafka-broker `WebClientCloudEventSender`,
`isRetryableStatusCode`). Every other status >= 300 goes straight to the dead-letter sink.
"""

from __future__ import annotations


class MalformedEvent(Exception):
    """The event can never be processed; answered with a non-retryable 4xx."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        assert status in (400, 413, 415, 422), status
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail[:300]


class TransientFailure(Exception):
    """Processing failed for a reason that may go away; answered 503 so Knative redelivers."""
