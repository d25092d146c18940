"""bin/knative-admission, the Go program in hack/knative-admission that runs Knative's own admission webhooks
(serving, eventing, eventing-kafka-broker at the pinned release) offline: finding its binary, running it, and its
`mutate` mode. Below both users: gitops.validate.admission (the validate stage's findings) and gitops.e2e (which
applies Knative objects as those webhooks leave them, its API server calling none).
"""

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from gitops.core import manifests
from gitops.core.paths import ADMISSION_MODULE_DIR, REPO_ROOT

BINARY = Path("bin/knative-admission")


class AdmissionUnavailable(RuntimeError):
    """The binary is missing, stale or broken: one line saying what to run."""


def source_digest(root: Path = REPO_ROOT) -> str:
    """sha256 over go.mod, go.sum and the Go sources, computed like hack/install-tools.sh's module_digest
    (`sha256sum go.mod go.sum *.go | sha256sum`), so a binary built from other sources is never trusted."""
    module = root / ADMISSION_MODULE_DIR
    names = ["go.mod", "go.sum", *sorted(p.name for p in module.glob("*.go"))]
    listing = "".join(f"{hashlib.sha256((module / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    return hashlib.sha256(listing.encode()).hexdigest()


def binary(root: Path = REPO_ROOT) -> Path:
    path = root / BINARY
    stamp = path.with_name(path.name + ".stamp")
    if not path.is_file():
        raise AdmissionUnavailable(f"{BINARY} is missing: run `make setup` (builds it from {ADMISSION_MODULE_DIR})")
    if not stamp.is_file() or stamp.read_text().strip() != source_digest(root):
        raise AdmissionUnavailable(
            f"{BINARY} was built from other sources than {ADMISSION_MODULE_DIR}: run `make setup`"
        )
    return path


# What the binary reads from the rest of an environment when it admits one object (admit.go newEnvironment): the
# namespaces' labels, the webhook configurations' selectors, and the ConfigMaps the webhooks' config stores load
# from their own namespace (the namespace of the webhook's Service).
WEBHOOK_CONFIGURATIONS = {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}


def context_objects(objects: list[manifests.Obj]) -> list[manifests.Obj]:
    """The objects of a render that decide how every other object is admitted: Namespaces, webhook
    configurations, and the ConfigMaps in the namespaces of the webhooks' Services."""
    configs = [
        o
        for o in objects
        if o.get("apiVersion") == "admissionregistration.k8s.io/v1" and o.get("kind") in WEBHOOK_CONFIGURATIONS
    ]
    webhook_namespaces = {
        manifests.dig(hook, "clientConfig", "service", "namespace")
        for config in configs
        for hook in config.get("webhooks") or []
        if isinstance(hook, dict)
    }
    return [
        o
        for o in objects
        if (o.get("apiVersion") == "v1" and o.get("kind") == "Namespace")
        or any(o is c for c in configs)
        or (
            o.get("apiVersion") == "v1"
            and o.get("kind") == "ConfigMap"
            and manifests.meta(o).get("namespace") in webhook_namespaces
        )
    ]


def run_binary(
    args: list[str], request: dict[str, Any], answer_key: str, answer_name: str, timeout: int, root: Path
) -> Any:
    """One run of the binary (`args` after its path) with `request` on stdin: the `answer_key` of its JSON answer."""
    text = json.dumps(request, default=str)
    try:
        proc = subprocess.run([str(binary(root)), *args], input=text, capture_output=True, text=True, timeout=timeout)
    except OSError as error:
        raise AdmissionUnavailable(f"{BINARY} does not run ({error}): run `make setup`") from error
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise AdmissionUnavailable(f"{' '.join([str(BINARY), *args])} failed: {last}")
    try:
        return json.loads(proc.stdout)[answer_key]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise AdmissionUnavailable(f"{BINARY} gave no {answer_name} ({error}): run `make setup`") from error


def mutate(objects: list[manifests.Obj], context: list[manifests.Obj], root: Path = REPO_ROOT) -> list[manifests.Obj]:
    """`objects` as the API server would store them after Knative's mutating webhooks (`knative-admission mutate`),
    judged among `context` (context_objects of their render: namespaces, webhook configurations, config stores).
    make e2e applies these, since its API server calls no webhooks: without them a Trigger lacks the
    eventing.knative.dev/broker label that kafka-controller lists Triggers by when their Broker changes. The
    defaults are computed from what is applied, not from the merged live object as an update's webhook call would:
    the same wherever the render sets every non-deterministic default (a KafkaSource's consumerGroup)."""
    answer = run_binary(["mutate"], {"objects": [*context, *objects]}, "objects", "objects", 120, root)
    if not isinstance(answer, list) or len(answer) != len(context) + len(objects):
        raise AdmissionUnavailable(f"{BINARY} mutate answered {len(answer or [])} objects for {len(objects)}")
    admitted = answer[len(context) :]
    out = []
    for obj, after in zip(objects, admitted, strict=True):
        if after is None:
            raise AdmissionUnavailable(
                f"{obj['kind']} {manifests.meta(obj).get('namespace', '')}/{manifests.meta(obj).get('name')}: "
                "refused by Knative's admission webhooks (make validate names why)"
            )
        after.pop("status", None)  # the API server ignores status in a request to the main resource
        out.append(after)
    return out
