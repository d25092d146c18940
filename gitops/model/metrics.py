"""The metrics each component of the event path exports, and the metrics and labels a PromQL expression names.

Alerts (base/monitoring/alerts.yaml) and dashboard panels are only as good as the series they select: a misspelt
metric or a label the component never sets makes an alert that can never fire, and nothing says so. So every name
an expression uses is held to what the components export, from their 1.23 sources (cited per entry) and proved
against real scrapes in `make e2e` (gitops/e2e/alerts.py).

Prometheus form of the data plane's Micrometer names (micrometer-registry-prometheus-simpleclient 1.14.7: eventing-kafka-broker
1.23's data-plane/pom.xml asks for micrometer-bom 1.15.4, but the build resolves 1.14.7, its target/runtime.cp): dots become underscores, the base unit is appended
(`ms`: Micrometer's BaseUnits.MILLISECONDS, the unit Metrics.java gives every latency), a DistributionSummary with service-level objectives is a histogram (`_bucket` with `le`,
`_count`, `_sum`, plus a `_max` gauge), a Counter ends in `_total`; tag keys become labels with `.` → `_`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from gitops.core import manifests
from gitops.core.manifests import Obj

# The data plane's tags (data-plane/core/.../observability/metrics/Metrics.java Tags, knative-v1.23.0):
# RESPONSE_CODE, EVENT_TYPE, CONSUMER_NAME, and resourceTags' "kn.<kind lowercased>.name"/".namespace" for the
# resource kinds the contract references (Broker, KafkaSink, Trigger, KafkaSource).
_RESOURCE_LABELS = tuple(
    f"kn_{kind}_{part}" for kind in ("broker", "kafkasink", "trigger", "kafkasource") for part in ("name", "namespace")
)
_DISPATCH_LABELS = ("http_response_status_code", "cloudevents_type", "messaging_consumer_group_name", *_RESOURCE_LABELS)
_CONSUMER_LABELS = ("cloudevents_type", "messaging_consumer_group_name", *_RESOURCE_LABELS)


def _histogram(name: str, labels: tuple[str, ...]) -> dict[str, frozenset[str]]:
    return {
        f"{name}_bucket": frozenset((*labels, "le")),
        f"{name}_count": frozenset(labels),
        f"{name}_sum": frozenset(labels),
    }


# metric -> the labels it carries, per component.
EXPORTED: dict[str, dict[str, frozenset[str]]] = {
    "kafka data plane": {
        # Metrics.EVENT_DISPATCH_LATENCY "kn.eventing.dispatch.latency", BaseUnits.MILLISECONDS, SLO buckets (seen
        # in `make e2e`'s scrapes as kn_eventing_dispatch_latency_ms_bucket/_count/_sum/_max): recorded by the
        # dispatchers (RecordDispatcherImpl.recordDispatchLatency) and receivers (IngressRequestHandlerImpl).
        **_histogram("kn_eventing_dispatch_latency_ms", _DISPATCH_LABELS),
        "kn_eventing_dispatch_latency_ms_max": frozenset(_DISPATCH_LABELS),
        # Metrics.EVENT_PROCESSING_LATENCY "kn.eventing.process.latency" (RecordDispatcherImpl, getTags(record)).
        **_histogram("kn_eventing_process_latency_ms", _CONSUMER_LABELS),
        # Metrics.DISCARDED_EVENTS_COUNT "kn.eventing.kafka.discarded_events", SKIPPED_OFFSET_COUNT
        # "kn.eventing.kafka.skipped_offsets": Counters (RecordDispatcherImpl).
        "kn_eventing_kafka_discarded_events_total": frozenset(_CONSUMER_LABELS),
        "kn_eventing_kafka_skipped_offsets_total": frozenset(_CONSUMER_LABELS),
        # The Kafka clients' own metrics: Metrics.register(Consumer) binds Micrometer's KafkaClientMetrics to every
        # dispatcher consumer (dispatcher/.../main/ConsumerVerticleBuilder.java build(); off only with env
        # DISABLE_KAFKA_CLIENTS_METRICS=true). Micrometer (micrometer-core 1.14.7, the version on the data plane's
        # runtime classpath) names them in io/micrometer/core/instrument/binder/kafka/KafkaMetrics.java meterName():
        # "kafka." + the Kafka metric group without "-metrics" + "." + its name, "-" -> "."; the tags are the Kafka
        # metric's own (client-id; topic, partition per partition) plus kafka.version. Kafka 3.9.2's
        # FetchMetricsRegistry: records-lag per assigned partition (a Value: the high watermark minus the
        # consumer's position at its last fetch), records-lag-max per client. The data plane sets no client.id,
        # so Kafka names each consumer "consumer-<group.id>-<n>" (ConsumerConfig), and a Trigger's group is
        # config-kafka-features' triggers-consumergroup-template ("knative-trigger-<namespace>-<name>"): the
        # client_id names the Trigger. `make e2e` scrapes them (subscriber-slow).
        "kafka_consumer_fetch_manager_records_lag": frozenset({"client_id", "kafka_version", "topic", "partition"}),
        "kafka_consumer_fetch_manager_records_lag_max": frozenset({"client_id", "kafka_version"}),
    },
    "notifications subscriber": {
        # apps/notifications/src/notifications/metrics.py EventMetrics (prometheus_client: Counter -> _total).
        "notifications_events_total": frozenset({"route", "type", "outcome"}),
        "notifications_duplicate_events_total": frozenset({"route"}),
        **_histogram("notifications_event_handling_seconds", ("route", "outcome")),
    },
    "prometheus": {
        # Prometheus' own series per scrape target.
        "up": frozenset(),
    },
}
# Labels Prometheus adds to every series it scrapes through a ServiceMonitor or PodMonitor (prometheus-operator's
# generated relabelling: namespace, pod, container, service, endpoint, job; Prometheus: instance).
TARGET_LABELS = frozenset({"namespace", "pod", "container", "service", "endpoint", "job", "instance"})


# kube-state-metrics: the stores whose metrics the alerts may use, read from its own source (below).
KUBE_STATE_METRICS_STORES = ("deployment", "statefulset")
_KSM_NAME = re.compile(r'"(kube_[a-z]+_[a-z0-9_]+)"')
_KSM_DEFAULT_LABELS = re.compile(r"desc\w*LabelsDefaultLabels\s*=\s*\[\]string\{([^}]*)\}")


@functools.cache
def kube_state_metrics_exported() -> dict[str, frozenset[str]]:
    """kube-state-metrics' metric names per store, from its source at the pinned version (internal/store/<store>.go:
    every "kube_<store>_…" name its family generators declare) with the store's default labels (its
    desc<Kind>LabelsDefaultLabels, e.g. namespace and deployment). A generator's extra labels (a condition's
    `condition`, `status`) are not read: an expression using one is reported, the safe side."""
    from gitops.core.errors import UserError
    from gitops.core.paths import kube_state_metrics_source_dir

    root = kube_state_metrics_source_dir() / "internal" / "store"
    out: dict[str, frozenset[str]] = {}
    for store in KUBE_STATE_METRICS_STORES:
        path = root / f"{store}.go"
        if not path.is_file():
            raise UserError(
                f"kube-state-metrics' source is not in the Go module cache ({path})",
                fix="run `make setup` (it builds kube-state-metrics at the pinned version)",
            )
        text = path.read_text()
        labels = _KSM_DEFAULT_LABELS.search(text)
        defaults = frozenset(re.findall(r'"([a-z_]+)"', labels.group(1))) if labels else frozenset()
        for name in _KSM_NAME.findall(text):
            if name.startswith(f"kube_{store}_"):
                out[name] = defaults
    return out


def exported() -> dict[str, frozenset[str]]:
    static = {name: labels for metrics in EXPORTED.values() for name, labels in metrics.items()}
    return {**static, **kube_state_metrics_exported()}


# PromQL words that are not metric names (functions, aggregations, operators, modifiers).
_KEYWORDS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "deriv",
        "absent",
        "absent_over_time",
        "histogram_quantile",
        "clamp_min",
        "clamp_max",
        "abs",
        "ceil",
        "floor",
        "round",
        "sort",
        "sort_desc",
        "label_replace",
        "label_join",
        "vector",
        "scalar",
        "time",
        "timestamp",
        "changes",
        "resets",
        "predict_linear",
        "sum_over_time",
        "avg_over_time",
        "max_over_time",
        "min_over_time",
        "count_over_time",
        "last_over_time",
        "present_over_time",
        "exp",
        "ln",
        "log2",
        "log10",
        "sqrt",
        "inf",
        "nan",
    ]
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_IDENT = re.compile(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![A-Za-z0-9_:])(?!\s*\()")
_TEMPLATE_LABEL = re.compile(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)")
# label_replace(v, "dst", "replacement", "src", "regex"): its last four arguments (the first may nest anything).
_LABEL_REPLACE_TAIL = re.compile(
    r',\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*,\s*"(?:[^"\\]|\\.)*"\s*,\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*,'
    r'\s*"(?:[^"\\]|\\.)*"\s*\)'
)


@dataclass(frozen=True)
class Names:
    metrics: frozenset[str]
    labels: frozenset[str]
    created: frozenset[str] = frozenset()  # labels the expression makes itself (label_replace's destination)


def names_in(expr: str) -> Names:
    """The metric names and label names a PromQL expression uses (selectors, matchers, by/without/on clauses,
    label_replace's source label), and the labels it creates (label_replace's destination)."""
    created = {m.group(1) for m in _LABEL_REPLACE_TAIL.finditer(expr)} if "label_replace" in expr else set()
    sources = {m.group(2) for m in _LABEL_REPLACE_TAIL.finditer(expr)} if "label_replace" in expr else set()
    text = _LABEL_REPLACE_TAIL.sub(")", expr) if created else expr
    text = _STRING.sub('""', text)
    text = _RANGE.sub(" ", text)
    labels: set[str] = set(sources)
    metrics: set[str] = set()
    for match in _GROUPING.finditer(text):
        labels |= {part.strip() for part in match.group(1).split(",") if part.strip()}
    text = _GROUPING.sub(" ", text)
    for match in _SELECTOR.finditer(text):
        if match.group(1) and match.group(1) not in _KEYWORDS:
            metrics.add(match.group(1))
        labels |= {m.group(1) for m in _MATCHER_LABEL.finditer(match.group(2))} - {"__name__"}
    text = _SELECTOR.sub(" ", text)
    metrics |= {m.group(1) for m in _IDENT.finditer(text) if m.group(1) not in _KEYWORDS}
    return Names(frozenset(metrics), frozenset(labels), frozenset(created))


def unknown_names(expr: str, extra_labels: frozenset[str] = frozenset()) -> list[str]:
    """What `expr` (and `extra_labels`, e.g. an alert's `$labels.x`) names that no component exports: one line each."""
    known = exported()
    names = names_in(expr)
    problems = [f"metric {m!r} is exported by nothing here" for m in sorted(names.metrics - set(known))]
    carried = set(TARGET_LABELS | names.created).union(*(known.get(m, frozenset()) for m in names.metrics))
    for label in sorted((names.labels | extra_labels) - carried):
        whose = ", ".join(sorted(m for m in names.metrics if m in known)) or "its metrics"
        problems.append(f"label {label!r} is carried by none of {whose}")
    return problems


def template_labels(annotations: dict) -> frozenset[str]:
    return frozenset(m.group(1) for v in annotations.values() for m in _TEMPLATE_LABEL.finditer(str(v)))


@dataclass(frozen=True)
class Alert:
    rule: Obj  # the PrometheusRule
    group: str
    index: int
    spec: dict

    @property
    def name(self) -> str:
        return str(self.spec.get("alert"))


def alerts(objects: list[Obj]) -> Iterator[Alert]:
    """Every alerting rule of every PrometheusRule in `objects`."""
    for rule in manifests.of_kind(objects, "monitoring.coreos.com", "PrometheusRule"):
        for group in (rule.get("spec") or {}).get("groups") or []:
            for index, spec in enumerate(group.get("rules") or []):
                if isinstance(spec, dict) and "alert" in spec:
                    yield Alert(rule, str(group.get("name")), index, spec)


_THRESHOLD = re.compile(r">\s*([0-9.]+)\s*$")
_DURATION = re.compile(r"^([0-9]+)([smh])$")


def threshold_and_for(objects: list[Obj], name: str) -> tuple[float, float]:
    """The `> N` an alert's expression ends with and its `for:` in seconds: what an e2e scenario must exceed, for
    how long, to prove the alert of the render (not a copy of its numbers) fires."""
    for alert in alerts(objects):
        if alert.name == name:
            threshold = _THRESHOLD.search(str(alert.spec.get("expr", "")).strip())
            duration = _DURATION.match(str(alert.spec.get("for", "0s")))
            if threshold is None or duration is None:
                break
            value, unit = duration.groups()
            return float(threshold.group(1)), float(value) * {"s": 1, "m": 60, "h": 3600}[unit]
    raise ValueError(f"the render has no alert {name} ending in `> N` with a `for:` in s, m or h")


ALERTS_FILE = "base/monitoring/alerts.yaml"
TABLE_BEGIN = (
    "<!-- alert-table: generated from base/monitoring/alerts.yaml by `python -m gitops.model.metrics --write` -->"
)
TABLE_END = "<!-- /alert-table -->"
OPERATIONS = "docs/operations.md"


def alert_table(root) -> str:
    """The alert table of docs/operations.md, from base/monitoring/alerts.yaml: one row per alert."""
    from pathlib import Path

    text = (Path(root) / ALERTS_FILE).read_text()
    rows = [
        "| alert | group | fires when | for | runbook |",
        "|---|---|---|---|---|",
    ]
    for alert in alerts(manifests.load_stream(text)):
        summary = " ".join(str((alert.spec.get("annotations") or {}).get("summary", "")).split())
        summary = re.sub(r"\{\{[^}]*\}\}", "…", summary).replace("|", "\\|")
        anchor = str((alert.spec.get("annotations") or {}).get("runbook_url", "")).partition("#")[2]
        rows.append(
            f"| `{alert.name}` | {alert.group} | {summary} | {alert.spec.get('for', '0s')} | [runbook](#{anchor}) |"
        )
    return "\n".join([TABLE_BEGIN, *rows, TABLE_END])


def operations_with_table(root) -> str:
    """docs/operations.md with its alert table replaced by the one generated from the rules."""
    from pathlib import Path

    page = (Path(root) / OPERATIONS).read_text()
    start, end = page.index(TABLE_BEGIN), page.index(TABLE_END) + len(TABLE_END)
    return page[:start] + alert_table(root) + page[end:]


if __name__ == "__main__":  # python -m gitops.model.metrics --write
    import sys
    from pathlib import Path

    from gitops.core.paths import REPO_ROOT

    if sys.argv[1:] == ["--write"]:
        (Path(REPO_ROOT) / OPERATIONS).write_text(operations_with_table(REPO_ROOT))
    else:
        print(alert_table(REPO_ROOT))
