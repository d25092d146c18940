"""Production sender identity: who may post to a Broker, and who may deliver to a subscriber.

With Eventing's `authentication-oidc` feature every sender attaches a ServiceAccount token minted for the
receiver's audience. The Kafka Broker's receiver verifies it and applies EventPolicies (only the listed senders
pass; eventing.knative.dev/v1alpha1, `to` the Broker, `from` a source reference). A Knative Service is not an
Eventing addressable: it publishes no audience and enforces no EventPolicy, so its Triggers must name the audience
(`subscriber.audience`, which takes precedence over the target's) and the subscriber verifies the token itself
(OIDC_* environment), admitting only the Triggers' own identities (any pod can mount a token for any audience). And the subscriber runs as its own ServiceAccount with no token it does not need.
"""

from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.app_routes import app_of_origin, startup_problems
from gitops.model.eventing import oidc_subject
from gitops.model.serving import knative_services
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

OIDC_FLAG = "authentication-oidc"
DEFAULT_AUTHZ = "default-authorization-mode"
ALLOWED_SUBJECTS = "OIDC_ALLOWED_SUBJECTS"
TOKEN_FILE_ENV = "OIDC_JWKS_TOKEN_FILE"
# Kubernetes' subject for a ServiceAccount token; eventing pkg/auth/event_policy.go kubernetesServiceAccountPrefix.
SERVICE_ACCOUNT_SUBJECT = "system:serviceaccount:"
SOURCE_KINDS = {("sources.knative.dev", "KafkaSource"), ("sources.knative.dev", "PingSource")}


def _ref_key(ref: dict, default_ns: str) -> manifests.ObjKey:
    group = ref.get("apiVersion", "").split("/", 1)[0] if "/" in ref.get("apiVersion", "") else ""
    return manifests.ObjKey(group, ref.get("kind", ""), ref.get("namespace") or default_ns, ref.get("name", ""))


def _exists(ctx: EnvContext, key: manifests.ObjKey) -> bool:
    return manifests.find(ctx.objects, key.group, key.kind, key.namespace, key.name) is not None


def _policies_for(ctx: EnvContext, target: Obj) -> list[Obj]:
    key = manifests.ObjKey.of(target)
    found = []
    for policy in manifests.of_kind(ctx.objects, "eventing.knative.dev", "EventPolicy"):
        ns = manifests.meta(policy).get("namespace", "")
        to = dig(policy, "spec", "to") or []
        if ns == key.namespace and (not to or any(_ref_key(t.get("ref") or {}, ns) == key for t in to)):
            found.append(policy)
    return found


@env_check("sender-identity")
def check_sender_identity(ctx: EnvContext) -> Iterator[Finding]:
    """Production: Eventing OIDC is on, authorization defaults to deny, and an EventPolicy names who may post to the Broker."""
    if not ctx.is_production:
        return
    features = manifests.find(ctx.objects, "", "ConfigMap", "knative-eventing", "config-features")
    data = (features or {}).get("data") or {}
    if data.get(OIDC_FLAG) != "enabled":
        yield ctx.finding(
            "sender-identity",
            features,
            f"{OIDC_FLAG} is {data.get(OIDC_FLAG, 'disabled')!r}: any pod can post events to the Broker with the "
            "type and source the Triggers match; set it to enabled",
        )
    if data.get(DEFAULT_AUTHZ) == "allow-all":
        yield ctx.finding(
            "sender-identity",
            features,
            f"{DEFAULT_AUTHZ}: allow-all lets any identity post where no EventPolicy applies",
        )
    senders = {oidc_subject(o) for o in ctx.objects if manifests.group_of(o).endswith("knative.dev")} - {None}
    for policy in manifests.of_kind(ctx.objects, "eventing.knative.dev", "EventPolicy"):
        ns = manifests.meta(policy).get("namespace", "")
        for entry in dig(policy, "spec", "to") or []:
            if entry.get("ref") and not _exists(ctx, _ref_key(entry["ref"], ns)):
                yield ctx.finding("sender-identity", policy, f"to: {_ref_key(entry['ref'], ns)} is not in the render")
        for entry in dig(policy, "spec", "from") or []:
            if entry.get("ref") and not _exists(ctx, _ref_key(entry["ref"], ns)):
                yield ctx.finding(
                    "sender-identity",
                    policy,
                    f"from: {_ref_key(entry['ref'], ns)} is not in the render: the policy admits an identity nobody has",
                )
            sub = str(entry.get("sub", ""))
            if "*" in sub:
                yield ctx.finding(
                    "sender-identity",
                    policy,
                    f"from: sub {entry['sub']!r} is a wildcard: name the sender by reference in production",
                )
            elif sub.startswith(SERVICE_ACCOUNT_SUBJECT) and sub not in senders:
                # A person's identity (the replay one): its ServiceAccount must be part of what Argo CD applies. A
                # sender's OIDC identity (oidc_subject of a Trigger or source in the render) is the controller's.
                account_ns, _, name = sub.removeprefix(SERVICE_ACCOUNT_SUBJECT).partition(":")
                if manifests.find(ctx.objects, "", "ServiceAccount", account_ns, name) is None:
                    yield ctx.finding(
                        "sender-identity",
                        policy,
                        f"from: sub {sub!r} names ServiceAccount {account_ns}/{name}, which is not in the render: "
                        "the policy admits an identity nobody has (add the ServiceAccount, e.g. "
                        "overlays/prod/replay-identity.yaml)",
                    )
    for broker in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Broker"):
        policies = _policies_for(ctx, broker)
        if not policies:
            yield ctx.finding(
                "sender-identity",
                broker,
                f"no EventPolicy applies to it: {DEFAULT_AUTHZ} ({data.get(DEFAULT_AUTHZ, 'allow-same-namespace')}) "
                "decides who may post; add one naming its sources",
            )
            continue
        allowed = {
            _ref_key(entry["ref"], manifests.meta(p).get("namespace", ""))
            for p in policies
            for entry in dig(p, "spec", "from") or []
            if entry.get("ref")
        }
        subs = {str(entry.get("sub")) for p in policies for entry in dig(p, "spec", "from") or [] if entry.get("sub")}
        for source in ctx.objects:
            if (manifests.group_of(source), source.get("kind")) not in SOURCE_KINDS:
                continue
            sink = dig(source, "spec", "sink", "ref") or {}
            if _ref_key(sink, manifests.meta(source).get("namespace", "")) != manifests.ObjKey.of(broker):
                continue
            if manifests.ObjKey.of(source) not in allowed and oidc_subject(source) not in subs:
                yield ctx.finding(
                    "sender-identity",
                    broker,
                    f"{manifests.ObjKey.of(source)} sends to it but no EventPolicy on it names that source: the "
                    "receiver answers 403 and the events are lost",
                )


