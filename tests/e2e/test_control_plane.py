"""The e2e's control-plane plumbing that runs without an API server: the private network namespace guard, the
render prepared for the API server (webhooks out, CRD conversion None), sync order, the controllers' environment,
and which renders the controller can run against the test Kafka."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.core.paths import REPO_ROOT
from gitops.e2e import cluster, controlplane, live, netns, sync
from gitops.e2e.stack import Contracts


def crd(group: str, kind: str, versions: list[tuple[str, bool]], strategy: str = "Webhook") -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.lower()}s.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind},
            "conversion": {"strategy": strategy, "webhook": {"clientConfig": {"service": {"name": "w"}}}},
            "versions": [{"name": n, "served": True, "storage": s} for n, s in versions],
        },
    }


def test_the_host_namespace_is_not_private():
    assert not netns.is_private()
    with pytest.raises(netns.NotPrivate, match="refusing to start kube-apiserver outside a private network namespace"):
        netns.require_private("kube-apiserver")


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare --net needs root here")
def test_inside_unshare_only_loopback_is_private():
    code = "from gitops.e2e import netns; netns.bring_up_loopback(); print(netns.is_private(), netns.interfaces())"
    out = subprocess.run(
        ["unshare", "--net", "--mount", sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "True ['lo']"


def test_hosts_entries_outside_loopback_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(netns, "is_private", lambda: True)
    with pytest.raises(netns.NotPrivate, match=r"10\.0\.0\.1 is outside 127\.0\.0\.0/8"):
        netns.private_hosts(tmp_path / "hosts", {"kafka.svc": "10.0.0.1"}, remount=False)
    netns.private_hosts(tmp_path / "hosts", {"kafka.svc": "127.0.0.1"}, remount=False)
    assert (tmp_path / "hosts").read_text() == "127.0.0.1 localhost\n127.0.0.1 kafka.svc\n"


def test_webhook_conversion_becomes_none_with_the_renders_version_stored():
    source = crd("sources.knative.dev", "KafkaSource", [("v1beta1", True), ("v1", False)])
    other = crd("eventing.knative.dev", "EventType", [("v1beta3", False), ("v1beta2", True)])
    plain = crd("eventing.knative.dev", "Broker", [("v1", True)], strategy="None")
    objects = [
        source,
        other,
        plain,
        {"apiVersion": "sources.knative.dev/v1", "kind": "KafkaSource", "metadata": {"name": "s"}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {}},
    ]
    assert sync.conversion_patches(objects) == {
        "kafkasources.sources.knative.dev": "v1",  # the version the render and the 1.23 controller use
        "eventtypes.eventing.knative.dev": "v1beta2",  # no object of it in the render: its own storage version
    }
    prepared = sync.prepared(objects)
    assert [o["kind"] for o in prepared] == ["CustomResourceDefinition"] * 3 + ["KafkaSource"]
    patched = prepared[0]["spec"]
    assert patched["conversion"] == {"strategy": "None"}
    assert [(v["name"], v["storage"]) for v in patched["versions"]] == [("v1beta1", False), ("v1", True)]
    assert source["spec"]["conversion"]["strategy"] == "Webhook", "the render itself is not changed"


def test_kinds_sync_in_argo_cds_order_custom_resources_last():
    objs = [{"kind": k, "metadata": {"name": "x"}} for k in ("Trigger", "Deployment", "Namespace", "ConfigMap")]
    assert [o["kind"] for o in sorted(objs, key=sync.kind_rank)] == ["Namespace", "ConfigMap", "Deployment", "Trigger"]


def test_a_controller_gets_its_deployments_environment_as_the_kubelet_resolves_it():
    objects = [
        {"kind": "ConfigMap", "metadata": {"name": "images", "namespace": "knative-eventing"}, "data": {"a": "x"}}
    ]
    pod = {"metadata": {"namespace": "knative-eventing", "name": "kafka-controller-0"}, "spec": {}}
    container = {
        "env": [
            {"name": "PLAIN", "value": "1"},
            {"name": "SYSTEM_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IMAGE", "valueFrom": {"configMapKeyRef": {"name": "images", "key": "a"}}},
            {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "images", "key": "b", "optional": True}}},
        ]
    }
    assert controlplane.container_env(objects, pod, container) == {
        "PLAIN": "1",
        "SYSTEM_NAMESPACE": "knative-eventing",
        "POD_NAME": "kafka-controller-0",
        "IMAGE": "x",
    }


def broker_config(replication: str, **extra: str) -> dict:
    return {
        "kind": "ConfigMap",
        "metadata": {"name": "kafka-broker-config", "namespace": "notifications"},
        "data": {"bootstrap.servers": "kafka.kafka.svc:9092", "default.topic.replication.factor": replication, **extra},
    }


BROKER = {
    "kind": "Broker",
    "metadata": {"name": "events", "namespace": "notifications"},
    "spec": {"config": {"kind": "ConfigMap", "name": "kafka-broker-config"}},
}


def test_the_controller_runs_only_renders_the_test_kafka_can_serve():
    assert live.unsupported([BROKER, broker_config("1")]) == ""
    assert "replication factor 3" in live.unsupported([BROKER, broker_config("3")])
    # Credentials in a Secret no ExternalSecret of the render declares: nothing here could give it the test values.
    assert "declared by no ExternalSecret" in live.unsupported(
        [BROKER, broker_config("1", **{"auth.secret.ref.name": "kafka-sasl"})]
    )
    assert live.kafka_hosts([BROKER, broker_config("1")]) == ({"kafka.kafka.svc"}, 9092)
    # The release's own default ConfigMap (knative-eventing, replication factor 3) is used by no Broker of ours.
    release_default = broker_config("3")
    release_default["metadata"]["namespace"] = "knative-eventing"
    assert live.unsupported([BROKER, broker_config("1"), release_default]) == ""


def test_a_render_the_test_kafka_cannot_serve_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """No fallback: `gitops e2e` says why in one line and exits 2 before it starts anything."""
    from gitops.core.render import RenderResult
    from gitops.e2e import run

    monkeypatch.setattr(run.netns, "is_private", lambda: True)
    monkeypatch.setattr(run.netns, "enter", lambda argv: None)
    monkeypatch.setattr(run.netns, "bring_up_loopback", lambda: None)
    monkeypatch.setattr(run, "render_env", lambda env: RenderResult(env, "", [BROKER, broker_config("3")]))

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("the stack started for a render the test Kafka cannot serve")

    monkeypatch.setattr(run.live, "running", started)
    assert run.main(["--env", "dev"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("gitops e2e: env dev: the test Kafka cannot serve this render")
    assert "replication factor 3" in err


def kafka_credentials(**template: str) -> dict:
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": "kafka-sasl", "namespace": "notifications"},
        "spec": {
            "target": {"template": {"data": {"protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", **template}}},
            "data": [{"secretKey": k, "remoteRef": {"key": "kafka", "property": k}} for k in ("user", "password")],
        },
    }


def test_a_declared_sasl_ssl_secret_runs_on_a_cluster_of_one_node_per_bootstrap_host():
    three = broker_config("3", **{"auth.secret.ref.name": "kafka-sasl"})
    three["data"]["bootstrap.servers"] = "k-0.kafka:9093,k-1.kafka:9093,k-2.kafka:9093"
    objects = [BROKER, three, kafka_credentials(user="{{ .user }}", password="{{ .password }}")]
    assert live.unsupported(objects) == ""
    nodes, port = live.kafka_nodes(objects)
    assert port == 9093
    assert [(n.listen, n.advertised) for n in nodes] == [
        ("127.0.5.1", "k-0.kafka"),
        ("127.0.5.2", "k-1.kafka"),
        ("127.0.5.3", "k-2.kafka"),
    ]
    assert live.kafka_addresses(objects) == {
        "k-0.kafka": "127.0.5.1",
        "k-1.kafka": "127.0.5.2",
        "k-2.kafka": "127.0.5.3",
    }
    # Replication factor 3 with two hosts cannot be placed; a mechanism the test Kafka does not speak is refused.
    two = dict(three, data={**three["data"], "bootstrap.servers": "k-0.kafka:9093,k-1.kafka:9093"})
    assert "replication factor 3 but names 2 bootstrap host(s)" in live.unsupported([BROKER, two, objects[2]])
    sha256 = kafka_credentials(**{"sasl.mechanism": "SCRAM-SHA-256", "user": "{{ .user }}"})
    assert "SASL_SSL SCRAM-SHA-256; the test Kafka speaks SASL_SSL SCRAM-SHA-512" in live.unsupported(
        [BROKER, three, sha256]
    )
    # One plaintext host without replication stays the single broker on 127.0.0.1 (dev).
    assert live.kafka_nodes([BROKER, broker_config("1")]) == ([], 9092)
    assert live.kafka_addresses([BROKER, broker_config("1")]) == {"kafka.kafka.svc": "127.0.0.1"}


def test_prod_runs_on_the_control_plane_with_its_declared_credentials(renders, tmp_path):
    from gitops.events.kafka_sasl_ssl import SaslSsl

    objects = renders["prod"].objects
    assert live.unsupported(objects) == ""
    nodes, _port = live.kafka_nodes(objects)
    assert len(nodes) == 3
    auth = live.kafka_auth(objects)
    assert isinstance(auth, live.KafkaAuth)
    assert [(d.namespace, d.name) for d in auth.secrets] == [("notifications", "kafka-credentials")]

    class Kafka:  # the test Kafka's credentials, without starting it
        sasl_ssl = SaslSsl.create(tmp_path)

    store = live.secret_store(auth, Kafka())  # type: ignore[arg-type]
    from gitops.model import external_secrets

    secret = external_secrets.materialise(auth.secrets[0], store)
    assert secret["stringData"] == {
        "protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "user": Kafka.sasl_ssl.user,
        "password": Kafka.sasl_ssl.password,
        "ca.crt": Kafka.sasl_ssl.ca_file.read_text(),
    }
    wrong = external_secrets.materialise(auth.secrets[0], live.secret_store(auth, Kafka(), password="wrong"))  # type: ignore[arg-type]
    assert wrong["stringData"]["password"] == "wrong"


def test_the_controllers_contract_shape_is_read_per_trigger():
    contract = {
        "generation": "3",
        "resources": [
            {"ingress": {"path": "/notifications/events"}, "topics": ["knative-broker-notifications-events"]},
            {"topics": ["t"], "egresses": [{"egressConfig": {"backoffDelay": "1000"}}]},
        ],
    }
    read = Contracts(receiver=contract, sink_receiver={}, broker_dispatcher={}, source_dispatcher={})
    assert read.brokers == {("notifications", "events"): "knative-broker-notifications-events"}
    scaled = live.scaled(contract, 0.1)
    assert scaled["resources"][1]["egresses"][0]["egressConfig"]["backoffDelay"] == "100"
    assert scaled["generation"] == "3001"


def _pins(go_mod: Path) -> dict[str, str]:
    pins = {}
    for line in go_mod.read_text().splitlines():
        parts = line.replace("require", "").split()
        if len(parts) >= 2 and (parts[0].startswith("knative.dev/") or parts[0] == "k8s.io/kubernetes"):
            pins[parts[0]] = parts[1]
        if line.startswith("replace k8s.io/") and "=>" in line:
            module, target = line.removeprefix("replace ").split("=>")
            pins[f"replace {module.strip()}"] = target.split()[-1]
    return pins


def test_the_e2e_control_plane_pins_what_the_admission_stage_pins():
    """`make bump` moves hack/knative-admission; the e2e's control plane must run the same Knative and Kubernetes."""
    admission = _pins(REPO_ROOT / "hack/knative-admission/go.mod")
    cluster = _pins(REPO_ROOT / "hack/knative-cluster/go.mod")
    shared = {k for k in admission if k in cluster}
    assert {"knative.dev/eventing", "knative.dev/eventing-kafka-broker", "k8s.io/kubernetes"} <= shared
    assert {k: cluster[k] for k in shared} == {k: admission[k] for k in shared}


