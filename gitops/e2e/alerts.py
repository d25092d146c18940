"""The shipped alerts, proved on what the real components exported during each `make e2e` scenario.

Every process of the stack serves the metrics the render's `config-observability` asks for (its
`metrics-protocol`; each JVM on its own loopback port through `metrics-endpoint`, since they share one host here).
A scraper polls the receiver's, both dispatchers' and the subscriber's `/metrics` every SCRAPE_S seconds through
each scenario, adding the target labels prometheus-operator's relabelling would (namespace, container, pod) and
Prometheus' `up`. At the scenario's end the captured series become a promtool unit test (Prometheus' own rule
engine, gitops.model.prometheus_rules) over the render's PrometheusRule: ten minutes of the state before the
scenario (so a counter that existed then is not "new"), the scenario's scrapes one per SCRAPE_S, then the last
values held while `for:` durations run out. An alert fired if promtool finds it firing at any evaluation point: every
30 s of the scenario, and 1, 3 and 6 minutes after it.

The timeline is the wall clock on a SCRAPE_S grid (Scraper.on_grid): each step holds the newest scrape taken by
then, so a slow round of scrapes repeats the previous values instead of stretching the scenario.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gitops.core import manifests
from gitops.core.manifests import Obj
from gitops.model import metrics as metric_names
from gitops.model import prometheus_rules

SCRAPE_S = 2
HISTORY_S = 600  # the rules' longest window ([10m]): the state before the scenario, held
EVAL_AFTER_S = (60, 180, 360)  # after the scenario's last scrape: past every `for:` of the alerts judged here
EVAL_DURING_S = 30  # and every 30 s of the scenario itself
# What each scenario must show (issue 29): the alerts that must fire, and those that must stay silent.
EXPECTED_FIRING = {
    "subscriber-down": {"KnativeKafkaEventsDeadLettered"},
    "subscriber-401": {"KnativeKafkaEventsDeadLettered"},
    "subscriber-403": {"KnativeKafkaEventsDeadLettered"},
    "invalid-payload": {"KnativeKafkaEventsDeadLettered"},
    "subscriber-slow": {"KnativeKafkaConsumerGroupLag"},
    "subscriber-503": {"KnativeKafkaTriggerDeliveryFailing", "KnativeKafkaEventsDeadLettered"},
    "dead-letter-sink-refuses": {"KnativeKafkaDeadLetterSinkFailing"},
    "replica-lost": {"KnativeEventingBelowExpectedReplicas", "KnativeKafkaDataPlaneDown"},
}
# subscriber-503: the 1.23 dispatcher records one kn_eventing_dispatch_latency sample per delivery, after
# WebClientCloudEventSender's retries (RecordDispatcherImpl onSubscriberSuccess / onSubscriberFailure ->
# recordDispatchLatency), so 503s that recover within the retry budget leave only a 202 and fire nothing; the
# scenario's events on its last topic get 503 on every attempt, are dead-lettered with code 503, and those are the
# failed deliveries KnativeKafkaTriggerDeliveryFailing pages on. (The Vert.x HTTP client metrics, which would count
# each attempt, are off in the release, METRICS_HTTP_CLIENT_ENABLED unset in data-plane/config/broker/
# 500-dispatcher.yaml, and carry no Trigger: docs/operations.md says why no alert is built on them.)
EXPECTED_SILENT = {
    "routing": {
        "KnativeKafkaEventsDeadLettered",
        "KnativeKafkaDeadLetterSinkFailing",
        "KnativeKafkaConsumerGroupLag",
        "KnativeEventingBelowExpectedReplicas",
    },
    "subscriber-slow": {"KnativeKafkaEventsDeadLettered", "KnativeKafkaDeadLetterSinkFailing"},
}
# The data plane's observability files (data-plane/core/.../observability/ObservabilityConfig.java reads these
# keys from CONFIG_OBSERVABILITY_PATH); the values come from the render's config-observability.
OBSERVABILITY_KEYS = ("metrics-protocol", "metrics-export-interval", "tracing-protocol", "tracing-sampling-rate")
# Each process as prometheus-operator would label its target: (namespace, container, pod).
TARGET_LABELS = {
    "receiver": ("knative-eventing", "kafka-broker-receiver", "kafka-broker-receiver-e2e"),
    "sink-receiver": ("knative-eventing", "kafka-sink-receiver", "kafka-sink-receiver-e2e"),
    "broker-dispatcher": ("knative-eventing", "kafka-broker-dispatcher", "kafka-broker-dispatcher-0"),
    "source-dispatcher": ("knative-eventing", "kafka-source-dispatcher", "kafka-source-dispatcher-0"),
    "subscriber": ("notifications", "notifications", "notifications-e2e"),
    "kube-state-metrics": ("monitoring", "kube-state-metrics", "kube-state-metrics-e2e"),
}
# Targets whose own labels win over the target's (prometheus-operator's honorLabels, which kube-prometheus' ServiceMonitor
# for kube-state-metrics sets): its series' `namespace` is the object's, not kube-state-metrics' own.
HONOR_LABELS = frozenset({"kube-state-metrics"})

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def observability_config(objects: list[Obj]) -> dict[str, str]:
    """The render's knative-eventing config-observability keys the data plane reads (its `_example` aside)."""
    config = manifests.find(objects, "", "ConfigMap", "knative-eventing", "config-observability") or {}
    data = config.get("data") or {}
    return {k: str(v) for k, v in data.items() if k in OBSERVABILITY_KEYS}


