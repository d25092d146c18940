"""The app's container env against the names the app's settings read (apps/notifications/.../settings.py)."""

import pytest

from gitops.validate.checks import app_settings
from tests.support import run_check
from tests.validate.checks.ksvc_support import container


@pytest.mark.parametrize(
    ("env", "origin"),
    # prod's env list is the OIDC patch's: the finding names the file that set it.
    [("dev", "apps/notifications/deploy/service.yaml"), ("prod", "overlays/prod/oidc-subscriber.yaml")],
)
def test_a_typo_in_an_app_variable_is_flagged(broken, env: str, origin: str) -> None:
    render = broken(env)
    container(render).setdefault("env", []).append({"name": "MAX_BODY_BYTE", "value": "1048576"})
    (finding,) = run_check(app_settings.unknown_app_variables, render)
    assert finding.env == env and finding.obj == "Service.serving.knative.dev notifications/notifications"
    assert finding.origin == origin
    assert "sets MAX_BODY_BYTE, which the notifications app never reads (did you mean MAX_BODY_BYTES?)" in (
        finding.message
    )


def test_every_variable_the_app_reads_passes(broken) -> None:
    render = broken("prod")
    # OIDC_* (set by overlays/prod/oidc-subscriber.yaml) and the connection limits are read by other readers than
    # Settings itself: the names come from all of them.
    container(render).setdefault("env", []).extend(
        [{"name": "MAX_BODY_BYTES", "value": "1"}, {"name": "LIMIT_CONCURRENCY", "value": "8"}]
    )
    assert run_check(app_settings.unknown_app_variables, render) == []


def test_settings_are_judged_against_the_code_of_the_image_the_environment_runs(broken, tree_copy) -> None:
    """Issue 28: an env var the image prod runs was built without (its record) fails, naming that image, even
    when the working tree's settings read it."""
    from gitops.model.app_code import code_of_tree, write_record

    render = broken("prod")
    image = container(render)["image"]
    built = code_of_tree("notifications")
    built["settings"] = [name for name in built["settings"] if name != "OIDC_ALLOWED_SUBJECTS"]
    record = write_record(tree_copy, "notifications", image, built)
    (finding,) = run_check(app_settings.unknown_app_variables, render, tree_copy)
    assert finding.origin == "overlays/prod/oidc-subscriber.yaml"
    assert "sets OIDC_ALLOWED_SUBJECTS, which the notifications app never reads" in finding.message
    assert finding.message.endswith(f"(judged against image {image} ({record.relative_to(tree_copy)}))")
    assert run_check(app_settings.unknown_app_variables, render) == []  # this tree has no record: the tree's code
