"""make render: offline, lock-checked, loud about what it leaves out."""

import re
import shutil

import pytest

from gitops.core import manifests, releases, render, upstream_source
from gitops.core.paths import REPO_ROOT, environments, release_mirror
from gitops.core.render import RenderError, render_env
from tests.support import BROKER_ASSET as BROKER_DATA_PLANE
from tests.support import MADE_UP_ENV, UNLOCKED_ASSETS


def test_render_prints_the_stack_and_names_what_it_left_out(renders, monkeypatch, capsys):
    """`make render`'s output is the render (the session's, not built a second time) and what it left out."""
    monkeypatch.setattr(render, "render_env", lambda env: renders[env])
    assert render.main(["prod"]) == 0
    out, err = capsys.readouterr()
    assert out == renders["prod"].text
    for expected in (
        "kind: Broker",
        "kind: KafkaSource",
        "kind: Trigger",
        "name: kafka-source-dispatcher",
        "name: net-kourier-controller",
    ):
        assert expected in out
    assert f"LEFT OUT {BROKER_DATA_PLANE} (prod)" in err
    assert err.startswith("!!!") and err.count("WARNING:") == 1
    assert "Fix: `make bump VERSION=1.23.0` where github.com is reachable, then commit" in err
    for url in UNLOCKED_ASSETS:  # the Kafka Broker and KafkaSink data planes: no digest recorded yet
        assert f"LEFT OUT {url} (prod)" in err
    assert "its objects are checked against the 1.23.0 sources, not the release bytes" in err
    assert "name: kafka-broker-receiver" not in out  # a stand-in is never part of what Argo CD applies


def test_left_out_data_plane_is_stood_in_by_its_sources_with_the_overlay_patches(renders):
    render_ = renders["prod"]
    assert render_.stood_in == list(UNLOCKED_ASSETS)
    stand_ins = {str(manifests.ObjKey.of(o)): o for o in render_.stand_ins}
    receiver = stand_ins["Deployment knative-eventing/kafka-broker-receiver"]
    assert render_.origin(receiver) == (
        f"{BROKER_DATA_PLANE} (rebuilt from eventing-kafka-broker-knative-v1.23.0/data-plane/config/broker/500-receiver.yaml)"
    )
    assert render_.is_upstream(receiver)
    # The overlay's target-selector patch reaches the stand-in as it will reach the release's Deployment.
    assert receiver["spec"]["replicas"] >= 2
    assert render_.field_origin(manifests.ObjKey.of(receiver), "spec.replicas") == "overlays/prod/kafka-receiver.yaml"
    assert not any(manifests.ObjKey.of(o) == manifests.ObjKey.of(receiver) for o in render_.objects)


def test_every_release_url_is_served_from_a_verified_local_copy(renders):
    render = renders["dev"]
    assert [gap.url for gap in render.omitted] == list(UNLOCKED_ASSETS)
    origins = set(render.origins.values())
    for url in releases.referenced_urls(REPO_ROOT):
        assert (url in origins) != (url in UNLOCKED_ASSETS), url


def test_objects_know_their_source_file(renders):
    render = renders["prod"]
    by_kind = {(o["kind"], o["metadata"]["name"]): render.origin(o) for o in render.objects}
    assert by_kind[("Trigger", "loggings")] == "base/eventing/triggers.yaml"
    assert by_kind[("Service", "notifications")] == "apps/notifications/deploy/service.yaml"
    assert by_kind[("Deployment", "controller")].endswith("/serving-core.yaml")


@pytest.mark.parametrize("env", environments())
def test_one_build_with_origins_renders_exactly_the_plain_build(renders, monkeypatch, env):
    """The origin/transformer annotations used for naming files never reach the output Argo CD would apply."""
    monkeypatch.setattr(render, "BUILD_METADATA", {})  # a plain `kustomize build`, as Argo CD runs it
    monkeypatch.setattr(upstream_source, "stand_in_texts", lambda *_: None)  # Argo CD has the release, or nothing
    plain = render.render_env(env)
    assert renders[env].objects == plain.objects
    assert renders[env].text == plain.text, "byte for byte kustomize's own output"
    assert render.ORIGIN not in renders[env].text and render.TRANSFORMATIONS not in renders[env].text


def test_unknown_environment():
    with pytest.raises(
        RenderError, match=rf"unknown environment '{MADE_UP_ENV}'.*known: {re.escape(', '.join(environments()))}"
    ):
        render_env(MADE_UP_ENV)


def test_url_missing_from_lock_stops_the_render(tree_copy):
    kustomization = tree_copy / "base/platform/kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace(
            "  - https://github.com/knative/eventing/releases/download/knative-v1.23.0/eventing-core.yaml\n",
            "  - https://github.com/knative/eventing/releases/download/knative-v1.23.0/eventing-core.yaml\n"
            "  - https://github.com/knative/serving/releases/download/knative-v1.23.0/serving-hpa.yaml\n",
        )
    )
    with pytest.raises(
        RenderError,
        match=r"^base/platform/kustomization.yaml: .*serving-hpa.yaml has no entry in base/platform/releases.lock.yaml",
    ):
        render_env("dev", root=tree_copy)


POST_INSTALL_JOBS = {
    ("knative-serving", "storage-version-migration-serving"),
    ("knative-serving", "cleanup-serving"),
    ("knative-eventing", "storage-version-migration-eventing"),
    ("knative-eventing", "kafka-controller-post-install"),
    ("knative-eventing", "knative-kafka-storage-version-migrator"),
}


@pytest.mark.parametrize("env", environments())
def test_post_install_jobs_are_locked_postsync_hooks_of_the_render(renders, env):
    """The upgrade runbook applied them with `kubectl create -f https://github.com/...`, past the lock: now they come
    from the lock-verified copies, as Argo CD PostSync hooks, named after upstream's generateName prefix."""
    render = renders[env]
    jobs = [(o, render.origin(o)) for o in manifests.of_kind(render.objects, "batch", "Job")]
    assert {(manifests.meta(j)["namespace"], manifests.meta(j)["name"]) for j, _ in jobs} == POST_INSTALL_JOBS
    lock = releases.load_lock(REPO_ROOT)
    for job, origin in jobs:
        assert "generateName" not in manifests.meta(job)
        assert manifests.annotations(job)["argocd.argoproj.io/hook"] == "PostSync"
        assert manifests.annotations(job)["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
        assert origin.endswith(("-post-install.yaml", "-post-install-jobs.yaml")) and lock[origin], origin
    # Plain `kustomize build` never reads them: the platform kustomization does not list the post-install one.
    assert "post-install" not in (REPO_ROOT / "base/platform/kustomization.yaml").read_text().split("resources:")[1]


def test_a_tampered_post_install_asset_stops_the_render(tree_copy, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(release_mirror(), mirror, symlinks=True)
    jobs = mirror / "knative-v1.23.0/serving/serving-post-install-jobs.yaml"
    jobs.write_text(jobs.read_text().replace("backoffLimit: 10", "backoffLimit: 11"))
    with pytest.raises(releases.DigestMismatch, match=r"serving-post-install-jobs\.yaml"):
        render_env("dev", root=tree_copy, mirror=mirror)
