"""Worst-case retry budgets as the 1.23 Kafka dispatcher spends them, and the comments that state them."""

import pytest

from gitops.core import manifests
from gitops.core.paths import REPO_ROOT
from gitops.model.retry_budget import retry_budgets

BROKER = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "b", "namespace": "n"}}


def trigger(delivery=None):
    spec = {"broker": "b", "subscriber": {"uri": "http://x"}}
    if delivery is not None:
        spec["delivery"] = delivery
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": "t", "namespace": "n"},
        "spec": spec,
    }


def controller(delay_ms):
    env = [{"name": "BROKER_DEFAULT_BACKOFF_DELAY_MS", "value": str(delay_ms)}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "kafka-controller", "namespace": "knative-eventing"},
        "spec": {"template": {"spec": {"containers": [{"name": "controller", "env": env}]}}},
    }


def budget(objects):
    (only,) = retry_budgets(objects)
    return only


def test_prod_shape_is_255_s_of_backoff_and_nine_attempts():
    broker = {**BROKER, "spec": {"delivery": {"retry": 8, "backoffDelay": "PT0.5S", "timeout": "PT30S"}}}
    b = budget([broker, trigger()])
    assert (b.backoff_s, b.attempts, b.worst_case_s) == (255.0, 9, 525.0)
    assert b.delivery_from == "Broker n/b"


def test_linear_and_defaults():
    broker = {**BROKER, "spec": {"delivery": {"retry": 3, "backoffPolicy": "linear"}}}
    b = budget([broker, trigger(), controller(1000)])
    # delay from the controller's default, timeout from the dispatcher's DEFAULT_TIMEOUT_MS
    assert (b.backoff_s, b.timeout_s, b.worst_case_s) == (6.0, 600.0, 6.0 + 4 * 600.0)
    assert "(dispatcher default)" in b.describe()


@pytest.mark.parametrize(("own", "retry"), [({"retry": 1}, 1), ({"backoffDelay": "PT1S"}, 5)])
def test_trigger_delivery_replaces_the_brokers_only_with_retry_dls_or_timeout(own, retry):
    broker = {**BROKER, "spec": {"delivery": {"retry": 5, "backoffDelay": "PT0.5S"}}}
    assert budget([broker, trigger(own)]).retry == retry


def test_every_retry_comment_states_the_backoff_the_render_gives(renders):
    """The file that sets a Broker's retry count says how long its backoff lasts (prod's once said "about 2
    minutes" for 255 s)."""
    for env, render in renders.items():
        for broker in manifests.of_kind(render.objects, "eventing.knative.dev", "Broker"):
            triggers = [b for b in retry_budgets(render.objects) if b.delivery_from == str(manifests.ObjKey.of(broker))]
            if not triggers:
                continue
            where = render.field_origin(manifests.ObjKey.of(broker), "spec.delivery.retry")
            text = (REPO_ROOT / where).read_text()
            assert f"{triggers[0].backoff_s:g} s" in text, f"[{env}] {where} does not state {triggers[0].describe()}"
            assert "about 2 minutes" not in text