def test_sender_identity_follows_the_renders_feature_flag(renders):
    """The identity path (tokens, the subscriber's OIDC_* settings, the identity scenarios) is keyed on the render's
    config-features, not on the environment's name."""
    assert live.oidc_enabled(renders["prod"].objects)
    assert not live.oidc_enabled(renders["dev"].objects)
    features = copy.deepcopy(
        next(
            o for o in renders["dev"].objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "config-features"
        )
    )
    features["data"]["authentication-oidc"] = "enabled"
    assert live.oidc_enabled([features])


def test_the_throwaway_ca_signs_a_serving_certificate_with_the_in_cluster_names(tmp_path: Path):
    from cryptography import x509

    cert_file, key_file = cluster.throwaway_ca(tmp_path)
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    serving = x509.load_pem_x509_certificate(cert_file.read_bytes())
    serving.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(sans.get_values_for_type(x509.DNSName))
    assert {"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} <= names
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", cluster.KUBERNETES_SERVICE_IP}
    assert cluster.ISSUER.removeprefix("https://") in names
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_a_rotated_api_server_lists_every_public_key_and_signs_with_the_new_one(tmp_path: Path):
    old, new = tmp_path / "sa.pub", tmp_path / "sa-1.pub"
    command = cluster.apiserver_command(tmp_path, tmp_path / "tokens.csv", tmp_path / "sa-1.key", [old, new])
    assert [c for c in command if c.startswith("--service-account-key-file=")] == [
        f"--service-account-key-file={old}",
        f"--service-account-key-file={new}",
    ]
    assert f"--service-account-signing-key-file={tmp_path / 'sa-1.key'}" in command
    assert f"--service-account-jwks-uri={cluster.JWKS_URI}" in command
    assert f"--tls-cert-file={tmp_path / 'certs' / 'serving.crt'}" in command


class FakeKube:
    """What materialise_external_secrets calls on an API server: get, server-side apply, status patch."""

    def __init__(self, live: dict) -> None:
        self.live, self.applied, self.statuses = live, [], []

    def get(self, api_version, kind, namespace, name):
        return self.live.get((kind, namespace, name))

    def apply(self, obj, manager="x"):
        self.applied.append((manager, obj))
        return obj

    def patch_status(self, obj, status):
        self.statuses.append((obj["metadata"]["name"], status))
        return obj


def test_the_external_secrets_stand_in_writes_the_declared_secret_once_per_store_change(renders):
    objects = renders["prod"].objects
    kube = FakeKube({})
    written: dict = {}
    store = {"user": "u", "password": "p", "ca": "CA"}
    assert controlplane.materialise_external_secrets(kube, objects, store, written) == []  # not applied yet
    kube.live[("ExternalSecret", "notifications", "kafka-credentials")] = {"metadata": {"uid": "es-uid"}}
    assert controlplane.materialise_external_secrets(kube, objects, store, written) == [
        "Secret notifications/kafka-credentials"
    ]
    manager, secret = kube.applied[-1]
    assert manager == "external-secrets"
    assert secret["stringData"] == {
        "protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "user": "u",
        "password": "p",
        "ca.crt": "CA",
    }
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "es-uid"
    assert kube.statuses[-1][1]["conditions"][0]["type"] == "Ready"
    assert controlplane.materialise_external_secrets(kube, objects, store, written) == []  # unchanged store
    changed = controlplane.materialise_external_secrets(kube, objects, {**store, "password": "wrong"}, written)
    assert changed == ["Secret notifications/kafka-credentials"]
    assert kube.applied[-1][1]["stringData"]["password"] == "wrong"


def test_the_replay_token_is_the_policys_replay_identity_for_the_brokers_audience(renders):
    """Under prod's OIDC, the e2e's replay re-sends dead letters as the identity events-senders admits
    (system:serviceaccount:notifications:replay), with a token the API server mints for the Broker's audience."""
    minted = []

    class Kube(FakeKube):
        def token(self, namespace, service_account, audience=None):
            minted.append((namespace, service_account, audience))
            return "t"

    audience = "eventing.knative.dev/broker/notifications/events"
    kube = Kube({("Broker", "notifications", "events"): {"status": {"address": {"audience": audience}}}})
    stack = live.LiveStack.__new__(live.LiveStack)
    stack.objects, stack.kube = renders["prod"].objects, kube
    assert stack.replay_token() == "t"
    assert minted == [("notifications", "replay", audience)]
    kube.live[("Broker", "notifications", "events")] = {"status": {"address": {}}}  # no OIDC: no token
    assert stack.replay_token() is None
