"""The data plane rebuilt from its YAML sources is what the release ships: proved on the one asset the mirror holds
(eventing-kafka-source.yaml), then the broker's shapes the checks rely on."""

import json
import re
from pathlib import Path

import pytest

from gitops.core import manifests, paths
from gitops.core.paths import UPSTREAM_SOURCE_ENV, release_mirror, upstream_source_dir
from gitops.core.upstream_source import UpstreamSourceMissing, data_plane_objects, release_version

IMAGE = re.compile(r'"image": "[^"]*"')


def without_images(obj: manifests.Obj) -> str:
    return IMAGE.sub('"image": "-"', json.dumps(obj, sort_keys=True))


def test_source_data_plane_equals_the_release_asset_images_aside():
    asset = release_mirror() / "knative-v1.23.0" / "eventing-kafka-broker" / "eventing-kafka-source.yaml"
    released = manifests.load_stream(asset.read_text())
    rebuilt = data_plane_objects("source")
    assert [manifests.ObjKey.of(o) for o in rebuilt] == [manifests.ObjKey.of(o) for o in released]
    assert [without_images(o) for o in rebuilt] == [without_images(o) for o in released]
    # The one thing left as in the sources: the release's image digests exist only in its bytes.
    dispatcher = rebuilt[-1]["spec"]["template"]["spec"]["containers"][0]
    assert dispatcher["image"] == "${KNATIVE_KAFKA_DISPATCHER_IMAGE}"


def test_broker_data_plane_has_the_receiver_and_dispatcher_as_released():
    objects = {str(manifests.ObjKey.of(o)): o for o in data_plane_objects("broker")}
    receiver = objects["Deployment knative-eventing/kafka-broker-receiver"]
    dispatcher = objects["StatefulSet knative-eventing/kafka-broker-dispatcher"]
    assert "replicas" not in receiver["spec"]  # upstream leaves it unset: one pod
    assert dispatcher["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/kind"] == "kafka-dispatcher"
    assert receiver["metadata"]["labels"]["app.kubernetes.io/version"] == "1.23.0"
    # USE_LOOM=true: runAsNonRoot: true becomes runAsUser: 1001 (hack/data-plane.sh replace_images).
    assert receiver["spec"]["template"]["spec"]["securityContext"] == {"runAsUser": 1001}
    assert "Service knative-eventing/kafka-broker-ingress" in objects


def test_sink_data_plane_has_its_receiver():
    kinds = {str(manifests.ObjKey.of(o)) for o in data_plane_objects("sink")}
    assert "Deployment knative-eventing/kafka-sink-receiver" in kinds


def test_a_tree_named_by_env_var_is_assembled_like_the_release(tmp_path, monkeypatch):
    tree = tmp_path / "eventing-kafka-broker-knative-v9.8.7"
    config = tree / "data-plane" / "config" / "broker"
    config.mkdir(parents=True)
    (config / "500-b.yaml").write_text(
        "# comment\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: b\n"
        "  labels:\n    app.kubernetes.io/version: devel\n---\n"
    )
    (config / "100-a.yml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  template:\n    spec:\n"
        "      securityContext:\n        runAsNonRoot: true\n"
    )
    (config / "README.md").write_text("not a manifest\n")
    monkeypatch.setenv(UPSTREAM_SOURCE_ENV, str(tree))
    assert paths.upstream_source_dir() == tree
    objects = data_plane_objects("broker")
    assert [o["metadata"]["name"] for o in objects] == ["a", "b"]  # lexical file order, as ko resolve -R reads
    assert objects[0]["spec"]["template"]["spec"]["securityContext"] == {"runAsUser": 1001}
    assert objects[1]["metadata"]["labels"]["app.kubernetes.io/version"] == "9.8.7"


def test_missing_tree_is_one_line_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(UPSTREAM_SOURCE_ENV, str(tmp_path / "eventing-kafka-broker-knative-v1.23.0"))
    with pytest.raises(
        UpstreamSourceMissing, match=rf"no {tmp_path}.*data-plane/config/sink.*set {UPSTREAM_SOURCE_ENV}"
    ):
        data_plane_objects("sink")


def test_unknown_component_and_untagged_tree_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown data plane component 'channel'"):
        data_plane_objects("channel")
    with pytest.raises(UpstreamSourceMissing, match="cannot tell the release tag"):
        release_version(tmp_path / "somewhere")


def test_default_tree_sits_beside_the_repository(monkeypatch):
    monkeypatch.delenv(UPSTREAM_SOURCE_ENV, raising=False)
    expected = paths.REPO_ROOT.parent / "shared" / "upstream" / "eventing-kafka-broker-knative-v1.23.0"
    assert upstream_source_dir() == expected
    assert release_version() == "1.23.0"
    assert Path(upstream_source_dir(), "data-plane", "config", "broker").is_dir()


def test_prometheus_operator_assets_rebuilt_from_manifests_monitoring():
    """The `*-prometheus-operator.yaml` assets (hack/artifacts-env.sh) from manifests/monitoring/prometheus-operator,
    as test/e2e-common.sh build_monitoring_artifacts assembles them: the controller's with the webhook's."""
    from gitops.core.upstream_source import stand_in_files

    controller = stand_in_files("eventing-kafka-controller-prometheus-operator.yaml", "knative-v1.23.0")
    assert controller is not None
    objects = [o for _, objs in controller for o in objs]
    assert [str(manifests.ObjKey.of(o)) for o in objects] == [
        "PodMonitor knative-eventing/kafka-controller",
        "ServiceMonitor knative-eventing/kafka-webhook-eventing",
    ]
    assert all(o["metadata"]["labels"]["app.kubernetes.io/version"] == "1.23.0" for o in objects)
    broker = stand_in_files("eventing-kafka-broker-prometheus-operator.yaml", "knative-v1.23.0")
    assert {o["kind"] for _, objs in broker or [] for o in objs} == {"PodMonitor", "ServiceMonitor"}
    # Another tag's sources prove nothing about the pinned release.
    assert stand_in_files("eventing-kafka-sink-prometheus-operator.yaml", "knative-v1.22.0") is None
