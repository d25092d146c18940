"""Tables that must agree in both directions: an app's topics and the eventing objects; OIDC issuers and the spec.

An app's topic table (apps/<app>/src/<app>/topics.py `TOPICS`) is what the app serves, `make produce` sends and
the test broker creates; the KafkaSource's `spec.topics` and the Triggers are what the cluster delivers. A topic in
one and not the other is either never read from Kafka or read and then dropped (no Trigger) or posted to a path
whose handler parses another topic's payload. So each direction is checked: every table topic is read by a
KafkaSource and routed by a Trigger to its own path; every KafkaSource topic and every Trigger path into the app
is in the table.

An OIDC issuer is an https URL: OpenID Connect Discovery 1.0 §3 (`issuer`: "URL using the https scheme with no
query or fragment components"), OpenID Connect Core 1.0 §2 (`iss`: "a case sensitive URL using the https scheme
that contains scheme, host, and optionally, port number and path components and no query or fragment
components"). A token's `iss` is compared to it byte for byte, so any other form rejects every token.
"""

from collections.abc import Iterator
from urllib.parse import urlsplit

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.app_routes import app_of_origin, served_topics, topic_writers, topics_file
from gitops.model.eventing import kafka_source_events, sink_broker, trigger_broker, trigger_matches
from gitops.model.knative import resolve_destination
from gitops.model.serving import knative_services
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

RECIPE = "docs/forking.md, 'Add a topic'"


def _app_services(ctx: EnvContext) -> Iterator[tuple[Obj, str, dict[str, str]]]:
    for ksvc in knative_services(ctx.objects):
        app = app_of_origin(ctx.render.origin(ksvc))
        table = served_topics(app) if app else None
        if app and table is not None:
            yield ksvc, app, table


def _routes_into(ctx: EnvContext, ksvc: Obj) -> list[tuple[Obj, str]]:
    """(Trigger, path) for every Trigger whose subscriber resolves to this Knative Service."""
    key = manifests.ObjKey.of(ksvc)
    found = []
    for trigger in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Trigger"):
        resolved = resolve_destination(ctx.objects, trigger, dig(trigger, "spec", "subscriber"), "spec.subscriber")
        if resolved.target is not None and manifests.ObjKey.of(resolved.target) == key:
            found.append((trigger, resolved.path or "/"))
    return found


@env_check("topics")
def check_topic_table(ctx: EnvContext) -> Iterator[Finding]:
    """An app's topics.py and the KafkaSources and Triggers agree both ways: read, routed, to the topic's own path."""
    sources = list(manifests.of_kind(ctx.objects, "sources.knative.dev", "KafkaSource"))
    for ksvc, app, table in _app_services(ctx):
        where = topics_file(app)
        routes = _routes_into(ctx, ksvc)
        events = [event for source in sources for event in kafka_source_events(source)]
        read = {event.topic for event in events}
        for topic, path in table.items():
            if topic not in read and not any(trigger_path == path for _, trigger_path in routes):
                # The app first (docs/forking.md, "Add a topic"): an image serves the topic before any manifest
                # reads or routes it; nothing reaches it yet, so nothing is lost. The manifests follow once the
                # image each environment runs serves it (the `destination` check judges that against the image).
                continue
            if topic not in read:
                yield ctx.finding(
                    "topics",
                    ksvc,
                    f"topics.py lists {topic!r} but no KafkaSource reads it: its events never arrive; add it to a "
                    f"KafkaSource's spec.topics ({RECIPE})",
                    origin=where,
                )
                continue
            reaching = [
                (trigger, trigger_path)
                for trigger, trigger_path in routes
                for event in events
                if event.topic == topic
                and trigger_broker(ctx.objects, trigger) is sink_broker(ctx.objects, event.source_obj)
                and trigger_matches(trigger, event) is not False
            ]
            if not any(trigger_path == path for _, trigger_path in reaching):
                yield ctx.finding(
                    "topics",
                    ksvc,
                    f"topics.py lists {topic!r} but no Trigger routes its events to {path} of this Service: they "
                    f"are dropped at the Broker; add a Trigger filtering on the topic's source with uri {path} "
                    f"({RECIPE})",
                    origin=where,
                )
        for source in sources:
            feeds_app = any(
                trigger_broker(ctx.objects, trigger) is sink_broker(ctx.objects, source) for trigger, _ in routes
            )
            for event in kafka_source_events(source):
                if feeds_app and event.topic not in table:
                    yield ctx.finding(
                        "topics",
                        source,
                        f"reads topic {event.topic!r}, which {where} does not list: apps/{app} has no handler, "
                        f"`make produce` cannot send it and the test broker does not create it; add it there ({RECIPE})",
                        field="spec.topics",
                    )
        paths = {path: topic for topic, path in table.items()}
        for trigger, trigger_path in routes:
            matched = sorted(
                {
                    event.topic
                    for event in events
                    if trigger_broker(ctx.objects, trigger) is sink_broker(ctx.objects, event.source_obj)
                    and trigger_matches(trigger, event) is not False
                }
            )
            expected = {table[t] for t in matched if t in table}
            if trigger_path in paths and expected and trigger_path not in expected:
                yield ctx.finding(
                    "topics",
                    trigger,
                    f"routes events of topic(s) {', '.join(matched)} to {trigger_path}, the handler of topic "
                    f"{paths[trigger_path]!r} ({where}): their payloads fail its validation and are dead-lettered",
                    field="spec.subscriber.uri",
                )
            elif trigger_path.startswith("/events/") and trigger_path not in paths and matched:
                yield ctx.finding(
                    "topics",
                    trigger,
                    f"routes topic(s) {', '.join(matched)} to {trigger_path}, which is no topic of {where} "
                    f"(its topics: {', '.join(sorted(table))})",
                    field="spec.subscriber.uri",
                )


