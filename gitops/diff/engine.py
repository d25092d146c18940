"""Compare two renders of one environment object by object, and flag the changes production cannot take.

Pure functions over lists of objects (no git, no kustomize), so every classification is testable on an
in-memory copy of a render.
"""

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gitops.core import manifests
from gitops.core.environments import Environment
from gitops.core.field_diff import MISSING, FieldChange, field_changes, show
from gitops.core.manifests import Obj, ObjKey
from gitops.model.argocd import sync_options
from gitops.model.eventing import BROKER_CLASS, broker_config_key
from gitops.model.serving import VISIBILITY

DANGEROUS = "DANGEROUS"
WARNING = "WARNING"
# A change a production environment takes but that its reviewer must weigh: scale bounds, partitions, retries,
# timeouts (issue 28). Not a refusal (exit 0), but never just one more `~` line.
NOTABLE = "NOTABLE"

EXTERNAL_TOPIC = "kafka.eventing.knative.dev/external.topic"
PARTITIONS = "default.topic.partitions"
REPLICATION = "default.topic.replication.factor"
TOPIC_CONFIG_PREFIX = "default.topic.config."


@dataclass(frozen=True)
class Flag:
    severity: str
    key: ObjKey
    reason: str


@dataclass
class EnvDiff:
    env: str
    added: list[ObjKey] = field(default_factory=list)
    removed: list[ObjKey] = field(default_factory=list)
    changed: dict[ObjKey, list[FieldChange]] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def dangerous(self) -> list[Flag]:
        return [f for f in self.flags if f.severity == DANGEROUS]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _shared(a: str, b: str) -> int:
    """How many leading characters two strings share."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def show_change(old: Any, new: Any, limit: int = 70, context: int = 20) -> tuple[str, str]:
    """Both sides of a change; when they are long, only the text they share at the start and the end is elided
    (…), keeping `context` characters around the difference. The differing characters are never cut."""
    a, b = show(old), show(new)
    if old is MISSING or new is MISSING or max(len(a), len(b)) <= limit:
        return a, b
    prefix = _shared(a, b)
    suffix = _shared(a[prefix:][::-1], b[prefix:][::-1])
    start = max(0, prefix - context)
    end_a, end_b = len(a) - max(0, suffix - context), len(b) - max(0, suffix - context)

    def clip(text: str, end: int) -> str:
        return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")

    return clip(a, end_a), clip(b, end_b)


def _hide_secret_values(key: ObjKey, changes: list[FieldChange]) -> list[FieldChange]:
    """A Secret's values never reach a PR comment: compared for real, printed as <hidden>."""
    if key.kind != "Secret" or key.group:
        return changes

    def hide(path: str, value: Any) -> Any:
        return value if value is MISSING or not path.startswith(("data", "stringData")) else "<hidden>"

    return [FieldChange(c.path, hide(c.path, c.old), hide(c.path, c.new)) for c in changes]


# --- classification -----------------------------------------------------------------------------------------------

Objects = dict[ObjKey, Obj]
Rule = Callable[[Objects, Objects], Iterator[Flag]]


def _kind(objects: Objects, group: str, kind: str) -> Iterator[tuple[ObjKey, Obj]]:
    return ((k, o) for k, o in objects.items() if k.group == group and k.kind == kind)


def _broker_rules(old: Objects, new: Objects) -> Iterator[Flag]:
    for key, before in _kind(old, "eventing.knative.dev", "Broker"):
        after = new.get(key)
        if after is None:
            guarded = sync_options(before).get("Prune") == "false"
            how = (
                "Argo CD will not prune it (Prune=false) and leaves it orphaned, but deleting it by hand"
                if guarded
                else "Argo CD prunes it, and that"
            )
            yield Flag(DANGEROUS, key, f"Broker removed: {how} deletes its Kafka topic and every buffered event")
            continue
        old_class = manifests.annotations(before).get(BROKER_CLASS)
        new_class = manifests.annotations(after).get(BROKER_CLASS)
        if old_class != new_class:
            yield Flag(
                DANGEROUS,
                key,
                f"Broker class {old_class} → {new_class}: the class is immutable; only a delete and re-create "
                "applies it, which deletes the Kafka topic",
            )
        if manifests.annotations(before).get(EXTERNAL_TOPIC) != manifests.annotations(after).get(EXTERNAL_TOPIC):
            yield Flag(DANGEROUS, key, "external topic annotation changed: the Broker would switch topics")
        old_spec = {k: v for k, v in (before.get("spec") or {}).items() if k != "delivery"}
        new_spec = {k: v for k, v in (after.get("spec") or {}).items() if k != "delivery"}
        changed = [c.path for c in field_changes(old_spec, new_spec, "spec")]
        if changed:
            yield Flag(
                DANGEROUS,
                key,
                f"{', '.join(changed)} changed: Broker spec except delivery is immutable, so the apply is rejected "
                "and only a replace (delete = topic and buffered events lost) would apply it",
            )


