"""What an app under apps/<name>/ promises at run time (dedup window, shutdown, protocols), read from the app itself.

The app package `<name>` exposes `<name>.runtime_facts.runtime_facts(env)`: each fact as its own readers compute it
from the container's env, with the variable that sets it (apps/notifications/src/notifications/runtime_facts.py).
Checks compare the render against these (windows, shutdown, protocols), never against copied numbers.
"""

import importlib
from collections.abc import Mapping
from dataclasses import dataclass

from gitops.core.manifests import Obj, dig
from gitops.model.app_routes import app_of_origin


@dataclass(frozen=True)
class AppFact:
    value: float | frozenset[str]
    variable: str  # the env var that sets it (or the module that decides it)
    from_env: bool  # set by the container's env (else the app's default)

    def number(self) -> float:
        return float(self.value)  # type: ignore[arg-type]


def literal_env(container: Mapping) -> dict[str, str]:
    """The container's env entries with a literal value (valueFrom cannot be known from the render)."""
    return {
        str(e["name"]): str(e["value"])
        for e in container.get("env") or []
        if isinstance(e, Mapping) and e.get("name") and e.get("value") is not None
    }


def serving_container(ksvc: Obj) -> tuple[int, dict]:
    """The Knative Service's serving container (the only one, or the one with a port) and its index."""
    containers = dig(ksvc, "spec", "template", "spec", "containers") or []
    if len(containers) == 1:
        return 0, containers[0]
    return next(((i, c) for i, c in enumerate(containers) if c.get("ports")), (0, containers[0] if containers else {}))


def app_facts(app_name: str, env: Mapping[str, str]) -> dict[str, AppFact] | None:
    """None when the app does not say (no `runtime_facts`) or its own readers refuse the env (the server would not
    start: other checks and the pod's readiness say so)."""
    try:
        module = importlib.import_module(f"{app_name.replace('-', '_')}.runtime_facts")
    except ImportError:
        return None
    reader = getattr(module, "runtime_facts", None)
    if not callable(reader):
        return None
    try:
        facts = reader(dict(env))
    except ValueError:
        return None
    return {name: AppFact(value, variable, variable in env) for name, (value, variable) in facts.items()}


def ksvc_app_facts(ksvc: Obj, origin: str) -> tuple[str, dict[str, AppFact]] | None:
    """(app name, its facts under the Knative Service's serving container env), for a Service built from apps/."""
    app = app_of_origin(origin)
    if not app:
        return None
    _, container = serving_container(ksvc)
    facts = app_facts(app, literal_env(container))
    return (app, facts) if facts else None


def settings_file(app: str) -> str:
    """Where an app's defaults live, for a finding that names the app's side."""
    return f"apps/{app}/src/{app.replace('-', '_')}/settings.py"