def issuer_problem(issuer: str) -> str | None:
    """Why `issuer` is not an OIDC Issuer Identifier, or None."""
    parts = urlsplit(issuer.strip())
    if parts.scheme != "https":
        return f"uses scheme {parts.scheme or '(none)'!r}, not https"
    if not parts.hostname:
        return "has no host"
    if parts.query or parts.fragment:
        return "has a query or fragment"
    return None


def _issuer_settings(obj: Obj) -> Iterator[tuple[str, str, str, str]]:
    """(container name, variable, value, field path) for every literal env var of the object's pod template that
    names an issuer (`*_ISSUER`)."""
    pod = dig(obj, "spec", "template", "spec") or {}
    for kind in ("containers", "initContainers"):
        for index, container in enumerate(pod.get(kind) or []):
            for var in container.get("env") or []:
                name = str(var.get("name", ""))
                if name.upper().endswith("ISSUER") and isinstance(var.get("value"), str):
                    yield str(container.get("name")), name, var["value"], f"spec.template.spec.{kind}[{index}].env"


@env_check("oidc-issuer")
def check_oidc_issuers(ctx: EnvContext) -> Iterator[Finding]:
    """Every OIDC issuer the render names (an *_ISSUER setting) is an https URL, as OIDC Discovery requires."""
    for obj in ctx.objects:
        for container, name, value, field in _issuer_settings(obj):
            problem = issuer_problem(value)
            if problem:
                yield ctx.finding(
                    "oidc-issuer",
                    obj,
                    f"container {container}: {name}={value!r} {problem}: an OIDC issuer is an https URL with a host "
                    "and no query or fragment (OpenID Connect Discovery 1.0 §3), and every token's `iss` is "
                    "compared to it exactly, so each delivery would be refused with 401; use the cluster's issuer "
                    "(`kubectl get --raw /.well-known/openid-configuration`)",
                    field=field,
                )


def _override(source: Obj, name: str) -> str | None:
    value = (dig(source, "spec", "ceOverrides", "extensions") or {}).get(name)
    return None if value is None else str(value)


def _unforgeable(trigger: Obj, feeding: list[Obj], topics: set[str]) -> bool:
    """Whether the Trigger filters on an attribute only the KafkaSources set: a `spec.ceOverrides` extension that
    every KafkaSource into its Broker sets (CloudEventOverridesMutator overwrites whatever a record says), with the
    value of sources that read only `topics`."""
    attributes = dig(trigger, "spec", "filter", "attributes") or {}
    for name, wanted in attributes.items():
        if wanted == "" or not all(_override(source, name) is not None for source in feeding):
            continue
        setting = [source for source in feeding if _override(source, name) == str(wanted)]
        if setting and all(set(map(str, dig(source, "spec", "topics") or [])) <= topics for source in setting):
            return True
    return False


@env_check("topic-trust")
def check_topic_forgery(ctx: EnvContext) -> Iterator[Finding]:
    """A Trigger into a topic's route cannot be reached by records of a topic whose writers that topic does not trust."""
    sources = list(manifests.of_kind(ctx.objects, "sources.knative.dev", "KafkaSource"))
    for ksvc, app, table in _app_services(ctx):
        writers = topic_writers(app) or {}
        paths = set(table.values())
        for trigger, path in _routes_into(ctx, ksvc):
            if path not in paths:
                continue
            broker = trigger_broker(ctx.objects, trigger)
            feeding = [source for source in sources if sink_broker(ctx.objects, source) is broker]
            events = [event for source in feeding for event in kafka_source_events(source)]
            matched = {event.topic for event in events if trigger_matches(trigger, event) is not False}
            trusted = {writers.get(topic, topic) for topic in matched}
            others = sorted(
                {event.topic for event in events} - matched
                if len(trusted) > 1
                else {event.topic for event in events if writers.get(event.topic, event.topic) not in trusted}
            )
            if not matched or not others or _unforgeable(trigger, feeding, matched):
                continue
            said = ", ".join(f"{topic} ({writers.get(topic, 'not in the table')})" for topic in others)
            yield ctx.finding(
                "topic-trust",
                trigger,
                f"routes topic(s) {', '.join(sorted(matched))} (writers {', '.join(sorted(trusted))}) to {path} on "
                f"attributes a writer of {said} can set too: the KafkaSource passes a record that already is a "
                "CloudEvent through unchanged (InvalidCloudEventInterceptor.validRecord), so such a record can claim "
                "this topic's source and ids; give each topic its own KafkaSource with a spec.ceOverrides extension "
                f"and filter on it, or, if one set of principals writes both, say so in {topics_file(app)} "
                "(`writers`; docs/security-model.md, 'Who can write a source topic')",
                field="spec.filter",
            )