def _broker_configmaps(objects: Objects) -> dict[ObjKey, ObjKey]:
    """ConfigMap key -> the Broker that reads it."""
    found: dict[ObjKey, ObjKey] = {}
    for key, broker in _kind(objects, "eventing.knative.dev", "Broker"):
        config = broker_config_key(broker)
        if config is not None:
            found[config] = key
    return found


def _broker_config_rules(old: Objects, new: Objects) -> Iterator[Flag]:
    for cm_key, broker in _broker_configmaps(old).items():
        if cm_key in old and cm_key not in new:
            yield Flag(
                DANGEROUS,
                cm_key,
                f"ConfigMap of {broker} removed: the Broker's spec.config is immutable and still points here; "
                "if it goes with its Broker the Kafka topic is deleted",
            )


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _topic_config_rules(old: Objects, new: Objects) -> Iterator[Flag]:
    for key, before in _kind(old, "", "ConfigMap"):
        after = new.get(key)
        old_data, new_data = before.get("data") or {}, (after or {}).get("data") or {}
        if after is None or not any(k.startswith("default.topic.") for k in (*old_data, *new_data)):
            continue
        was, now = old_data.get(PARTITIONS), new_data.get(PARTITIONS)
        if was != now:
            a, b = _int(was), _int(now)
            if a is not None and b is not None and b < a:
                yield Flag(
                    DANGEROUS,
                    key,
                    f"{PARTITIONS} decreased {a} → {b}: Kafka cannot shrink a topic, the existing one keeps {a}; "
                    "only re-creating the Broker (losing its topic and buffered events) would apply it",
                )
            else:
                yield Flag(
                    WARNING,
                    key,
                    f"{PARTITIONS} {was} → {now}: no effect on an existing topic (Knative sets it only at topic "
                    "creation); add partitions with `kafka-topics.sh --alter`, increase only",
                )
        for name in sorted(set(old_data) | set(new_data)):
            topic_setting = name == REPLICATION or name.startswith(TOPIC_CONFIG_PREFIX)
            if topic_setting and old_data.get(name) != new_data.get(name):
                yield Flag(
                    WARNING,
                    key,
                    f"{name} {old_data.get(name)} → {new_data.get(name)}: no effect on an existing topic "
                    "(read only when the topic is created); change the live topic with Kafka tooling",
                )
        if old_data.get("bootstrap.servers") != new_data.get("bootstrap.servers"):
            yield Flag(
                WARNING,
                key,
                "bootstrap.servers changed: a Broker moved to another Kafka cluster gets a new, empty topic there; "
                "events buffered in the old one are not carried over",
            )


def _kafka_source_rules(old: Objects, new: Objects) -> Iterator[Flag]:
    for key, before in _kind(old, "sources.knative.dev", "KafkaSource"):
        after = new.get(key)
        if after is None:
            continue
        was, now = manifests.dig(before, "spec", "consumerGroup"), manifests.dig(after, "spec", "consumerGroup")
        if was != now:
            offset = manifests.dig(after, "spec", "initialOffset") or "latest"
            yield Flag(
                DANGEROUS,
                key,
                f"consumerGroup {was} → {now}: offset reset, the new group has no committed offsets and starts at "
                f"initialOffset ({offset}): records are re-delivered (earliest) or skipped (latest); the field is "
                "also immutable, so the apply is rejected",
            )


def _trigger_rules(old: Objects, new: Objects) -> Iterator[Flag]:
    for key, before in _kind(old, "eventing.knative.dev", "Trigger"):
        after = new.get(key)
        if after is not None and manifests.dig(before, "spec", "broker") != manifests.dig(after, "spec", "broker"):
            yield Flag(
                DANGEROUS,
                key,
                f"spec.broker {manifests.dig(before, 'spec', 'broker')} → {manifests.dig(after, 'spec', 'broker')}: "
                "immutable, the apply is rejected; a re-created Trigger gets a new consumer group that starts at latest",
            )


