"""The upstream admission stage: Knative's own webhooks (bin/knative-admission) judge every rendered object.

Each broken manifest below is refused by upstream code, not by a rule of ours; the test only checks that the
refusal comes back as a finding naming the environment, the object, its source file and the webhook.
"""

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops.core import manifests
from gitops.core.paths import ADMISSION_MODULE_DIR, REPO_ROOT, environments
from gitops.core.render import RenderResult
from gitops.validate import admission, waivers
from gitops.validate.findings import Finding
from tests.support import obj, same_with_and_without_cache

NS = "notifications"
KSVC = "Service.serving.knative.dev notifications/notifications"
SERVICE_FILE = "apps/notifications/deploy/service.yaml"


def admit(render: RenderResult) -> list[Finding]:
    findings, _ = same_with_and_without_cache(lambda cache: admission.run({render.env: render}, cache=cache))
    return findings


def ksvc(render: RenderResult) -> manifests.Obj:
    return obj(render, "serving.knative.dev", "Service", NS, "notifications")


def pod_spec(render: RenderResult) -> manifests.Obj:
    return ksvc(render)["spec"]["template"]["spec"]


def container(render: RenderResult) -> manifests.Obj:
    return pod_spec(render)["containers"][0]


def template_annotations(render: RenderResult) -> dict:
    return ksvc(render)["spec"]["template"]["metadata"].setdefault("annotations", {})


def trigger(render: RenderResult) -> manifests.Obj:
    return obj(render, "eventing.knative.dev", "Trigger", NS, "notifications")


def broker(render: RenderResult) -> manifests.Obj:
    return obj(render, "eventing.knative.dev", "Broker", NS, "events")


def kafka_source(render: RenderResult) -> manifests.Obj:
    return obj(render, "sources.knative.dev", "KafkaSource", NS, "kafka-source")


def configmap(render: RenderResult, namespace: str, name: str) -> manifests.Obj:
    return obj(render, "", "ConfigMap", namespace, name)


def assert_refused(findings: list[Finding], env: str, ref: str, webhook: str, needle: str) -> Finding:
    hits = [
        f
        for f in findings
        if f.check == admission.CHECK and f.env == env and f.obj == ref and webhook in f.message and needle in f.message
    ]
    assert hits, f"no {webhook} refusal of {ref} mentioning {needle!r} in {findings}"
    return hits[0]


@pytest.mark.parametrize("env", environments())
def test_the_tree_passes(renders, env):
    findings, warnings = admission.run({env: renders[env]})
    assert findings == [] and warnings == []


def test_both_renders_in_one_run(renders):
    findings, _ = admission.run(renders)
    assert findings == []


Mutation = Callable[[RenderResult], None]

SERVING_CASES: list[tuple[str, Mutation, str]] = [
    ("reserved PORT", lambda r: container(r).setdefault("env", []).append({"name": "PORT", "value": "9"}),
     '"PORT" is a reserved environment variable'),
    ("second port", lambda r: container(r)["ports"].append({"containerPort": 9090}), "more than one container port"),
    ("negative containerConcurrency", lambda r: pod_spec(r).update(containerConcurrency=-1), "expected 0 <= -1 <= 1000"),
    ("hostPath volume", lambda r: pod_spec(r).update(volumes=[{"name": "h", "hostPath": {"path": "/var"}}]),
     "must not set the field(s): spec.template.spec.volumes[0].hostPath"),
    ("privileged", lambda r: container(r).setdefault("securityContext", {}).update(privileged=True),
     "must not set the field(s)"),
    ("min-scale not an integer", lambda r: template_annotations(r).update({"autoscaling.knative.dev/min-scale": "one"}),
     "invalid value: one"),
    ("min above max", lambda r: template_annotations(r).update({"autoscaling.knative.dev/min-scale": "30"}),
     "max-scale=20 is less than min-scale=30"),
    ("legacy maxScale key", lambda r: template_annotations(r).update({"autoscaling.knative.dev/max-scale": "1"}),
     "max-scale=1 is less than min-scale=2"),
    ("max above max-scale-limit", lambda r: template_annotations(r).update({"autoscaling.knative.dev/max-scale": "80"}),
     "expected 1 <= 80 <= 50"),
    ("unknown class", lambda r: template_annotations(r).update({"autoscaling.knative.dev/class": "keda.autoscaling.knative.dev"}),
     "invalid value: keda.autoscaling.knative.dev"),
    ("metric of another class", lambda r: template_annotations(r).update({"autoscaling.knative.dev/metric": "cpu"}),
     "invalid value: cpu"),
    ("target below 0.01", lambda r: template_annotations(r).update({"autoscaling.knative.dev/target": "0"}),
     "should be at least 0.01"),
    ("window below 6s", lambda r: template_annotations(r).update({"autoscaling.knative.dev/window": "5s"}),
     "expected 6s <= 5s <= 1h0m0s"),
    ("autoscaling on the Service's own metadata",
     lambda r: ksvc(r)["metadata"].setdefault("annotations", {}).update({"autoscaling.knative.dev/min-scale": "1"}),
     'invalid key name "autoscaling.knative.dev/min-scale"'),
]  # fmt: skip


