"""The Secret an External Secrets Operator ExternalSecret produces: its name, namespace and keys, and (given the
secret store's values) the Secret itself, as the operator's controller would write it.

prod's Kafka credentials are declared in git as an ExternalSecret (overlays/prod/kafka-credentials.yaml), never as
a Secret. `make validate` derives the Secret from that declaration to check it against the Kafka auth contract
(gitops/validate/checks/kafka_credentials.py), and a test environment can materialise it with test values the way
the operator would on the cluster (`materialise`).

The rules are the operator's, at the pinned release (github.com/external-secrets/external-secrets v0.16.2,
pkg/controllers/externalsecret/externalsecret_controller.go and externalsecret_controller_template.go
`applyTemplate`):
- the Secret is `spec.target.name`, defaulting to the ExternalSecret's own name, in the ExternalSecret's namespace;
- without `spec.target.template`, its keys are the `spec.data[].secretKey`s (plus whatever `spec.dataFrom` finds);
- with a template, they are `template.data`'s keys, plus the `secretKey`s when `template.mergePolicy` is `Merge` or
  the template has neither `data` nor `templateFrom`;
- `creationPolicy: Merge` keeps keys already in the Secret.

Only what git alone decides can be checked: `dataFrom` (keys chosen by the store), `templateFrom` (keys from another
object), `creationPolicy: Merge` or `None` (keys or the Secret from elsewhere), and template values other than a
literal or `{{ .<secretKey> }}` are reported as `unknowable`.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from gitops.core import manifests
from gitops.core.manifests import Obj

GROUP = "external-secrets.io"
KIND = "ExternalSecret"
# The operator release whose CRDs `make validate` schema-checks against (its Go module's config/crds/bases) and
# whose rules this module follows: hack/tool-versions.env EXTERNAL_SECRETS_VERSION.
OPERATOR_MODULE = "github.com/external-secrets/external-secrets"
OPERATOR_VERSION_PIN = "EXTERNAL_SECRETS_VERSION"
CRD_FILES = ("config/crds/bases/external-secrets.io_externalsecrets.yaml",)
# `{{ .user }}`: the whole value is one secretKey from spec.data (engine v2, Go text/template).
_REFERENCE = re.compile(r"^\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
_REFERENCE_INDEX = re.compile(r"^\{\{\s*index\s+\.\s+\"([^\"]+)\"\s*\}\}$")


@dataclass(frozen=True)
class DerivedSecret:
    """The Secret `source` produces. `data`: key -> the literal value git states, or None when the value comes
    from the secret store (`store_keys[key]` names the secretKey it is read from). `unknowable`: why some keys or
    values cannot be known from git (then `data` is what can be)."""

    source: Obj
    namespace: str
    name: str
    data: dict[str, str | None]
    store_keys: dict[str, str] = field(default_factory=dict)
    unknowable: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"Secret {self.namespace}/{self.name}"


def external_secrets(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if manifests.group_of(o) == GROUP and o.get("kind") == KIND]


def _template_value(value: object, secret_keys: set[str]) -> tuple[str | None, str | None, str | None]:
    """(literal, store secretKey, problem) for one template.data value."""
    text = str(value)
    if "{{" not in text:
        return text, None, None
    match = _REFERENCE.match(text.strip()) or _REFERENCE_INDEX.match(text.strip())
    if match and match.group(1) in secret_keys:
        return None, match.group(1), None
    if match:
        return None, None, f"refers to {match.group(1)!r}, which no spec.data[].secretKey defines"
    return None, None, "is a template validate cannot evaluate (only a literal or {{ .<secretKey> }} is checked)"


def derive(es: Obj) -> DerivedSecret:
    """The Secret the operator would write for this ExternalSecret (see the module docstring)."""
    meta = manifests.meta(es)
    spec = es.get("spec") or {}
    target = spec.get("target") or {}
    name = target.get("name") or meta.get("name", "")
    unknowable: list[str] = []
    policy = target.get("creationPolicy") or "Owner"
    if policy in ("Merge", "None"):
        unknowable.append(
            f"spec.target.creationPolicy is {policy}: the Secret (or some of its keys) comes from elsewhere; use Owner"
        )
    if spec.get("dataFrom"):
        unknowable.append("spec.dataFrom takes its keys from the secret store; list each key in spec.data instead")
    secret_keys = {
        str(item.get("secretKey"))
        for item in spec.get("data") or []
        if isinstance(item, dict) and item.get("secretKey")
    }
    template = target.get("template")
    data: dict[str, str | None] = {}
    store_keys: dict[str, str] = {}
    if not isinstance(template, dict):
        for key in sorted(secret_keys):
            data[key], store_keys[key] = None, key
    else:
        if template.get("templateFrom"):
            unknowable.append("spec.target.template.templateFrom takes keys from another object; use template.data")
        template_data = template.get("data") or {}
        if template.get("mergePolicy") == "Merge" or (not template_data and not template.get("templateFrom")):
            for key in sorted(secret_keys):
                data[key], store_keys[key] = None, key
        for key, value in template_data.items():
            literal, from_store, problem = _template_value(value, secret_keys)
            if problem:
                unknowable.append(f"spec.target.template.data[{key}] {problem}")
                data[str(key)] = None
                continue
            data[str(key)] = literal
            if from_store:
                store_keys[str(key)] = from_store
            else:
                store_keys.pop(str(key), None)
    return DerivedSecret(es, meta.get("namespace") or "", name, data, store_keys, unknowable)


def derived_secrets(objects: list[Obj]) -> Iterator[DerivedSecret]:
    for es in external_secrets(objects):
        yield derive(es)


def materialise(derived: DerivedSecret, store: Mapping[str, str]) -> Obj:
    """The Secret object the operator writes, given the store's value for each spec.data secretKey (test values
    in a test environment). Raises ValueError naming what git leaves open or a value the store lacks."""
    if derived.unknowable:
        raise ValueError(f"{manifests.ObjKey.of(derived.source)}: {derived.unknowable[0]}")
    string_data: dict[str, str] = {}
    for key, literal in derived.data.items():
        if literal is not None:
            string_data[key] = literal
            continue
        secret_key = derived.store_keys[key]
        if secret_key not in store:
            raise ValueError(f"{manifests.ObjKey.of(derived.source)}: no store value for secretKey {secret_key!r}")
        string_data[key] = store[secret_key]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": derived.name, "namespace": derived.namespace},
        "type": str(manifests.dig(derived.source, "spec", "target", "template", "type") or "Opaque"),
        "stringData": string_data,
    }
