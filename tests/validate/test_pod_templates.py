"""Pod templates judged by Kubernetes' own validation (issue 22 item 5), in the admission stage's Go program.

k8s.io/kubernetes' registry strategies (the API server's create path: decode, default, convert to the internal
type, PrepareForCreate, Validate) judge every workload of the render and, for each Knative Service, the
Deployment serving's own builders make for its Revision. Each mistake below passes Knative's webhooks and
kubeconform's schemas and would fail only in the cluster; the finding names env, object, file and field path.
"""

import pytest

from gitops.core import manifests
from gitops.core.render import RenderResult
from gitops.validate import admission
from gitops.validate.findings import Finding
from tests.support import obj, same_with_and_without_cache

KSVC = "Service.serving.knative.dev notifications/notifications"
SERVICE_FILE = "apps/notifications/deploy/service.yaml"
SERVING_CORE = "https://github.com/knative/serving/releases/download/knative-v1.23.0/serving-core.yaml"
EVENTING_CORE = "https://github.com/knative/eventing/releases/download/knative-v1.23.0/eventing-core.yaml"
KOURIER = "https://github.com/knative-extensions/net-kourier/releases/download/knative-v1.23.0/kourier.yaml"
REVISION = "the Deployment serving builds for its Revision at "


def refusals(render: RenderResult) -> list[Finding]:
    findings, _ = same_with_and_without_cache(lambda cache: admission.run({render.env: render}, cache=cache))
    return findings


def ksvc_spec(render: RenderResult) -> manifests.Obj:
    return obj(render, "serving.knative.dev", "Service", "notifications", "notifications")["spec"]["template"]


def pod(render: RenderResult, group: str, kind: str, namespace: str, name: str) -> manifests.Obj:
    return obj(render, group, kind, namespace, name)["spec"]["template"]["spec"]


def assert_pod_template_refusal(
    findings: list[Finding], env: str, ref: str, origin: str, field: str, needle: str
) -> Finding:
    hits = [
        f
        for f in findings
        if f.check == admission.POD_TEMPLATE_CHECK
        and f.env == env
        and f.obj == ref
        and f.origin == origin
        and f"{field}: " in f.message
        and needle in f.message
    ]
    assert hits, f"no pod-template refusal of {ref} at {field} mentioning {needle!r} in {findings}"
    assert str(hits[0]).startswith(f"[{env}] {ref} ({origin}): kube-apiserver validation")
    return hits[0]


# --- a Knative Service: judged as the Revision Deployment serving builds ----------------------------------------

# A field prod's overlay sets is reported at that overlay (kustomize's origin annotations), the rest at the base file.
KSVC_ORIGINS = {
    "spread maxSkew 0": "overlays/prod/availability.yaml",
    "spread whenUnsatisfiable": "overlays/prod/availability.yaml",
}
KSVC_MISTAKES = {
    # (env, mutate the KService's template, field path, message part)
    "spread maxSkew 0": (
        "prod",
        lambda t: t["spec"]["topologySpreadConstraints"][0].update(maxSkew=0),
        "spec.template.spec.topologySpreadConstraints[0].maxSkew",
        "must be greater than zero",
    ),
    "spread whenUnsatisfiable": (
        "prod",
        lambda t: t["spec"]["topologySpreadConstraints"][0].update(whenUnsatisfiable="Sometimes"),
        "spec.template.spec.topologySpreadConstraints[0].whenUnsatisfiable",
        "Unsupported value",
    ),
    "spread minDomains with ScheduleAnyway": (
        "prod",
        lambda t: t["spec"]["topologySpreadConstraints"][0].update(minDomains=2, whenUnsatisfiable="ScheduleAnyway"),
        "spec.template.spec.topologySpreadConstraints[0].minDomains",
        "DoNotSchedule",
    ),
    "env var name": (
        "dev",
        lambda t: t["spec"]["containers"][0].setdefault("env", []).append({"name": "A=B", "value": "x"}),
        "spec.template.spec.containers[0].env[0].name",
        "A=B",
    ),
    "image pull policy": (
        "dev",
        lambda t: t["spec"]["containers"][0].update(imagePullPolicy="Sometimes"),
        "spec.template.spec.containers[0].imagePullPolicy",
        "Unsupported value",
    ),
    "label value too long": (
        "dev",
        lambda t: t.setdefault("metadata", {}).setdefault("labels", {}).update(team="x" * 70),
        "spec.template.labels",
        "must be no more than 63",
    ),
    "annotation key": (
        "prod",
        lambda t: t.setdefault("metadata", {}).setdefault("annotations", {}).update({"bad key!": "x"}),
        "spec.template.annotations",
        "name part must consist of",
    ),
}


