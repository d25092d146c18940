"""redelivery-window: the Broker's last retry against the subscriber's dedup window (the app's own settings)."""

import pytest

from gitops.validate.checks import windows
from tests.support import run_check
from tests.validate.checks.ksvc_support import container
from tests.validate.checks.promise_support import broker


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_shipped_renders_keep_redeliveries_inside_the_window(renders, env: str) -> None:
    assert run_check(windows.check_redelivery_within_dedup_window, renders[env]) == []


def test_a_default_attempt_timeout_outruns_the_window_in_prod(broken) -> None:
    render = broken("prod")
    del broker(render)["spec"]["delivery"]["timeout"]  # the dispatcher's default: 600 s per attempt
    findings = run_check(windows.check_redelivery_within_dedup_window, render)
    assert {f.obj for f in findings} == {
        "Trigger notifications/notifications",
        "Trigger notifications/loggings",
    }
    finding = findings[0]
    assert finding.env == "prod" and finding.origin == "overlays/prod/delivery.yaml"  # the file that set retry: 8
    # 255 s of backoff + 8 x 600 s; the window is prod's own DEDUP_WINDOW_SECONDS, named with its file.
    assert "worst-case redelivery 5,055 s > dedup window 900 s" in finding.message
    assert "DEDUP_WINDOW_SECONDS=900" in finding.message and "overlays/prod/dedup-window.yaml" in finding.message


def test_more_retries_in_dev_outrun_the_apps_default_window(broken) -> None:
    render = broken("dev")
    broker(render)["spec"]["delivery"]["retry"] = 9  # 0.5 s x (2 + ... + 512) = 511 s + 9 x 65 s = 1,096 s
    findings = run_check(windows.check_redelivery_within_dedup_window, render)
    assert findings and all(f.env == "dev" for f in findings)
    assert "worst-case redelivery 1,096 s > dedup window 600 s" in findings[0].message
    assert "apps/notifications/src/notifications/settings.py" in findings[0].message  # the app's default


def test_a_shorter_window_on_the_container_is_read_through_the_apps_settings(broken) -> None:
    render = broken("dev")
    container(render).setdefault("env", []).append({"name": "DEDUP_WINDOW_SECONDS", "value": "60"})
    (first, *_) = run_check(windows.check_redelivery_within_dedup_window, render)
    # dev: 1 + 2 s of backoff + 2 x 65 s = 133 s
    assert "worst-case redelivery 133 s > dedup window 60 s" in first.message
    assert "apps/notifications/deploy/service.yaml" in first.message