@pytest.mark.parametrize(("case", "mutate", "needle"), SERVING_CASES, ids=[c[0] for c in SERVING_CASES])
def test_serving_webhook_refuses(broken, case, mutate, needle):
    render = broken("prod")
    mutate(render)
    found = assert_refused(admit(render), "prod", KSVC, "validation.webhook.serving.knative.dev", needle)
    # The file that set the refused field (issue 28): prod's scale bounds are overlays/prod/scale.yaml's.
    assert found.origin == SET_BY_THE_PROD_OVERLAY.get(case, SERVICE_FILE)


SET_BY_THE_PROD_OVERLAY = {
    case: "overlays/prod/scale.yaml"
    for case in ("min-scale not an integer", "min above max", "legacy maxScale key", "max above max-scale-limit")
}


def test_serving_config_webhook_refuses_max_scale_limit_without_max_scale(broken):
    render = broken("dev")
    del configmap(render, "knative-serving", "config-autoscaler")["data"]["max-scale"]
    found = assert_refused(
        admit(render),
        "dev",
        "ConfigMap knative-serving/config-autoscaler",
        "config.webhook.serving.knative.dev",
        "max-scale = 0, must be in [1, max-scale-limit(50)] range",
    )
    # A patched upstream object is attributed to its release file, like every other finding on it.
    assert found.origin.endswith("/knative-v1.23.0/serving-core.yaml")


def test_serving_config_webhook_refuses_a_non_boolean_flag(broken):
    render = broken("dev")
    configmap(render, "knative-serving", "config-autoscaler")["data"]["enable-scale-to-zero"] = "perhaps"
    assert_refused(
        admit(render),
        "dev",
        "ConfigMap knative-serving/config-autoscaler",
        "config.webhook.serving.knative.dev",
        'failed to parse "enable-scale-to-zero": strconv.ParseBool',
    )


EVENTING_CASES: list[tuple[str, Mutation, str, str]] = [
    ("Trigger field typo", lambda r: trigger(r)["spec"].update(filtr=trigger(r)["spec"].pop("filter")),
     "webhook.eventing.knative.dev", 'unknown field "filtr"'),
    ("Trigger without broker", lambda r: trigger(r)["spec"].pop("broker"),
     "validation.webhook.eventing.knative.dev", "spec.broker"),
    ("filter attribute name", lambda r: trigger(r)["spec"]["filter"]["attributes"].update(Type="x"),
     "validation.webhook.eventing.knative.dev", 'invalid key name "Type"'),
    ("filter field typo", lambda r: trigger(r)["spec"]["filter"].update(attribute={}),
     "webhook.eventing.knative.dev", 'unknown field "attribute"'),
]  # fmt: skip

BROKER_DELIVERY_CASES: list[tuple[dict, str]] = [
    ({"retry": -1}, "invalid value: -1: spec.delivery.retry"),
    ({"backoffPolicy": "fibonacci"}, "invalid value: fibonacci: spec.delivery.backoffPolicy"),
    ({"backoffDelay": "0.5s"}, "invalid value: 0.5s: spec.delivery.backoffDelay"),
    ({"timeout": "PT0S"}, "invalid value: PT0S: spec.delivery.timeout"),
    ({"retryAfterMax": "PT10S"}, "must not set the field(s): spec.delivery.retryAfterMax"),
]


