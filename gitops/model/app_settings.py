"""The environment variables an app under apps/<name>/ reads, from the app itself.

The app package `<name>` exposes `<name>.settings.environment_variables()`: every name its settings readers read
(apps/notifications/src/notifications/settings.py records them from the readers). Checks compare the env of the
app's container against it, never against a copied list.
"""

import importlib
from functools import cache


@cache
def environment_variables(app_name: str) -> frozenset[str] | None:
    """None when the app does not say (no `settings.environment_variables`): nothing to compare against."""
    try:
        module = importlib.import_module(f"{app_name.replace('-', '_')}.settings")
    except ImportError:
        return None
    names = getattr(module, "environment_variables", None)
    return frozenset(names()) if callable(names) else None
