"""Field-level comparison of two Kubernetes objects: the leaf paths where they differ, and each value on one line.

The diff engine (gitops/diff/engine.py) reports a change as these paths; validate names the field a hand-edited
hydrated file changed with them (`spec.delivery.retry: 2 → 5`).
"""

import json
from dataclasses import dataclass
from typing import Any


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any


def _step(key: str) -> str:
    return f"[{key}]" if any(c in key for c in "./ ") else f".{key}"


def _named(items: list[Any]) -> dict[str, Any] | None:
    """List items keyed by their `name` when every item has a distinct one (containers, ports, env, versions)."""
    if not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return None
    keyed = {i["name"]: i for i in items}
    return keyed if len(keyed) == len(items) else None


def field_changes(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """The leaf paths where `old` and `new` differ; a subtree added or removed whole is one change."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[FieldChange] = []
        for key in sorted(set(old) | set(new), key=str):
            out += field_changes(old.get(key, MISSING), new.get(key, MISSING), path + _step(str(key)))
        return out
    if isinstance(old, list) and isinstance(new, list) and old != new:
        old_named, new_named = _named(old), _named(new)
        if old_named is not None and new_named is not None and (old_named or new_named):
            out = []
            for name in sorted(set(old_named) | set(new_named)):
                out += field_changes(old_named.get(name, MISSING), new_named.get(name, MISSING), f"{path}[{name}]")
            if not out:  # same items, new order
                out = [FieldChange(path + " (order)", [*old_named], [*new_named])]
            return out
        if len(old) == len(new):
            out = []
            for index, (a, b) in enumerate(zip(old, new, strict=True)):
                out += field_changes(a, b, f"{path}[{index}]")
            return out
    if old == new:
        return []
    return [FieldChange(path.lstrip(".") or "(whole object)", old, new)]


def show(value: Any) -> str:
    """One value on one line, whole: a reviewer needs exactly the characters that changed."""
    if value is MISSING:
        return "(absent)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = text.replace("\n", "\\n")
    if isinstance(value, str) and (text == "" or text != text.strip()):
        text = json.dumps(value)
    return text
