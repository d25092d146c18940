"""gitops/e2e/alerts.py without the JVMs: the data plane's observability files follow the render, and captured
series become a promtool run whose failed groups are exactly the alerts that fired."""

from gitops.e2e import alerts
from gitops.e2e.alerts import AlertWatch, Scraper, SeriesKey

SINK_202 = (
    "kn_eventing_dispatch_latency_ms_count",
    (
        ("cloudevents_type", "dev.knative.kafka.event"),
        ("http_response_status_code", "202"),
        ("kn_kafkasink_name", "dead-letters"),
        ("kn_kafkasink_namespace", "notifications"),
    ),
)
TRIGGER_202 = (
    "kn_eventing_dispatch_latency_ms_count",
    (
        ("http_response_status_code", "202"),
        ("kn_trigger_name", "notifications"),
        ("kn_trigger_namespace", "notifications"),
    ),
)


def _up() -> dict[SeriesKey, float]:
    containers = ("kafka-broker-receiver", "kafka-broker-dispatcher", "kafka-sink-receiver", "kafka-source-dispatcher")
    return {("up", (("container", c), ("namespace", "knative-eventing"))): 1.0 for c in containers}


def test_observability_files_follow_the_render(renders, tmp_path):
    alerts.write_observability(tmp_path, renders["prod"].objects, 45678)
    assert (tmp_path / "metrics-protocol").read_text() == "prometheus"
    assert (tmp_path / "metrics-endpoint").read_text() == "http://127.0.0.1:45678/metrics"


def _fired(renders, tmp_path, window):
    from gitops.model.metrics import alerts as rule_alerts
    from gitops.model.prometheus_rules import write_rule_file

    objects = renders["dev"].objects
    write_rule_file(objects, tmp_path / "rules.yaml")
    watch = AlertWatch(objects, tmp_path, Scraper({}, frozenset()), [a.name for a in rule_alerts(objects)])
    watch.scraper.snapshots = window
    watch.scraper.scrape_now = lambda: None  # no processes here: the window is the whole story
    return watch, watch.fired("scenario", 1)


def test_a_first_dead_letter_fires_and_a_steady_state_does_not(renders, tmp_path):
    before = {**_up(), TRIGGER_202: 20.0}
    during = [{**_up(), TRIGGER_202: 20.0 + i} for i in range(5)]
    watch, fired = _fired(renders, tmp_path, [before, *during])
    assert fired == set()
    assert watch.judge("routing", fired) == []
    dead = [{**s, SINK_202: 1.0} for s in during[2:]]
    watch, fired = _fired(renders, tmp_path, [before, *during[:2], *dead])
    assert fired == {"KnativeKafkaEventsDeadLettered"}
    assert watch.judge("invalid-payload", fired) == []
    assert watch.judge("routing", fired) == ["FAIL alert KnativeKafkaEventsDeadLettered fired"]
    _, none = _fired(renders, tmp_path, [before, *during])
    assert watch.judge("subscriber-down", none) == ["FAIL alert KnativeKafkaEventsDeadLettered did not fire"]


def test_a_gauge_micrometer_cannot_read_yet_is_nan_and_fires_nothing(renders, tmp_path):
    """Micrometer exports NaN for a consumer's lag before its first fetch (seen in `make e2e ENV=prod`, which then
    stopped with a traceback writing the promtool file); promtool reads NaN and Inf as PromQL spells them."""
    lag = (
        "kafka_consumer_fetch_manager_records_lag",
        (("client_id", "consumer-knative-trigger-notifications-loggings-1"), ("partition", "0"), ("topic", "t")),
    )
    window = [{**_up(), lag: float("nan")}, *({**_up(), lag: v} for v in (float("nan"), float("inf"), 0.0))]
    _, fired = _fired(renders, tmp_path, window)
    assert fired == set()
    assert [alerts._value(v) for v in (None, float("nan"), float("inf"), -float("inf"), 2.0, 0.5)] == [
        "_",
        "NaN",
        "Inf",
        "-Inf",
        "2",
        "0.5",
    ]


def test_a_counter_that_existed_before_the_scenario_is_not_new(renders, tmp_path):
    before = {**_up(), SINK_202: 3.0}
    _, fired = _fired(renders, tmp_path, [before, *[{**_up(), SINK_202: 3.0} for _ in range(5)]])
    assert fired == set()


