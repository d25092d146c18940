"""Alerts that can fire and reach a person who knows what to do.

A PrometheusRule is accepted by its schema whatever its expressions say: a metric name from memory, or a label the
component never sets, makes an alert that stays silent forever. So every alert (and every Grafana dashboard panel,
gitops/validate/checks/dashboards.py) is held to the metrics the components export (gitops.model.metrics, from
their 1.23 sources). Each alert carries what a person needs (prometheus-operator's and Strimzi's conventions:
`severity`, `summary`, `description`, a `runbook_url` into docs/operations.md that exists), and its severity follows
the environment's `production` fact: production pages, every other environment tickets.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path

from gitops.core import manifests
from gitops.model.metrics import Alert, alerts, template_labels, unknown_names
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

CHECK = "alert-rules"
RUNBOOKS = "docs/operations.md"
SEVERITY = {True: "page", False: "ticket"}  # environments.yaml `production`
ANNOTATIONS = ("summary", "description", "runbook_url")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def runbook_anchors(root: Path) -> set[str]:
    path = root / RUNBOOKS
    return {github_anchor(m.group(1)) for m in _HEADING.finditer(path.read_text())} if path.is_file() else set()


def _where(alert: Alert) -> str:
    return f"alert {alert.name} (group {alert.group})"


@env_check(CHECK)
def check_alert_rules(ctx: EnvContext) -> Iterator[Finding]:
    """Alerts name only exported metrics and labels, carry their annotations and a real runbook, page only in prod.

    Each has severity, summary, description and a runbook_url anchor of docs/operations.md that exists; severity
    is `page` where environments.yaml says `production: true`, `ticket` elsewhere."""
    anchors = runbook_anchors(ctx.root)
    wanted = SEVERITY[ctx.is_production]
    for alert in alerts(ctx.objects):
        labels = alert.spec.get("labels") or {}
        annotations = alert.spec.get("annotations") or {}
        field = f"spec.groups.{alert.group}.rules.{alert.index}"
        for problem in unknown_names(str(alert.spec.get("expr", "")), template_labels(annotations)):
            yield ctx.finding(
                CHECK,
                alert.rule,
                f"{_where(alert)}: {problem}, so it can never fire; use the names in gitops/model/metrics.py "
                "(from the component's source)",
            )
        severity = labels.get("severity")
        if severity != wanted:
            yield ctx.finding(
                CHECK,
                alert.rule,
                f"{_where(alert)}: severity {severity!r}, but {ctx.env} is "
                f"{'a production' if ctx.is_production else 'a non-production'} environment (environments.yaml): "
                f"it must be {wanted!r}; include components/alerts-{wanted} in overlays/{ctx.env}/kustomization.yaml",
                field=field,
            )
        for key in ANNOTATIONS:
            if not str(annotations.get(key) or "").strip():
                yield ctx.finding(CHECK, alert.rule, f"{_where(alert)}: no annotation {key!r}")
        url = str(annotations.get("runbook_url") or "")
        if url:
            page, _, anchor = url.partition("#")
            if not page.endswith(RUNBOOKS) or anchor not in anchors:
                yield ctx.finding(
                    CHECK,
                    alert.rule,
                    f"{_where(alert)}: runbook_url {url} is not a heading of {RUNBOOKS} "
                    f"(add `### {alert.name}` there, or point at an existing anchor)",
                )


DASHBOARD_LABEL = ("grafana_dashboard", "1")  # Grafana's dashboard sidecar convention


def _panels(node: object) -> Iterator[dict]:
    """Every panel of a dashboard, rows' nested panels included."""
    if isinstance(node, dict):
        if "targets" in node:
            yield node
        for child in node.get("panels") or []:
            yield from _panels(child)


@env_check("dashboard-queries")
def check_dashboard_queries(ctx: EnvContext) -> Iterator[Finding]:
    """Grafana dashboards (ConfigMaps labelled grafana_dashboard: "1") query only exported metrics and labels."""
    for config in manifests.of_kind(ctx.objects, "", "ConfigMap"):
        labels = manifests.meta(config).get("labels") or {}
        if labels.get(DASHBOARD_LABEL[0]) != DASHBOARD_LABEL[1]:
            continue
        for key, text in (config.get("data") or {}).items():
            try:
                dashboard = json.loads(text)
            except ValueError as error:
                yield ctx.finding("dashboard-queries", config, f"data.{key} is not JSON: {error}")
                continue
            for panel in _panels(dashboard):
                for target in panel.get("targets") or []:
                    legend = template_labels(
                        {"legend": str(target.get("legendFormat", "")).replace("{{", "{{ $labels.")}
                    )
                    for problem in unknown_names(str(target.get("expr", "")), legend):
                        yield ctx.finding(
                            "dashboard-queries",
                            config,
                            f"data.{key} panel {panel.get('title')!r}: {problem}, so it stays empty; use the names "
                            "in gitops/model/metrics.py (from the component's source)",
                        )