# KafkaSinkSpec.CheckImmutableFields (eventing-kafka-broker control-plane/pkg/apis/eventing/v1alpha1
# kafka_sink_validation.go): topic, replicationFactor and numPartitions.
KAFKA_SINK_IMMUTABLE = ("topic", "numPartitions", "replicationFactor")


def _kafka_sink_rules(old: Objects, new: Objects) -> Iterator[Flag]:
    for key, before in _kind(old, "eventing.knative.dev", "KafkaSink"):
        after = new.get(key)
        owned = all(manifests.dig(before, "spec", f) is not None for f in ("numPartitions", "replicationFactor"))
        if after is None:
            guarded = sync_options(before).get("Prune") == "false"
            how = "Argo CD will not prune it (Prune=false), but deleting it by hand" if guarded else "Argo CD prunes it"
            loss = (
                "deletes its topic with every event in it (the controller owns a topic it created: kafka_sink.go "
                "finalizeKind)"
                if owned
                else "leaves its topic, but whatever sent to it now fails"
            )
            yield Flag(DANGEROUS, key, f"KafkaSink removed: {how}; that {loss}")
            continue
        changed = [
            f"spec.{f}"
            for f in KAFKA_SINK_IMMUTABLE
            if manifests.dig(before, "spec", f) != manifests.dig(after, "spec", f)
        ]
        if changed:
            yield Flag(
                DANGEROUS,
                key,
                f"{', '.join(changed)} changed: immutable on a KafkaSink (the Kafka webhook rejects the apply); only "
                "a delete and re-create applies it, and the delete drops the topic it owns with every event in it",
            )


def _crd_rules(old: Objects, new: Objects) -> Iterator[Flag]:
    for key, before in _kind(old, "apiextensions.k8s.io", "CustomResourceDefinition"):
        after = new.get(key)
        if after is None:
            yield Flag(DANGEROUS, key, "CRD removed: deleting a CRD deletes every custom resource of its kind")
            continue
        versions = {v.get("name") for v in manifests.dig(before, "spec", "versions") or []}
        remaining = {v.get("name") for v in manifests.dig(after, "spec", "versions") or []}
        if versions - remaining:
            gone = ", ".join(sorted(str(v) for v in versions - remaining))
            yield Flag(
                WARNING,
                key,
                f"CRD version(s) {gone} removed: stored objects must be migrated first (post-install jobs)",
            )


def _namespace_rules(old: Objects, new: Objects) -> Iterator[Flag]:
    for key, _ in _kind(old, "", "Namespace"):
        if key not in new:
            yield Flag(DANGEROUS, key, "Namespace removed: deleting it deletes everything in it")


def _prune_guard_rules(old: Objects, new: Objects) -> Iterator[Flag]:
    for key, before in old.items():
        after = new.get(key)
        if after is None:
            continue
        was, now = sync_options(before), sync_options(after)
        lost = {f"{o}=false" for o in ("Prune", "Delete") if was.get(o) == "false" and now.get(o) != "false"}
        if lost:
            yield Flag(
                DANGEROUS,
                key,
                f"prune guard {'/'.join(sorted(lost))} removed: Argo CD may now prune or cascade-delete it",
            )


def _visibility_rules(old: Objects, new: Objects) -> Iterator[Flag]:
    for key, after in _kind(new, "serving.knative.dev", "Service"):
        now = manifests.labels(after).get(VISIBILITY)
        before = old.get(key)
        if before is None:
            if now != "cluster-local":
                yield Flag(WARNING, key, "new Knative Service is public (no cluster-local visibility label)")
            continue
        if manifests.labels(before).get(VISIBILITY) == "cluster-local" and now != "cluster-local":
            yield Flag(DANGEROUS, key, "visibility cluster-local → public: the Service gets an external route")
    domain = ObjKey("", "ConfigMap", "knative-serving", "config-domain")
    if domain in old and domain in new:
        was = "svc.cluster.local" in (old[domain].get("data") or {})
        if was and "svc.cluster.local" not in (new[domain].get("data") or {}):
            yield Flag(DANGEROUS, domain, "svc.cluster.local default domain removed: every Service becomes public")


RULES: tuple[Rule, ...] = (
    _broker_rules,
    _broker_config_rules,
    _topic_config_rules,
    _kafka_source_rules,
    _trigger_rules,
    _kafka_sink_rules,
    _crd_rules,
    _namespace_rules,
    _prune_guard_rules,
    _visibility_rules,
)


def index(objects: Iterable[Obj]) -> Objects:
    return {ObjKey.of(o): o for o in objects}


