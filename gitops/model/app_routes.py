"""The HTTP routes an app under apps/<name>/ really serves, read from the app itself.

The app package `<name>` exposes `<name>.app.create_app()` returning an ASGI app whose `.routes` carry `path` and
`methods` (FastAPI/Starlette). Checks compare Trigger paths and probe paths against these, never a copied list.
"""

import importlib
from dataclasses import dataclass
from functools import cache


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


def production_problems(app_name: str, env: dict[str, str]) -> list[str] | None:
    """What the app itself says about running with `env` in production (`<name>.oidc.production_problems`, the
    function its settings call at start-up), or None when the app has no such rule."""
    try:
        module = importlib.import_module(f"{app_name.replace('-', '_')}.oidc")
    except ModuleNotFoundError:
        return None
    rule = getattr(module, "production_problems", None)
    return list(rule(env)) if callable(rule) else None


def app_of_origin(origin: str) -> str | None:
    """apps/<name>/... -> <name>: the app whose code builds the image this manifest runs."""
    parts = origin.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "apps" else None
