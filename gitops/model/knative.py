"""Shared Knative semantics the checks need: destinations, delivery specs, feature flags, durations.

Sources for each rule are cited where the rule is defined (eventing `pkg/apis/duck/v1/delivery_types.go` and
`delivery_validation.go`, knative/pkg `resolver/addressable_resolver.go`).
"""

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import isodate

from gitops.core import manifests
from gitops.core.manifests import Obj

# DeliverySpec fields (eventing pkg/apis/duck/v1/delivery_types.go).
DELIVERY_FIELDS = {
    "retry",
    "backoffPolicy",
    "backoffDelay",
    "deadLetterSink",
    "timeout",
    "retryAfterMax",
    "format",
}


def iso_duration(value: object) -> timedelta | None:
    """An ISO-8601 duration such as PT0.5S, or None when it is not one (Knative parses with period.Parse)."""
    if not isinstance(value, str) or not value.startswith("P"):
        return None
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError):
        return None
    return parsed if isinstance(parsed, timedelta) else None


def delivery_problems(delivery: object) -> list[str]:
    """What reaches a DeliverySpec unnoticed: field names the Kafka Broker's defaulting webhook silently drops.

    Values (retry >= 0, backoffPolicy, ISO-8601 durations, timeout > 0, the delivery-timeout feature gate) are the
    eventing webhook's rules and run upstream in the admission stage (gitops/validate/admission.py).
    """
    if not isinstance(delivery, dict):
        return [f"delivery must be a mapping, not {type(delivery).__name__}"]
    problems = [
        f"delivery.{key} is not a DeliverySpec field (known: {', '.join(sorted(DELIVERY_FIELDS))})"
        for key in delivery
        if key not in DELIVERY_FIELDS
    ]
    if "deadLetterSink" in delivery and not isinstance(delivery["deadLetterSink"], dict):
        problems.append("delivery.deadLetterSink must be a Destination (ref and/or uri)")
    return problems


@dataclass(frozen=True)
class Resolved:
    target: Obj | None
    path: str
    problems: tuple[str, ...]


def resolve_destination(objects: list[Obj], parent: Obj, destination: object, what: str) -> Resolved:
    """Resolve a duckv1.Destination the way knative/pkg's AddressableResolver does, within the render."""
    if not isinstance(destination, dict) or not (destination.get("ref") or destination.get("uri")):
        return Resolved(None, "", (f"{what} has neither ref nor uri",))
    uri = destination.get("uri")
    ref = destination.get("ref")
    problems: list[str] = []
    parts = urlsplit(uri) if isinstance(uri, str) else None
    if ref is None:
        if parts is None or not (parts.scheme and parts.netloc):
            problems.append(f"{what}.uri {uri!r} must be absolute (scheme and host) when there is no ref")
        return Resolved(None, parts.path if parts else "", tuple(problems))
    if not isinstance(ref, dict):
        return Resolved(None, "", (f"{what}.ref must be a mapping",))
    if parts is not None and (parts.scheme or parts.netloc):
        problems.append(f"{what}.uri {uri!r} must be a relative path when a ref is given")
    api_version = ref.get("apiVersion", "")
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    namespace = ref.get("namespace") or manifests.meta(parent).get("namespace", "")
    target = manifests.find(objects, group, ref.get("kind", ""), namespace, ref.get("name", ""))
    if target is None:
        shown = f"{ref.get('kind')} {namespace}/{ref.get('name')} ({api_version or 'no apiVersion'})"
        problems.append(f"{what}.ref points at {shown}, which is not in the render")
    elif target.get("apiVersion") != api_version:
        problems.append(
            f"{what}.ref apiVersion {api_version!r} does not match the target's {target.get('apiVersion')!r}"
        )
    path = parts.path if parts is not None else ""
    return Resolved(target, path or "/", tuple(problems))
