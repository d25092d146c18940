"""The app's container: every environment variable it sets is one the app reads."""

import difflib
from collections.abc import Iterator

from gitops.core.manifests import dig
from gitops.model.app_routes import app_of_origin
from gitops.model.serving import knative_services
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check


@env_check("app-env")
def unknown_app_variables(ctx: EnvContext) -> Iterator[Finding]:
    """An env var on an app's container that the app never reads (a typo such as MAX_BODY_BYTE is a silent no-op)."""
    for ksvc in knative_services(ctx.objects):
        app = app_of_origin(ctx.render.origin(ksvc))
        code = ctx.app_code(app) if app else None
        known = code.settings if code else None
        if not known:
            continue
        containers = dig(ksvc, "spec", "template", "spec", "containers") or []
        for i, container in enumerate(containers):
            for j, entry in enumerate(container.get("env") or []):
                name = entry.get("name")
                if not name or name in known:
                    continue
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"did you mean {close[0]}?" if close else f"it reads: {', '.join(sorted(known))}"
                yield ctx.finding(
                    "app-env",
                    ksvc,
                    f"container {container.get('name')} sets {name}, which the {app} app never reads ({hint}); "
                    f"the names it reads live in apps/{app}/src/{app}/settings.py"
                    + (f" (judged against {code.describe()})" if code and code.image else ""),
                    field=f"spec.template.spec.containers[{i}].env[{j}]",
                )
