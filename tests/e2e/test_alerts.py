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


def test_a_counter_that_existed_before_the_scenario_is_not_new(renders, tmp_path):
    before = {**_up(), SINK_202: 3.0}
    _, fired = _fired(renders, tmp_path, [before, *[{**_up(), SINK_202: 3.0} for _ in range(5)]])
    assert fired == set()
