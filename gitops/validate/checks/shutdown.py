"""Timeouts against shutdown: a draining subscriber pod is never killed mid-request.

Serving sets the Revision pod's terminationGracePeriodSeconds to the Knative Service's timeoutSeconds (serving
v0.50.0 pkg/reconciler/revision/resources/deploy.go BuildPodSpec: `pod.TerminationGracePeriodSeconds =
rev.Spec.TimeoutSeconds`; an unset timeoutSeconds is config-defaults' revision-timeout-seconds, 300). The kubelet
counts the preStop hook inside that grace. Serving's preStop on the app's container is an HTTP GET to queue-proxy's
/wait-for-drain (deploy.go userLifecycle), which returns only once queue-proxy's drainer has seen no request for its
QuietPeriod, drainSleepDuration = 30 s (pkg/queue/sharedmain/main.go, handlers.go adminHandler). Only then does the
app get SIGTERM and wait DRAIN_DELAY_SECONDS plus up to GRACEFUL_SHUTDOWN_SECONDS for requests in flight
(notifications.serve). So the grace must cover 30 s + the app's delay + its graceful shutdown, and the graceful
shutdown must cover a request whose head arrived just before SIGTERM: the app's header and body read limits.
"""

from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.app_runtime import AppFact, ksvc_app_facts, serving_container, settings_file
from gitops.model.serving import knative_services
from gitops.validate.checks.windows import env_var_origin, seconds
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

QUEUE_PROXY_DRAIN_S = 30.0  # serving v0.50.0 pkg/queue/sharedmain/main.go drainSleepDuration
DEFAULT_REVISION_TIMEOUT_S = 300  # serving config-defaults revision-timeout-seconds (the webhook's default)


def _revision_timeout_default(ctx: EnvContext) -> tuple[float, str]:
    config = manifests.find(ctx.objects, "", "ConfigMap", "knative-serving", "config-defaults") or {}
    value = str((config.get("data") or {}).get("revision-timeout-seconds", ""))
    if value.isdigit():
        return float(value), f"config-defaults revision-timeout-seconds ({ctx.render.origin(config)})"
    return float(DEFAULT_REVISION_TIMEOUT_S), "serving's default revision-timeout-seconds"


@env_check("shutdown-grace")
def check_grace_covers_drain(ctx: EnvContext) -> Iterator[Finding]:
    """timeoutSeconds (the pods' termination grace) >= queue-proxy's 30 s drain + the app's drain and shutdown.

    And the app's graceful shutdown covers its own request read limits (header + body timeouts)."""
    for ksvc in knative_services(ctx.objects):
        found = ksvc_app_facts(ksvc, ctx.render.origin(ksvc))
        if found is None:
            continue
        app, facts = found
        needed = ("drain_delay_seconds", "graceful_shutdown_seconds", "header_timeout_seconds", "body_timeout_seconds")
        if any(name not in facts for name in needed):
            continue
        key = manifests.ObjKey.of(ksvc)
        index, _ = serving_container(ksvc)

        def where(fact: AppFact, ksvc: Obj = ksvc, index: int = index, app: str = app) -> str:
            origin = (
                env_var_origin(ctx, ksvc, index, fact.variable) if fact.from_env else f"default, {settings_file(app)}"
            )
            return f"{fact.variable} {seconds(fact.number())} ({origin})"

        delay, graceful = facts["drain_delay_seconds"], facts["graceful_shutdown_seconds"]
        timeout = dig(ksvc, "spec", "template", "spec", "timeoutSeconds")
        if isinstance(timeout, int):
            grace, grace_from = float(timeout), ctx.render.field_origin(key, "spec.template.spec.timeoutSeconds")
            grace_side = f"timeoutSeconds {timeout}"
        else:
            grace, grace_from = _revision_timeout_default(ctx)
            grace_side = f"no timeoutSeconds, so {grace:g}"
        shutdown = QUEUE_PROXY_DRAIN_S + delay.number() + graceful.number()
        if grace < shutdown:
            yield ctx.finding(
                "shutdown-grace",
                ksvc,
                f"termination grace {seconds(grace)} < shutdown {seconds(shutdown)}: serving makes {grace_side} the "
                f"pods' terminationGracePeriodSeconds ({grace_from}), but the app gets SIGTERM only after "
                f"queue-proxy's {seconds(QUEUE_PROXY_DRAIN_S)} drain (preStop /wait-for-drain), then waits "
                f"{where(delay)} and {where(graceful)} for requests in flight: the kubelet kills a draining pod "
                f"mid-request. Raise timeoutSeconds to at least {shutdown:g} (and every delivery timeout above it), "
                "or shorten the app's shutdown",
                field="spec.template.spec.timeoutSeconds",
                origin=grace_from,
            )
        header, body = facts["header_timeout_seconds"], facts["body_timeout_seconds"]
        reading = header.number() + body.number()
        if graceful.number() < reading:
            yield ctx.finding(
                "shutdown-grace",
                ksvc,
                f"graceful shutdown {seconds(graceful.number())} < request read limits {seconds(reading)}: "
                f"{where(graceful)} ends before a request accepted just before SIGTERM may finish arriving "
                f"({where(header)} + {where(body)}); the server drops it mid-request. Raise "
                f"{graceful.variable} (and timeoutSeconds with it) or lower the read limits",
                origin=env_var_origin(ctx, ksvc, index, graceful.variable) if graceful.from_env else settings_file(app),
            )