@pytest.mark.parametrize(("case", "mutate", "webhook", "needle"), EVENTING_CASES, ids=[c[0] for c in EVENTING_CASES])
def test_eventing_webhook_refuses_trigger(broken, case, mutate, webhook, needle):
    render = broken("prod")
    mutate(render)
    found = assert_refused(admit(render), "prod", "Trigger notifications/notifications", webhook, needle)
    assert found.origin == "base/eventing/triggers.yaml"


@pytest.mark.parametrize(("delivery", "needle"), BROKER_DELIVERY_CASES, ids=[str(c[0]) for c in BROKER_DELIVERY_CASES])
def test_eventing_webhook_refuses_broker_delivery(broken, delivery, needle):
    render = broken("prod")
    broker(render)["spec"]["delivery"].update(delivery)
    found = assert_refused(
        admit(render), "prod", "Broker notifications/events", "validation.webhook.eventing.knative.dev", needle
    )
    assert found.origin.startswith(("base/eventing/", "overlays/prod/"))


def test_delivery_timeout_needs_its_feature_flag(broken):
    render = broken("prod")
    configmap(render, "knative-eventing", "config-features")["data"]["delivery-timeout"] = "disabled"
    assert_refused(
        admit(render),
        "prod",
        "Broker notifications/events",
        "validation.webhook.eventing.knative.dev",
        "must not set the field(s): spec.delivery.timeout",
    )


def test_eventing_config_webhook_refuses_a_bad_log_level(broken):
    render = broken("dev")
    configmap(render, "knative-eventing", "config-logging")["data"]["loglevel.controller"] = "loud"
    assert_refused(
        admit(render), "dev", "ConfigMap knative-eventing/config-logging", "config.webhook.eventing.knative.dev", ""
    )


KAFKA_CASES: list[tuple[str, Mutation, str, str]] = [
    ("initialOffset", lambda r: kafka_source(r)["spec"].update(initialOffset="oldest"),
     "KafkaSource notifications/kafka-source", "invalid value: oldest: spec.initialOffset"),
    ("ordering", lambda r: kafka_source(r)["spec"].update(ordering="strict"),
     "KafkaSource notifications/kafka-source", "invalid value: strict: spec.ordering"),
    ("no topics", lambda r: kafka_source(r)["spec"].update(topics=[]),
     "KafkaSource notifications/kafka-source", "missing field(s): spec.topics"),
    ("Kafka Broker config of another kind", lambda r: broker(r)["spec"]["config"].update(kind="Secret"),
     "Broker notifications/events", "Expected ConfigMap"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "mutate", "ref", "needle"), KAFKA_CASES, ids=[c[0] for c in KAFKA_CASES])
def test_kafka_webhook_refuses(broken, case, mutate, ref, needle):
    render = broken("prod")
    mutate(render)
    assert_refused(admit(render), "prod", ref, "validation.webhook.kafka.eventing.knative.dev", needle)


def test_a_missing_configmap_stops_the_webhook(broken):
    render = broken("dev")
    render.objects.remove(configmap(render, "knative-serving", "config-defaults"))
    found = assert_refused(
        admit(render), "dev", "ConfigMap knative-serving/config-defaults", "serving webhook", "webhook does not start"
    )
    assert found.origin == "(not in the render)"


def test_the_stage_runs_in_make_validate_and_waivers_apply(broken, tmp_path):
    render = broken("dev")
    del configmap(render, "knative-serving", "config-autoscaler")["data"]["max-scale"]
    findings, _ = same_with_and_without_cache(lambda cache: admission.stage({"dev": render}, cache=cache))
    (tmp_path / waivers.WAIVERS_FILE).write_text(
        "waivers:\n"
        f"  - check: {admission.CHECK}\n"
        "    env: dev\n"
        "    object: ConfigMap knative-serving/config-autoscaler\n"
        "    message_contains: max-scale = 0\n"
        "    reason: a test\n"
    )
    failing, waived = waivers.apply(findings, waivers.load(tmp_path))
    assert failing == [] and len(waived) == 1


def _module_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / ADMISSION_MODULE_DIR, root / ADMISSION_MODULE_DIR)
    (root / "bin").mkdir()
    return root