def _env(ksvc: Obj) -> dict[str, str]:
    containers = dig(ksvc, "spec", "template", "spec", "containers") or [{}]
    return {e.get("name"): str(e.get("value", "")) for e in containers[0].get("env") or []}


def _deliveries_to_ksvcs(ctx: EnvContext) -> Iterator[tuple[Obj, str, dict]]:
    """(object, field path, destination) for every Trigger subscriber and dead-letter sink that is a KService."""
    for obj in ctx.objects:
        if manifests.group_of(obj) != "eventing.knative.dev" or obj.get("kind") not in {"Trigger", "Broker"}:
            continue
        candidates = [("spec.delivery.deadLetterSink", dig(obj, "spec", "delivery", "deadLetterSink"))]
        if obj.get("kind") == "Trigger":
            candidates.append(("spec.subscriber", dig(obj, "spec", "subscriber")))
        for path, dest in candidates:
            ref = (dest or {}).get("ref") or {}
            if ref.get("kind") == "Service" and ref.get("apiVersion", "").startswith("serving.knative.dev/"):
                yield obj, path, dest


def trigger_subject(trigger: Obj) -> str | None:
    """The OIDC subject a Trigger's deliveries carry: eventing pkg/auth GetOIDCServiceAccountNameForResource,
    <name>-oidc-<group>-<kind> lower-cased (kmeta.ChildName), or None when the name is long enough to be hashed."""
    return oidc_subject(trigger)


@env_check("sender-identity")
def check_subscriber_audience(ctx: EnvContext) -> Iterator[Finding]:
    """Production: every delivery to our services carries the audience and subject the subscriber verifies."""
    if not ctx.is_production:
        return
    for obj, path, dest in _deliveries_to_ksvcs(ctx):
        key = _ref_key(dest["ref"], manifests.meta(obj).get("namespace", ""))
        ksvc = manifests.find(ctx.objects, key.group, key.kind, key.namespace, key.name)
        if ksvc is None:
            continue  # check_destinations reports unresolved destinations
        audience = dest.get("audience")
        expected = _env(ksvc).get("OIDC_AUDIENCE")
        if not audience:
            yield ctx.finding(
                "sender-identity",
                obj,
                f"{path} targets {key} without an audience: a Knative Service publishes none, so deliveries carry "
                "no token and the subscriber cannot tell the dispatcher from any other pod",
            )
        elif expected is None:
            continue  # check_subscriber_settings names the missing OIDC_AUDIENCE and the file that should set it
        elif audience != expected:
            yield ctx.finding(
                "sender-identity",
                obj,
                f"{path}.audience {audience!r} is not the subscriber's OIDC_AUDIENCE {expected!r}: every delivery "
                "is refused with 401",
            )
        allowed = [s.strip() for s in _env(ksvc).get(ALLOWED_SUBJECTS, "").split(",") if s.strip()]
        subject = trigger_subject(obj) if obj.get("kind") == "Trigger" else None
        if allowed and obj.get("kind") == "Trigger" and subject not in allowed:
            yield ctx.finding(
                "sender-identity",
                obj,
                f"its deliveries to {key} carry the subject {subject or '(a hashed ServiceAccount name)'}, which "
                f"{ALLOWED_SUBJECTS} does not list: every delivery and its dead letter are refused with 403",
            )


PRODUCTION_ENV = "PRODUCTION"  # apps/notifications settings.py: the app's production mode
ENV_FIELD = "spec.template.spec.containers[0].env"