@pytest.mark.parametrize("case", sorted(KSVC_MISTAKES))
def test_knative_service_template_judged_as_its_revision_deployment(broken, case) -> None:
    env, mutate, field, needle = KSVC_MISTAKES[case]
    render = broken(env)
    mutate(ksvc_spec(render))
    findings = refusals(render)
    hit = assert_pod_template_refusal(findings, env, KSVC, KSVC_ORIGINS.get(case, SERVICE_FILE), field, needle)
    assert REVISION in hit.message
    # Knative's own webhooks let it through: only Kubernetes' validation stands between it and the cluster.
    assert not [f for f in findings if f.check == admission.CHECK and f.obj == KSVC], findings


# --- workloads of the render: Deployments, StatefulSets (and kinds a fork adds) ---------------------------------

WORKLOAD_MISTAKES = {
    "Deployment dnsPolicy None without dnsConfig": (
        "dev",
        ("apps", "Deployment", "kourier-system", "3scale-kourier-gateway"),
        KOURIER,
        lambda p: p.update(dnsPolicy="None"),
        "spec.template.spec.dnsConfig",
        "must provide `dnsConfig`",
    ),
    "Deployment restartPolicy Never": (
        "prod",
        ("apps", "Deployment", "knative-serving", "activator"),
        SERVING_CORE,
        lambda p: p.update(restartPolicy="Never"),
        "spec.template.spec.restartPolicy",
        "Always",
    ),
    "Deployment spread constraint": (
        "prod",
        ("apps", "Deployment", "knative-serving", "webhook"),
        SERVING_CORE,
        lambda p: p.setdefault("topologySpreadConstraints", []).append(
            {"maxSkew": 1, "topologyKey": "", "whenUnsatisfiable": "DoNotSchedule"}
        ),
        "spec.template.spec.topologySpreadConstraints[0].topologyKey",
        "can not be empty",
    ),
    "StatefulSet duplicate container name": (
        "dev",
        ("apps", "StatefulSet", "knative-eventing", "request-reply"),
        EVENTING_CORE,
        lambda p: p["containers"].append(dict(p["containers"][0])),
        "spec.template.spec.containers[1].name",
        "Duplicate value",
    ),
}


@pytest.mark.parametrize("case", sorted(WORKLOAD_MISTAKES))
def test_rendered_workload_templates_are_judged(broken, case) -> None:
    env, (group, kind, namespace, name), origin, mutate, field, needle = WORKLOAD_MISTAKES[case]
    render = broken(env)
    mutate(pod(render, group, kind, namespace, name))
    ref = str(manifests.ObjKey.of(obj(render, group, kind, namespace, name)))
    assert_pod_template_refusal(refusals(render), env, ref, origin, field, needle)


def added(render: RenderResult, document: manifests.Obj) -> RenderResult:
    render.objects.append(document)
    return render


CONTAINER = {"name": "main", "image": "registry.example/app@sha256:" + "1" * 64}


def test_added_daemonset_job_and_cronjob_are_judged(broken) -> None:
    render = broken("dev")
    added(
        render,
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "notifications"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [CONTAINER]}},
            },
        },
    )
    added(
        render,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "notifications"},
            "spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [CONTAINER]}}},
        },
    )
    added(
        render,
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "compact", "namespace": "notifications"},
            "spec": {
                "schedule": "every day",
                "jobTemplate": {
                    "spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [CONTAINER]}}}
                },
            },
        },
    )
    findings = refusals(render)
    ds = [f for f in findings if f.obj == "DaemonSet notifications/agent"]
    assert any("spec.template.metadata.labels: " in f.message and "selector" in f.message for f in ds), findings
    jobs = [f for f in findings if f.obj == "Job notifications/migrate"]
    assert any("spec.template.spec.restartPolicy: " in f.message for f in jobs), findings
    cron = [f for f in findings if f.obj == "CronJob notifications/compact"]
    assert any("spec.schedule: " in f.message for f in cron), findings
    assert {f.check for f in ds + jobs + cron} == {admission.POD_TEMPLATE_CHECK}
    assert all(f.env == "dev" for f in ds + jobs + cron)


def test_the_stage_targets_the_render_kubernetes_version() -> None:
    """k8s.io/kubernetes is pinned to the minor of the k8s.io/api that Knative 1.23's modules use."""
    from gitops.core.paths import ADMISSION_MODULE_DIR, REPO_ROOT

    go_mod = (REPO_ROOT / ADMISSION_MODULE_DIR / "go.mod").read_text()
    api = next(line.split()[1] for line in go_mod.splitlines() if line.strip().startswith("k8s.io/api v"))
    kubernetes = next(line.split()[1] for line in go_mod.splitlines() if line.strip().startswith("k8s.io/kubernetes v"))
    assert api.removeprefix("v0.").split(".")[0] == kubernetes.removeprefix("v1.").split(".")[0]
    assert f"k8s.io/api => k8s.io/api {api}" in go_mod