def test_missing_binary_is_one_finding_not_a_traceback(renders, tmp_path):
    root = _module_copy(tmp_path)
    findings, _ = admission.stage({"dev": renders["dev"]}, root)
    assert [f.message for f in findings] == [
        "bin/knative-admission is missing: run `make setup` (builds it from hack/knative-admission)"
    ]


def test_a_binary_built_from_other_sources_is_refused(renders, tmp_path):
    root = _module_copy(tmp_path)
    shutil.copy(REPO_ROOT / admission.BINARY, root / admission.BINARY)
    stamp = root / "bin" / "knative-admission.stamp"
    stamp.write_text(admission.source_digest(root))
    assert admission.stage({"dev": renders["dev"]}, root)[0] == []
    (root / ADMISSION_MODULE_DIR / "main.go").write_text("package main\n")
    findings, _ = admission.stage({"dev": renders["dev"]}, root)
    assert len(findings) == 1 and "built from other sources" in findings[0].message


def test_the_stamp_digest_matches_install_tools(tmp_path):
    """hack/install-tools.sh and gitops.validate.admission must agree, or every build would look stale."""
    script = (REPO_ROOT / "hack" / "install-tools.sh").read_text()
    function = script[script.index("module_digest() {") : script.index("}\n", script.index("module_digest() {")) + 2]
    out = subprocess.run(
        ["bash", "-c", f'root="$1"\n{function}module_digest {ADMISSION_MODULE_DIR}', "-", str(REPO_ROOT)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == admission.source_digest()


def test_a_go_build_failure_is_one_line(tmp_path):
    """A broken module (here: a go.sum entry missing) fails `make setup` with one error line, not a Go log."""
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "hack", root / "hack")
    (root / ADMISSION_MODULE_DIR / "go.sum").write_text("")
    go = shutil.which("go")
    assert go is not None, "Go is needed to build the admission stage"
    proc = subprocess.run(
        [
            "bash",
            "-c",
            f'source "$0"; build_module knative-admission {ADMISSION_MODULE_DIR}',
            str(_functions_only(root)),
        ],
        capture_output=True,
        text=True,
        env={"PATH": f"{Path(go).parent}:/usr/bin:/bin", "HOME": str(Path.home()), "GOFLAGS": ""},
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line]
    assert len(errors) == 1 and errors[0].startswith("error: knative-admission did not build: "), proc.stderr
    assert "go.sum" in errors[0]
    assert not (root / "bin" / "knative-admission").exists()


def _functions_only(root: Path) -> Path:
    """install-tools.sh without its trailing install/build calls, so a test can call one function."""
    script = (root / "hack" / "install-tools.sh").read_text()
    body = script[: script.index("\ncommand -v go")]
    path = root / "hack" / "functions.sh"
    path.write_text(body + "\n")
    return path


def test_bad_input_is_one_line(tmp_path):
    proc = subprocess.run(
        [str(REPO_ROOT / admission.BINARY)], input="not json", capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("knative-admission:")]
    assert len(lines) == 1 and lines[0].startswith('knative-admission: stdin is not {"environments": {...}}: ')


def test_a_webhook_the_render_does_not_install_judges_nothing(broken):
    """No serving webhook configurations in the render: the API server would call no serving webhook."""
    render = broken("prod")
    container(render).setdefault("env", []).append({"name": "PORT", "value": "9"})
    assert_refused(admit(render), "prod", KSVC, "validation.webhook.serving.knative.dev", "reserved")
    render.objects[:] = [
        o
        for o in render.objects
        if not (o["kind"].endswith("WebhookConfiguration") and o["metadata"]["name"].endswith("serving.knative.dev"))
    ]
    assert admit(render) == []


def test_no_go_toolchain_is_one_line(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "hack", root / "hack")
    path = "/usr/bin:/bin"
    assert shutil.which("go", path=path) is None, "this test needs a PATH without Go"
    proc = subprocess.run(
        ["bash", str(root / "hack" / "install-tools.sh")],
        capture_output=True,
        text=True,
        env={"PATH": path, "HOME": str(tmp_path)},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: Go is needed to install kustomize, kubeconform and actionlint and to build knative-admission and pod-security"
    ]