def write_observability(directory: Path, objects: list[Obj], metrics_port: int, host: str = "127.0.0.1") -> None:
    """The files a data plane pod finds at /etc/observability, as the render configures them, but listening on
    `metrics_port` of `host`, a loopback address (MetricsConfig.getMetricsPort reads the port of `metrics-endpoint`)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = observability_config(objects)
    if config.get("metrics-protocol") == "prometheus":
        config["metrics-endpoint"] = f"http://{host}:{metrics_port}/metrics"
    for key, value in config.items():
        (directory / key).write_text(value)


@dataclass
class Scraper:
    """Polls every target's /metrics; keeps the series the rules use, one snapshot per round."""

    targets: dict[str, str]  # process name -> metrics URL
    wanted: frozenset[str]
    keep: Path | None = None  # where the last text of each target is written (`make e2e --keep` reads it)
    # kube-state-metrics' series are kept only for these workloads (those with processes here; LiveStack.workloads_run)
    workloads: frozenset[str] = frozenset()
    snapshots: list[dict[SeriesKey, float]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # when each snapshot was taken (monotonic seconds)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="e2e-scraper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            snapshot = self.scrape_once()
            with self._lock:
                self.snapshots.append(snapshot)
                self.times.append(time.monotonic())
            self._stop.wait(max(0.0, SCRAPE_S - (time.monotonic() - started)))

    def scrape_once(self) -> dict[SeriesKey, float]:
        snapshot: dict[SeriesKey, float] = {}
        for process, url in self.targets.items():
            namespace, container, pod = TARGET_LABELS[process]
            target = {"namespace": namespace, "container": container, "pod": pod}
            try:
                with urllib.request.urlopen(url, timeout=1.5) as response:
                    text = response.read().decode("utf-8", errors="replace")
                up = 1.0
            except OSError:
                text, up = "", 0.0
            snapshot[("up", tuple(sorted(target.items())))] = up
            if self.keep is not None and text:
                (self.keep / f"{process}.last.prom").write_text(text)
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name in self.wanted:
                        if process in HONOR_LABELS:
                            workload = sample.labels.get("deployment") or sample.labels.get("statefulset")
                            if workload not in self.workloads:
                                continue
                            labels = {**target, **sample.labels}
                        else:
                            labels = {**sample.labels, **target}
                        snapshot[(sample.name, tuple(sorted(labels.items())))] = float(sample.value)
        return snapshot

    def scrape_now(self) -> None:
        """One more scrape, in the caller's thread: a scenario ends as soon as its ledger settles, which can be
        before the next periodic scrape sees its last dead letter."""
        snapshot = self.scrape_once()
        with self._lock:
            self.snapshots.append(snapshot)
            self.times.append(time.monotonic())

    def mark(self) -> int:
        with self._lock:
            return len(self.snapshots)

    def since(self, mark: int) -> list[dict[SeriesKey, float]]:
        """The snapshot just before `mark` (the state the scenario started from) and every one after it."""
        with self._lock:
            return list(self.snapshots[max(0, mark - 1) :])

    def on_grid(self, mark: int) -> list[dict[SeriesKey, float]]:
        """since(mark) placed on the wall clock, one entry per SCRAPE_S: a round of scrapes takes longer than
        SCRAPE_S on a busy machine (measured: ~3.3 s in subscriber-slow), and a timeline in scrape order would then
        run slower than the scenario, so a `for:` the scenario held in wall time would not be held in promtool's.
        Each grid step holds the newest snapshot taken by then (the baseline stays first)."""
        with self._lock:
            start = max(0, mark - 1)
            snapshots, times = self.snapshots[start:], self.times[start:]
        if len(times) != len(snapshots) or len(snapshots) < 2:
            return list(snapshots)
        grid = [snapshots[0]]
        first, index = times[1], 1
        steps = int((times[-1] - first) // SCRAPE_S) + 1
        for step in range(steps):
            at = first + step * SCRAPE_S
            while index + 1 < len(snapshots) and times[index + 1] <= at + 1e-6:
                index += 1
            grid.append(snapshots[index])
        if grid[-1] is not snapshots[-1]:
            grid.append(snapshots[-1])
        return grid


def _selector(key: SeriesKey) -> str:
    name, labels = key
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return f"{name}{{{inner}}}"


def _value(v: float | None) -> str:
    """A sample in promtool's series notation: `_` for none; NaN and +-Inf as PromQL spells them (Micrometer
    exports NaN for a gauge it cannot read yet, e.g. a consumer's lag before its first fetch)."""
    if v is None:
        return "_"
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    return repr(v) if v != int(v) else str(int(v))


def promtool_tests(window: list[dict[SeriesKey, float]], alert_names: list[str]) -> dict:
    """A promtool unit-test file: the captured series, and per alert a test group that expects it silent at each
    evaluation point (so the groups promtool reports FAILED are the alerts that fired)."""
    baseline, scrapes = (window[0], window[1:]) if window else ({}, [])
    history = HISTORY_S // SCRAPE_S
    hold = max(EVAL_AFTER_S) // SCRAPE_S
    keys = sorted({k for snapshot in window for k in snapshot})
    series = []
    for key in keys:
        before = [_value(baseline.get(key))] * history
        during = [_value(s.get(key)) for s in scrapes]
        last = next((s[key] for s in reversed(scrapes) if key in s), baseline.get(key))
        after = [_value(last)] * hold
        series.append({"series": _selector(key), "values": " ".join(before + during + after)})
    end_s = (history + len(scrapes)) * SCRAPE_S
    # During the scenario too: an alert on a gauge (lag, replicas) fires while the fault lasts and resolves once the
    # scenario has undone it, so judging only after the end missed it (subscriber-slow's lag alert stayed silent).
    during = range(history * SCRAPE_S + EVAL_DURING_S, end_s, EVAL_DURING_S)
    evals = [f"{t}s" for t in during] + [f"{end_s + after}s" for after in EVAL_AFTER_S]
    return {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": f"{SCRAPE_S * 5}s",
        "tests": [
            {
                "name": name,
                "interval": f"{SCRAPE_S}s",
                "input_series": series,
                "alert_rule_test": [{"eval_time": t, "alertname": name, "exp_alerts": []} for t in evals],
            }
            for name in alert_names
        ],
    }


@dataclass
class AlertWatch:
    """The scraper for one stack, and the judgement of each scenario's alerts."""

    objects: list[Obj]
    workdir: Path
    scraper: Scraper
    alert_names: list[str]

    @classmethod
    def start(
        cls, objects: list[Obj], workdir: Path, targets: dict[str, str], workloads: frozenset[str] = frozenset()
    ) -> AlertWatch:
        rules = prometheus_rules.rule_objects(objects)
        names = [a.name for a in metric_names.alerts(objects)]
        wanted = set()
        for alert in metric_names.alerts(objects):
            wanted |= metric_names.names_in(str(alert.spec.get("expr", ""))).metrics
        directory = workdir / "alerts"
        directory.mkdir(parents=True, exist_ok=True)
        prometheus_rules.write_rule_file(rules, directory / "rules.yaml")
        prometheus_rules.check_rules(directory / "rules.yaml")
        scraper = Scraper(targets, frozenset(wanted), directory, workloads)
        scraper.start()
        return cls(objects, directory, scraper, names)

    def fired(self, scenario: str, mark: int) -> set[str]:
        import yaml

        time.sleep(1.0)  # the receivers record a request right after answering it
        self.scraper.scrape_now()
        window = self.scraper.on_grid(mark)
        path = self.workdir / f"{scenario}.test.yaml"
        path.write_text(yaml.safe_dump(promtool_tests(window, self.alert_names), sort_keys=False, width=100000))
        result = prometheus_rules.test_rules(path)
        return prometheus_rules.failed_groups(result.stdout + result.stderr) & set(self.alert_names)

    def judge(self, scenario: str, fired: set[str]) -> list[str]:
        """FAIL notes for an expected alert that stayed silent, or one that must stay silent and fired."""
        notes = [f"FAIL alert {name} did not fire" for name in sorted(EXPECTED_FIRING.get(scenario, set()) - fired)]
        notes += [f"FAIL alert {name} fired" for name in sorted(EXPECTED_SILENT.get(scenario, set()) & fired)]
        return notes

    def stop(self) -> None:
        self.scraper.stop()


def describe(fired: set[str]) -> str:
    return "alerts: " + (", ".join(sorted(fired)) if fired else "none")
