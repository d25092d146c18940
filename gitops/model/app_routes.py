"""The HTTP routes an app under apps/<name>/ really serves, read from the app itself.

The app package `<name>` exposes `<name>.app.create_app()` returning an ASGI app whose `.routes` carry `path` and
`methods` (FastAPI/Starlette). Checks compare Trigger paths and probe paths against these, never a copied list.
"""

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class Route:
    method: str
    path: str


@cache
def served_routes(app_name: str) -> frozenset[Route]:
    module = importlib.import_module(f"{app_name.replace('-', '_')}.app")
    app = module.create_app()
    routes: set[Route] = set()
    for route in app.routes:
        for method in getattr(route, "methods", None) or ():
            routes.add(Route(method.upper(), route.path))
    return frozenset(routes)


def startup_problems(app_name: str, env: dict[str, str], *, production: bool) -> list[str] | None:
    """What the app itself says about starting with `env` (`<name>.oidc.configuration_problems`, the function its
    settings call at start-up; any non-empty answer means it exits), or None when the app has no such rule."""
    try:
        module = importlib.import_module(f"{app_name.replace('-', '_')}.oidc")
    except ModuleNotFoundError:
        return None
    rule = getattr(module, "configuration_problems", None)
    return list(rule(env, production=production)) if callable(rule) else None


def app_of_origin(origin: str) -> str | None:
    """apps/<name>/... -> <name>: the app whose code builds the image this manifest runs."""
    parts = origin.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "apps" else None


@cache
def topic_table(app_name: str) -> dict[str, Any] | None:
    """An app's `<name>.topics.TOPICS` table (the one place its topics are listed), or None for an app without one."""
    try:
        module = importlib.import_module(f"{app_name.replace('-', '_')}.topics")
    except ModuleNotFoundError:
        return None
    table = getattr(module, "TOPICS", None)
    return table if isinstance(table, dict) else None


def served_topics(app_name: str) -> dict[str, str] | None:
    """topic -> path for an app with a topic table, else None. Each entry's `.path` is the route its events are
    posted to."""
    table = topic_table(app_name)
    return None if table is None else {str(name): str(topic.path) for name, topic in table.items()}


def topics_file(app_name: str) -> str:
    """Where an app's topic table lives, relative to the repository (the file a finding names)."""
    package = app_name.replace("-", "_")
    return f"apps/{app_name}/src/{package}/topics.py"


def topic_writers(app_name: str) -> dict[str, str] | None:
    """topic -> who may write it (`<name>.topics.TOPICS[...].writers`: the Kafka principals its WRITE ACL grants,
    by name), or None for an app without a topic table. A topic that does not say gets its own name, so it is
    trusted with no other."""
    table = topic_table(app_name)
    if table is None:
        return None
    return {str(name): str(getattr(topic, "writers", None) or name) for name, topic in table.items()}