def diff_env(env: str, old: Iterable[Obj], new: Iterable[Obj]) -> EnvDiff:
    before, after = index(old), index(new)
    result = EnvDiff(env)
    result.added = sorted(set(after) - set(before))
    result.removed = sorted(set(before) - set(after))
    for key in sorted(set(before) & set(after)):
        changes = _hide_secret_values(key, field_changes(before[key], after[key]))
        if changes:
            result.changed[key] = changes
    for rule in RULES:
        result.flags.extend(rule(before, after))
    return result


# --- production environments: their facts and their Argo CD access ---------------------------------------------
# Weakening a production environment through one fact alone (environments.yaml, its Application, its AppProject)
# passes validate whenever the facts still agree with each other afterwards, so the review has to see it.

ENVIRONMENT_KIND = "Environment"  # a Flag key for a fact in environments.yaml, not a Kubernetes object
PROJECT_GRANTS = (
    "sourceRepos",
    "sourceNamespaces",
    "destinations",
    "destinationServiceAccounts",
    "clusterResourceWhitelist",
    "namespaceResourceWhitelist",
    "roles",
)
PROJECT_LIMITS = ("clusterResourceBlacklist", "namespaceResourceBlacklist", "syncWindows", "signatureKeys")


def environment_flags(env: str, old: Environment | None, new: Environment | None) -> list[Flag]:
    """The changes to an environment's entry in environments.yaml that weaken it while it is production."""
    if old is None or new is None or not old.production:
        return []
    key = ObjKey("", ENVIRONMENT_KIND, "", env)
    flags = []
    if not new.production:
        flags.append(
            Flag(
                DANGEROUS,
                key,
                "environments.yaml: production true → false: every production check (digest pins, replication, "
                "hardening, sender identity) stops applying to it",
            )
        )
    if new.automated_sync and not old.automated_sync:
        flags.append(
            Flag(DANGEROUS, key, "environments.yaml: automated_sync false → true: pushes reach it without review")
        )
    if new.kafka_broker_losses < old.kafka_broker_losses:
        flags.append(
            Flag(
                DANGEROUS,
                key,
                f"environments.yaml: kafka_broker_losses {old.kafka_broker_losses} → {new.kafka_broker_losses}: "
                "kafka-durability stops holding replication, min.insync.replicas and acks to that many broker losses",
            )
        )
    if new.scale_to_zero and not old.scale_to_zero:
        flags.append(
            Flag(
                DANGEROUS,
                key,
                "environments.yaml: scale_to_zero false → true: the no-cold-start promise (warm pods, budgets that "
                "keep one) stops being checked",
            )
        )
    if new.destination != old.destination:
        flags.append(
            Flag(
                DANGEROUS,
                key,
                f"environments.yaml: destination {old.destination} → {new.destination}: its Application would "
                "sync to another cluster",
            )
        )
    return flags


def _entries(value: Any) -> list[str]:
    return [json.dumps(v, sort_keys=True) for v in value] if isinstance(value, list) else []


def _automated(app: Obj) -> bool:
    automated = manifests.dig(app, "spec", "syncPolicy", "automated")
    return isinstance(automated, dict) and automated.get("enabled", True) is not False


def production_access_flags(
    old: Objects, new: Objects, production_apps: Callable[[Objects], dict[ObjKey, str]]
) -> list[Flag]:
    """The changes to the Applications and AppProjects of production environments that loosen them.

    production_apps(objects) -> {Application key: production environment} on one side; both sides count, so
    renaming or re-pointing an Application cannot hide it."""
    apps = {**production_apps(old), **production_apps(new)}
    flags: list[Flag] = []
    watched: dict[str, str] = {}
    for key, env in sorted(apps.items()):
        before, after = old.get(key), new.get(key)
        for side in (before, after):
            if side is not None:
                watched[str(manifests.dig(side, "spec", "project"))] = env
        if before is None or after is None:
            continue
        if _automated(after) and not _automated(before):
            flags.append(Flag(DANGEROUS, key, f"automated sync turned on for production {env}: no review before sync"))
        for path, what in ((("spec", "destination"), "destination"), (("spec", "project"), "project")):
            was, now = manifests.dig(before, *path), manifests.dig(after, *path)
            if was != now:
                flags.append(Flag(DANGEROUS, key, f"{what} of production {env} changed: {show(was)} → {show(now)}"))
    for name, env in sorted(watched.items()):
        key = ObjKey("argoproj.io", "AppProject", "argocd", name)
        before, after = old.get(key), new.get(key)
        if before is None or after is None:
            continue
        for grant in PROJECT_GRANTS:
            was = set(_entries(manifests.dig(before, "spec", grant)))
            gained = [e for e in _entries(manifests.dig(after, "spec", grant)) if e not in was]
            if gained:
                flags.append(
                    Flag(
                        DANGEROUS, key, f"project of production {env} loosened: spec.{grant} gains {', '.join(gained)}"
                    )
                )
        for limit in PROJECT_LIMITS:
            now = set(_entries(manifests.dig(after, "spec", limit)))
            lost = [e for e in _entries(manifests.dig(before, "spec", limit)) if e not in now]
            if lost:
                flags.append(
                    Flag(DANGEROUS, key, f"project of production {env} loosened: spec.{limit} loses {', '.join(lost)}")
                )
        if manifests.dig(before, "spec", "sourceIntegrity") and manifests.dig(
            after, "spec", "sourceIntegrity"
        ) != manifests.dig(before, "spec", "sourceIntegrity"):
            flags.append(
                Flag(DANGEROUS, key, f"project of production {env}: commit signature verification changed or removed")
            )
    return flags


