"""Windows that must nest: every redelivery a Trigger can still make falls inside the subscriber's dedup window.

The Kafka dispatcher retries an event the subscriber may already have processed (its 2xx lost, or late past the
attempt timeout). The subscriber answers such a redelivery `duplicate` only while it remembers the event: for its
dedup window (the app's DEDUP_WINDOW_SECONDS, read by the app's own settings from the Knative Service's env). The
last retry starts at most every backoff delay plus `retry` attempt timeouts after the first attempt
(gitops/model/retry_budget.py, from the 1.23 dispatcher's code); later than the window, it is processed twice.
"""

from collections.abc import Iterator

from gitops.core import manifests
from gitops.core.manifests import dig
from gitops.model.app_runtime import ksvc_app_facts, serving_container, settings_file
from gitops.model.eventing import trigger_broker
from gitops.model.knative import resolve_destination
from gitops.model.retry_budget import RetryBudget, retry_budgets
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check


def seconds(value: float) -> str:
    """1023.0 -> "1,023 s"; 0.5 -> "0.5 s"."""
    return f"{value:,.1f}".removesuffix(".0") + " s"


def env_var_origin(ctx: EnvContext, ksvc: dict, index: int, variable: str) -> str:
    """The file that set `variable` on the Knative Service's container `index`: the last patch adding an env entry of
    that name (a JSON patch appending `.../env/-` or setting the list, a strategic merge naming it), else the one
    that set the whole env list, else the file the Service came from."""
    key = manifests.ObjKey.of(ksvc)
    env_steps = ["spec", "template", "spec", "containers", str(index), "env"]
    for patch in reversed(ctx.render.patches.get(key, [])):
        if isinstance(patch.doc, list):
            for op in patch.doc:
                target = str(op.get("path", "")).split("/")[1:]
                value = op.get("value")
                entries = value if isinstance(value, list) else [value]
                if target[: len(env_steps)] == env_steps and any(
                    isinstance(e, dict) and e.get("name") == variable for e in entries
                ):
                    return patch.path
        elif patch.sets([*env_steps, variable]):
            return patch.path
    return ctx.render.field_origin(key, f"spec.template.spec.containers[{index}].env[{variable}]")


def latest_redelivery_s(budget: RetryBudget) -> float:
    """When the last retry starts at the latest: every backoff delay plus `retry` attempts each run to its timeout
    (the first attempt and every retry but the last). 0 without retries: nothing is redelivered."""
    return budget.backoff_s + budget.retry * budget.timeout_s


@env_check("redelivery-window")
def check_redelivery_within_dedup_window(ctx: EnvContext) -> Iterator[Finding]:
    """A Trigger's last retry starts within its subscriber app's dedup window (else a redelivery is processed twice)."""
    budgets = {b.trigger: b for b in retry_budgets(ctx.objects)}
    for trigger in manifests.of_kind(ctx.objects, "eventing.knative.dev", "Trigger"):
        budget = budgets.get(str(manifests.ObjKey.of(trigger)))
        if budget is None or budget.retry == 0:
            continue
        target = resolve_destination(ctx.objects, trigger, dig(trigger, "spec", "subscriber"), "spec.subscriber").target
        if target is None or (manifests.group_of(target), target.get("kind")) != ("serving.knative.dev", "Service"):
            continue
        found = ksvc_app_facts(target, ctx.render.origin(target))
        if found is None or "dedup_window_seconds" not in found[1]:
            continue
        app, facts = found
        window = facts["dedup_window_seconds"]
        latest = latest_redelivery_s(budget)
        if latest <= window.number():
            continue
        index, _ = serving_container(target)
        if window.from_env:
            window_file = env_var_origin(ctx, target, index, window.variable)
            window_side = f"{window.variable}={window.number():g} on {manifests.ObjKey.of(target)} ({window_file})"
        else:
            window_side = f"the {app} app's default {window.variable} ({settings_file(app)})"
        if budget.delivery_from == "Trigger":
            setter, field = trigger, "spec.delivery.retry"
        else:
            setter, field = trigger_broker(ctx.objects, trigger), "spec.delivery.retry"
        delivery_file = ctx.render.field_origin(manifests.ObjKey.of(setter), field) if setter else "?"
        yield ctx.finding(
            "redelivery-window",
            trigger,
            f"worst-case redelivery {seconds(latest)} > dedup window {seconds(window.number())}: the last of "
            f"{budget.retry} retries starts up to {seconds(budget.backoff_s)} of backoff + {budget.retry} x "
            f"{seconds(budget.timeout_s)} attempt timeout after the first attempt (delivery of {budget.delivery_from}, "
            f"{delivery_file}), but {manifests.ObjKey.of(target)} remembers a processed event only for "
            f"{window_side}: a redelivery after that is processed twice. Raise {window.variable} to at least "
            f"{latest:g}, or shorten the retries or the attempt timeout",
            origin=delivery_file,
        )