@env_check("sender-identity")
def check_subscriber_settings(ctx: EnvContext) -> Iterator[Finding]:
    """Our services run in production mode exactly where environments.yaml says so, with all OIDC_* or none.

    The app's own start-up rule decides (notifications.oidc.configuration_problems): in production all, elsewhere
    all or none."""
    for ksvc in knative_services(ctx.objects):
        app = app_of_origin(ctx.render.origin(ksvc))
        if app is None:
            continue
        env = _env(ksvc)
        where = ctx.render.field_origin(manifests.ObjKey.of(ksvc), ENV_FIELD)
        said = env.get(PRODUCTION_ENV, "").strip().lower() == "true"
        if said != ctx.is_production:
            wanted = "true" if ctx.is_production else "false (or unset)"
            yield ctx.finding(
                "sender-identity",
                ksvc,
                f"{PRODUCTION_ENV}={env.get(PRODUCTION_ENV, '(unset)')} but environments.yaml says {ctx.env} is "
                f'{"" if ctx.is_production else "not "}production: set {PRODUCTION_ENV}: "{wanted}" in the '
                f"container env ({where})"
                + (
                    "; without it the app accepts an incomplete OIDC_* set and a missing OIDC_AUDIENCE turns token "
                    "verification off"
                    if ctx.is_production
                    else ""
                ),
                field=ENV_FIELD,
            )
        # Every environment: the app refuses a half-configured verifier (any OIDC_* set means all), and in production
        # any missing one; ask the app's own rule, as it will at start-up, in the mode the render gives it.
        for problem in startup_problems(app, env, production=said) or []:
            yield ctx.finding(
                "sender-identity",
                ksvc,
                f"{problem} in the container env ({where}): "
                + (f"with {PRODUCTION_ENV}=true " if said else "with some OIDC_* set ")
                + "the subscriber logs that one line and exits at start-up, its pods never pass readiness, and "
                "Serving keeps routing to the last ready revision (on a first install nothing serves: deliveries are "
                "retried, then dead-lettered)"
                + ("" if said else "; set every one of them, or none to run without sender verification"),
                field=ENV_FIELD,
            )


def _token_file_mounted(pod: dict, container: dict, path: str) -> bool:
    projected = {
        v.get("name"): v["projected"]
        for v in pod.get("volumes") or []
        if any("serviceAccountToken" in s for s in dig(v, "projected", "sources") or [])
    }
    for mount in container.get("volumeMounts") or []:
        volume = projected.get(mount.get("name"))
        for source in (volume or {}).get("sources") or []:
            token = source.get("serviceAccountToken")
            if token and f"{mount.get('mountPath', '').rstrip('/')}/{token.get('path')}" == path:
                return True
    return False


@env_check("service-account")
def check_service_accounts(ctx: EnvContext) -> Iterator[Finding]:
    """Production: each Knative Service of ours runs as its own ServiceAccount without an automounted token."""
    if not ctx.is_production:
        return
    users: dict[tuple[str, str], list[str]] = {}
    for obj in ctx.objects:
        pod = dig(obj, "spec", "template", "spec")
        if isinstance(pod, dict) and pod.get("containers"):
            ns = manifests.meta(obj).get("namespace", "")
            users.setdefault((ns, pod.get("serviceAccountName") or "default"), []).append(str(manifests.ObjKey.of(obj)))
    for ksvc in knative_services(ctx.objects):
        if ctx.render.is_upstream(ksvc):
            continue
        ns = manifests.meta(ksvc).get("namespace", "")
        pod = dig(ksvc, "spec", "template", "spec") or {}
        name = pod.get("serviceAccountName") or "default"
        account = manifests.find(ctx.objects, "", "ServiceAccount", ns, name)
        if name == "default" or account is None:
            yield ctx.finding(
                "service-account",
                ksvc,
                f"runs as ServiceAccount {name!r}, "
                + ("the namespace default" if name == "default" else "which is not in the render")
                + ": give it a dedicated ServiceAccount (apps/<app>/deploy/serviceaccount.yaml)",
            )
            continue
        sharing = [u for u in users[(ns, name)] if u != str(manifests.ObjKey.of(ksvc))]
        if sharing:
            yield ctx.finding("service-account", ksvc, f"ServiceAccount {name!r} is shared with {', '.join(sharing)}")
        automount = pod.get("automountServiceAccountToken", account.get("automountServiceAccountToken", True))
        if automount is not False:
            yield ctx.finding(
                "service-account",
                ksvc,
                f"ServiceAccount {name!r} token is automounted: set automountServiceAccountToken: false and mount a "
                "projected token only where one is needed",
            )
        containers = pod.get("containers") or [{}]
        token_file = _env(ksvc).get(TOKEN_FILE_ENV)
        if token_file and not _token_file_mounted(pod, containers[0], token_file):
            yield ctx.finding(
                "service-account",
                ksvc,
                f"{TOKEN_FILE_ENV}={token_file} but no projected serviceAccountToken volume is mounted there: the "
                "JWKS fetch has no credentials",
            )