def test_the_lag_scenario_reads_the_threshold_and_for_of_the_render(renders):
    from gitops.model.metrics import threshold_and_for

    assert threshold_and_for(renders["dev"].objects, "KnativeKafkaConsumerGroupLag") == (100.0, 180.0)


def test_group_lag_sums_a_groups_partitions_from_the_dispatchers_text():
    from gitops.e2e.scenarios import lag_by_group

    lag = "kafka_consumer_fetch_manager_records_lag"
    text = "\n".join(
        [
            f"# TYPE {lag} gauge",
            f'{lag}{{client_id="consumer-knative-trigger-notifications-notifications-2",kafka_version="3.9.2",'
            'partition="0",topic="knative-broker-notifications-events",} 120.0',
            f'{lag}{{client_id="consumer-knative-trigger-notifications-notifications-2",kafka_version="3.9.2",'
            'partition="1",topic="knative-broker-notifications-events",} 30.0',
            f'{lag}{{client_id="consumer-knative-trigger-notifications-loggings-1",kafka_version="3.9.2",'
            'partition="0",topic="knative-broker-notifications-events",} NaN',
            "",
        ]
    )
    assert lag_by_group(text) == {"knative-trigger-notifications-notifications": 150.0}


def test_slow_scrapes_are_placed_on_the_wall_clock():
    """Scrapes 5 s apart on a 2 s grid: each step repeats the newest scrape taken by then, so the scenario's
    duration in promtool's time is its wall-clock duration (not 2 s per scrape)."""
    b, s1, s2, s3 = ({("up", (("pod", str(i)),)): float(i)} for i in range(4))
    scraper = Scraper({}, frozenset())
    scraper.snapshots, scraper.times = [b, s1, s2, s3], [0.0, 10.0, 15.0, 16.0]
    assert scraper.on_grid(1) == [b, s1, s1, s1, s3]
    scraper.times = []  # no times (a window set by hand): scrape order
    assert scraper.on_grid(1) == [b, s1, s2, s3]


def test_a_lag_that_recovers_before_the_scenario_ends_still_fired(renders, tmp_path):
    """A gauge alert fires while the fault lasts and resolves when the scenario undoes it: judged during the
    scenario too, not only after it (subscriber-slow's lag alert was missed that way)."""
    lag = (
        "kafka_consumer_fetch_manager_records_lag",
        (
            ("client_id", "consumer-knative-trigger-notifications-loggings-1"),
            ("partition", "0"),
            ("topic", "knative-broker-notifications-events"),
        ),
    )
    behind = [{**_up(), lag: 400.0} for _ in range(120)]  # 240 s on the 2 s grid: past the alert's for: 3m
    caught_up = [{**_up(), lag: 0.0} for _ in range(10)]
    watch, fired = _fired(renders, tmp_path, [{**_up(), lag: 0.0}, *behind, *caught_up])
    assert fired == {"KnativeKafkaConsumerGroupLag"}
    assert watch.judge("subscriber-slow", fired) == []
    _, brief = _fired(renders, tmp_path, [{**_up(), lag: 0.0}, *behind[:60], *caught_up])  # 2 minutes: not yet
    assert brief == set()


def test_kube_state_metrics_keeps_its_own_namespace_and_only_the_workloads_run_here():
    """Its series keep the object's namespace (honorLabels), and the releases' workloads with no process in the e2e
    (no pod, so 0 ready) are not judged."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    text = (
        b'kube_statefulset_status_replicas_ready{namespace="knative-eventing",statefulset="kafka-source-dispatcher"} 0\n'
        b'kube_deployment_status_replicas_available{namespace="knative-eventing",deployment="eventing-webhook"} 0\n'
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        wanted = frozenset({"kube_statefulset_status_replicas_ready", "kube_deployment_status_replicas_available"})
        scraper = Scraper({"kube-state-metrics": url}, wanted, workloads=frozenset({"kafka-source-dispatcher"}))
        snapshot = scraper.scrape_once()
    finally:
        server.shutdown()
    series = {k: v for k, v in snapshot.items() if k[0] != "up"}
    assert list(series) == [
        (
            "kube_statefulset_status_replicas_ready",
            (
                ("container", "kube-state-metrics"),
                ("namespace", "knative-eventing"),
                ("pod", "kube-state-metrics-e2e"),
                ("statefulset", "kafka-source-dispatcher"),
            ),
        )
    ]
