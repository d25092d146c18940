"""Prometheus metrics, on a registry per app so several apps (tests) never share counters."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["PROMETHEUS_CONTENT_TYPE", "EventMetrics"]

# `*_created` series double the scrape size and nothing here alerts on them.
disable_created_metrics()

# Handling is sub-millisecond when healthy; the upper buckets catch a slow sink.
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
OTHER_TYPE = "other"
UNKNOWN_TYPE = "unknown"


class EventMetrics:
    def __init__(self, max_type_labels: int = 50) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._events = Counter(
            "notifications_events",
            "CloudEvents handled, by route, CloudEvent type and outcome",
            ("route", "type", "outcome"),
            registry=self.registry,
        )
        self._duplicates = Counter(
            "notifications_duplicate_events",
            "Redeliveries of an already processed event (same source, id and content), acknowledged without processing",
            ("route",),
            registry=self.registry,
        )
        self._collisions = Counter(
            "notifications_dedup_collisions",
            "Events whose (source, id) matched one processed within the dedup window but whose content differed: "
            "processed, never answered duplicate; a producer reusing ids or forging another's",
            ("route",),
            registry=self.registry,
        )
        self._latency = Histogram(
            "notifications_event_handling_seconds",
            "Time from request start to response, per route and outcome",
            ("route", "outcome"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._max_type_labels = max_type_labels
        self._known_types: set[str] = set()
        self._children: dict[tuple[str, ...], tuple[Counter, Histogram]] = {}

    def _type_label(self, event_type: str | None) -> str:
        """CloudEvent types come from producers: cap the distinct label values so a bad producer cannot
        blow up the series count."""
        if not event_type:
            return UNKNOWN_TYPE
        if event_type in self._known_types:
            return event_type
        if len(self._known_types) < self._max_type_labels:
            self._known_types.add(event_type)
            return event_type
        return OTHER_TYPE

    def observe(self, route: str, event_type: str | None, outcome: str, seconds: float) -> None:
        key = (route, self._type_label(event_type), outcome)
        children = self._children.get(key)
        if children is None:
            children = (self._events.labels(*key), self._latency.labels(route, outcome))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if outcome == "duplicate":
            self._duplicates.labels(route).inc()

    def collision(self, route: str) -> None:
        """Counted apart from `notifications_events` (the event is counted there once, by how it ends)."""
        self._collisions.labels(route).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