# --- production tuning: the numbers an incident turns on ----------------------------------------------------------
# Each is a value a mistake can silently move (a mis-indented max-scale drops the bound; a retry typo changes the
# 9-minute budget), so in a production environment any change to one is marked, with both values. Partition counts
# are marked in every environment already (_topic_config_rules: WARNING, DANGEROUS when decreased; a KafkaSink's
# numPartitions: DANGEROUS, immutable), so they are not marked twice.

# serving pkg/apis/autoscaling/register.go (v0.50.0): the scale bounds, with their legacy camelCase aliases.
SCALE_BOUNDS = ("min-scale", "minScale", "max-scale", "maxScale", "initial-scale", "initialScale", "activation-scale")
# serving pkg/apis/serving/v1/revision_types.go RevisionSpec: TimeoutSeconds, ResponseStartTimeoutSeconds,
# IdleTimeoutSeconds.
REVISION_TIMEOUTS = ("timeoutSeconds", "responseStartTimeoutSeconds", "idleTimeoutSeconds")
# eventing pkg/apis/duck/v1/delivery_types.go DeliverySpec: the retry budget and the per-attempt timeout.
DELIVERY_FIELDS = ("retry", "backoffPolicy", "backoffDelay", "timeout")


def tuning(obj: Obj) -> dict[str, tuple[str, Any]]:
    """field path -> (what it is, value) for the production tuning `obj` carries: absent keys are left out, so an
    added or removed one differs from the other side too."""
    found: dict[str, tuple[str, Any]] = {}
    group, kind = manifests.group_of(obj), obj.get("kind")
    if group == "serving.knative.dev" and kind == "Service":
        annotations = manifests.dig(obj, "spec", "template", "metadata", "annotations") or {}
        for name in SCALE_BOUNDS:
            key = f"autoscaling.knative.dev/{name}"
            if key in annotations:
                found[f"spec.template.metadata.annotations[{key}]"] = ("scale bound", annotations[key])
        for name in REVISION_TIMEOUTS:
            value = manifests.dig(obj, "spec", "template", "spec", name)
            if value is not None:
                found[f"spec.template.spec.{name}"] = ("timeout", value)
    delivery = manifests.dig(obj, "spec", "delivery")
    if isinstance(delivery, dict):
        for name in DELIVERY_FIELDS:
            if name in delivery:
                found[f"spec.delivery.{name}"] = ("timeout" if name == "timeout" else "retries", delivery[name])
    return found


def production_tuning_flags(env: str, old: Iterable[Obj], new: Iterable[Obj]) -> list[Flag]:
    """NOTABLE for every change to a scale bound, retry setting or timeout of production `env`
    (objects on both sides; an added object's values are in its `+` line)."""
    before, after = index(old), index(new)
    flags = []
    for key in sorted(set(before) & set(after)):
        was, now = tuning(before[key]), tuning(after[key])
        for path in sorted(set(was) | set(now)):
            old_value = was[path][1] if path in was else MISSING
            new_value = now[path][1] if path in now else MISSING
            if old_value != new_value:
                what = (was.get(path) or now[path])[0]
                flags.append(
                    Flag(NOTABLE, key, f"production {env} {what}: {path} {show(old_value)} → {show(new_value)}")
                )
    return flags
