"""The environments and their facts, read from environments.yaml at the repository root (the one place).

A fork adds an environment by adding overlays/<name>/ and an entry in environments.yaml; every verb, check and
test reads the facts through this module, so nothing else names an environment in code.

    from gitops.core import environments
    envs = environments.load(root)            # raises UserError (one line) if the file and overlays disagree
    envs.names                                # ["dev", "prod"], sorted
    envs.is_production("prod")                # production policy applies (digest pins, replication, hardening)
    envs.get("dev").automated_sync            # Argo CD syncs it automatically (prune + selfHeal)
    envs.get("dev").destination               # the Application's destination {server|name: ...}
    envs.get("dev").load_balancer             # the cluster can give a LoadBalancer Service an address
    envs.get("prod").kafka_broker_losses      # Kafka brokers that may be lost at once: no acked event lost, writes go on
    envs.get("prod").scale_to_zero            # false: the subscriber promises no cold start (warm pods, kept by drains)

`load` checks the file against the overlays in both directions: an overlay without an entry would otherwise be
checked as non-production by default, and an entry without an overlay names nothing Argo CD can sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gitops.core.errors import UserError, yaml_error
from gitops.core.paths import REPO_ROOT, overlay_names

FILE = "environments.yaml"
RECIPE = "see docs/forking.md, 'Add an environment'"
FIELDS = {
    "production": bool,
    "automated_sync": bool,
    "destination": dict,
    "load_balancer": bool,
    "kafka_broker_losses": int,
    "scale_to_zero": bool,
}
# Optional facts, with the value an entry without them has.
OPTIONAL: dict[str, tuple[type, Any]] = {
    # Secrets the environment's objects read that no manifest declares, because they are created out of band
    # (by hand, or by a controller this repository does not ship): `make preflight` accepts them as present.
    "out_of_band_secrets": (list, ()),
}
EXAMPLES = {
    bool: "true or false",
    int: "a whole number >= 0",
    dict: "{server: https://...} or {name: <cluster>}",
    list: "[name, ...]",
}


@dataclass(frozen=True)
class Environment:
    name: str
    production: bool
    automated_sync: bool
    destination: dict[str, str]
    load_balancer: bool
    # The judgments of the durability and capacity checks (docs/checks.md): how many Kafka brokers may fail at once
    # while no acknowledged event is lost and writes go on, and whether the subscriber may scale to zero (a cold
    # start on the first event after a quiet spell). Defaults are the weakest promise, for code that builds one.
    kafka_broker_losses: int = 0
    scale_to_zero: bool = True
    out_of_band_secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Environments:
    by_name: dict[str, Environment]

    @property
    def names(self) -> list[str]:
        return sorted(self.by_name)

    def get(self, env: str) -> Environment:
        if env not in self.by_name:
            raise UserError(
                f"unknown environment {env!r} (known: {', '.join(self.names) or 'none'})",
                where=FILE,
                fix=RECIPE,
            )
        return self.by_name[env]

    def is_production(self, env: str) -> bool:
        return self.get(env).production


def load(root: Path = REPO_ROOT) -> Environments:
    path = root / FILE
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise UserError("missing", where=FILE, fix=f"restore it from git or create it ({RECIPE})") from None
    return _load(path, stat.st_mtime_ns, stat.st_size, tuple(overlay_names(root)))


@cache
def _load(path: Path, _mtime: int, _size: int, overlays: tuple[str, ...]) -> Environments:
    """Parsed once per content version (the stat fields are the cache key), so checks may call load() freely."""
    try:
        doc = YAML(typ="safe").load(path.read_text())
    except YAMLError as error:
        raise yaml_error(path, path.parent, error) from None
    entries = (doc or {}).get("environments") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise UserError("has no `environments:` mapping", where=FILE, fix=RECIPE)
    found = {name: _environment(str(name), fields) for name, fields in entries.items()}
    for name in overlays:
        if name not in found:
            raise UserError(
                f"overlays/{name}/ has no entry", where=FILE, fix=f"add `{name}:` under `environments:` ({RECIPE})"
            )
    for name in found:
        if name not in overlays:
            raise UserError(
                f"environment {name!r} has no overlays/{name}/kustomization.yaml",
                where=FILE,
                fix=f"add the overlay or remove the entry ({RECIPE})",
            )
    return Environments(found)


def _environment(name: str, fields: Any) -> Environment:
    if not isinstance(fields, dict):
        raise UserError(f"environment {name!r} is not a mapping", where=FILE, fix=f"give it {', '.join(FIELDS)}")
    for field, kind in FIELDS.items():
        if field in fields and fields[field] is None:  # `automated_sync:` with nothing after the colon
            raise UserError(
                f"environment {name!r}: `{field}` is empty", where=FILE, fix=f"write {EXAMPLES[kind]} after the colon"
            )
        value = fields.get(field)
        if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 0)):
            got = "missing" if field not in fields else f"got {fields[field]!r}"
            raise UserError(
                f"environment {name!r}: `{field}` must be {EXAMPLES[kind]} ({got})",
                where=FILE,
                fix=RECIPE,
            )
    for field, (kind, _default) in OPTIONAL.items():
        value = fields.get(field)
        if field in fields and not (isinstance(value, kind) and all(isinstance(v, str) for v in value)):
            raise UserError(
                f"environment {name!r}: `{field}` must be a list of names, {EXAMPLES[kind]} (got {value!r})",
                where=FILE,
                fix=RECIPE,
            )
    unknown = sorted(set(fields) - set(FIELDS) - set(OPTIONAL))
    if unknown:
        raise UserError(
            f"environment {name!r}: unknown field(s) {', '.join(unknown)}",
            where=FILE,
            fix=f"expected {', '.join(FIELDS)} (optional: {', '.join(OPTIONAL)})",
        )
    destination = {str(k): str(v) for k, v in fields["destination"].items()}
    if set(destination) not in ({"server"}, {"name"}):
        raise UserError(
            f"environment {name!r}: destination must have exactly one of server or name (got {destination})",
            where=FILE,
            fix="as in the Argo CD Application's spec.destination",
        )
    return Environment(
        name,
        fields["production"],
        fields["automated_sync"],
        destination,
        fields["load_balancer"],
        fields["kafka_broker_losses"],
        fields["scale_to_zero"],
        tuple(fields.get("out_of_band_secrets") or ()),
    )


def github_matrix(envs: Environments) -> dict[str, list[dict[str, object]]]:
    """The hydrate workflow's matrix: one entry per environment; `reviewed` (its production fact) sends the
    hydrated commit through a pull request into its deploy branch instead of pushing it there."""
    return {"include": [{"env": name, "reviewed": envs.get(name).production} for name in envs.names]}


def main(argv: list[str] | None = None, root: Path = REPO_ROOT) -> int:
    """`gitops environments`: the environments of environments.yaml, one per line (or as a workflow matrix)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument(
        "--github-matrix",
        action="store_true",
        help="print `matrix=<JSON>`, a $GITHUB_OUTPUT line the workflows read with fromJSON (.github/workflows)",
    )
    args = parser.parse_args(argv)
    envs = load(root)
    if args.github_matrix:
        print(f"matrix={json.dumps(github_matrix(envs), separators=(',', ':'))}")
    else:
        print("\n".join(envs.names))
    return 0
