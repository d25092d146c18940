"""What a check reports and what it is given.

A Finding names the environment, the object, the file it comes from and what is wrong. An environment check gets
one rendered environment (EnvContext); a repository check gets every environment at once (RepoContext), for facts
that span them, such as the Argo CD files. Checks register in gitops/validate/registry.py.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gitops.core import environments, manifests
from gitops.core.cache import ResultCache, disabled
from gitops.core.render import RenderResult, stand_in_note
from gitops.model.app_code import AppCode, code_for
from gitops.model.app_routes import app_of_origin


@dataclass(frozen=True)
class Finding:
    check: str
    env: str
    obj: str
    origin: str
    message: str

    def __str__(self) -> str:
        return f"[{self.env}] {self.obj} ({self.origin}): {self.message}  <{self.check}>"


@dataclass(frozen=True)
class Cause:
    """One cause, however many environments it reaches: findings that differ only in their environment (a base
    file's mistake, a kustomize error every overlay inherits) print as one line naming them all (issue 28)."""

    check: str
    envs: tuple[str, ...]
    obj: str
    origin: str
    message: str

    def __str__(self) -> str:
        return f"[{', '.join(self.envs)}] {self.obj} ({self.origin}): {self.message}  <{self.check}>"


def by_cause(findings: Iterable[Finding]) -> list[Cause]:
    """`findings` merged by (check, object, file, message), in the order of each cause's first finding."""
    causes: dict[tuple[str, str, str, str], list[str]] = {}
    for f in findings:
        envs = causes.setdefault((f.check, f.obj, f.origin, f.message), [])
        if f.env not in envs:
            envs.append(f.env)
    return [Cause(check, tuple(envs), obj, origin, message) for (check, obj, origin, message), envs in causes.items()]


# A field path in an upstream message: Knative's apis.FieldError ends each line with `: <path>[, <path>]`
# (knative.dev/pkg apis/field_error.go Error(): "%v: %v" of the message and the joined paths); kubeconform's
# jsonschema errors quote a JSON pointer (`at '/spec/delivery/backoffDelay'`), and a strict miss names the property
# (`additionalProperties 'x' not allowed`).
_KNATIVE_PATHS = re.compile(r": ((?:spec|metadata|data|status)[^\s,:]*(?:, (?:spec|metadata|data)[^\s,:]*)*)\s*$")
_POINTER = re.compile(r"'(/[^']*)'")
_EXTRA_PROPERTY = re.compile(r"additionalProperties '([^']+)' not allowed")


def message_fields(message: str) -> list[str]:
    """The field paths an upstream refusal names, as dotted paths (`spec.delivery.backoffDelay`), most specific
    first; [] when it names none."""
    found: list[str] = []
    for line in message.splitlines():
        match = _KNATIVE_PATHS.search(line.strip())
        if match:
            found += [p.strip() for p in match.group(1).split(",")]
    for pointer in _POINTER.findall(message):
        steps = [s.replace("~1", "/").replace("~0", "~") for s in pointer.split("/")[1:] if s]
        extra = _EXTRA_PROPERTY.search(message)
        if extra:
            steps.append(extra.group(1))
        if steps:
            found.append("".join(f"[{s}]" if "." in s or "/" in s else f".{s}" for s in steps).lstrip("."))
    return found


@dataclass
class EnvContext:
    root: Path
    render: RenderResult
    # Where a check that runs a tool per object may keep its answers (validate's; `--no-cache`: stores nothing).
    cache: ResultCache = field(default_factory=disabled)

    @property
    def env(self) -> str:
        return self.render.env

    @property
    def is_production(self) -> bool:
        """Whether this environment is held to the production policy (environments.yaml `production`)."""
        return environments.load(self.root).is_production(self.env)

    @property
    def objects(self) -> list[manifests.Obj]:
        return self.render.objects

    @property
    def with_stand_ins(self) -> list[manifests.Obj]:
        """The render plus the objects of left-out release assets rebuilt from their upstream sources
        (RenderResult.stand_ins): for checks of shapes (labels, replicas, securityContext) that would otherwise skip
        the Kafka data plane. A finding on a stand-in says so by itself (see `finding`)."""
        return self.render.objects + self.render.stand_ins

    def app_code(self, app: str) -> AppCode:
        """The routes and settings names of the code `app`'s image in this environment was built from (its record
        under images/, model/app_code.py), or of the working tree when that image has no record."""
        image = None
        for obj in self.objects:
            if obj.get("kind") == "Service" and app_of_origin(self.render.origin(obj)) == app:
                containers = manifests.dig(obj, "spec", "template", "spec", "containers") or []
                image = containers[0].get("image") if containers else None
                break
        return code_for(self.root, app, image)

    def stood_in_url(self, obj: manifests.Obj) -> str | None:
        """The left-out asset URL `obj` stands in for, or None when it is part of the render itself."""
        origin = self.render.origin(obj)
        return next((url for url in self.render.stood_in if origin.startswith(url + " ")), None)

    def finding(
        self,
        check: str,
        obj: manifests.Obj | None,
        message: str,
        origin: str | None = None,
        field: str | None = None,
    ) -> Finding:
        """A finding on `obj`, named after the file that set `field` (an overlay patch, say, from kustomize's
        origin and transformer annotations) when the check gives it, else the file the object was loaded from."""
        ref = str(manifests.ObjKey.of(obj)) if obj is not None else "-"
        if origin is None and obj is not None:
            key = manifests.ObjKey.of(obj)
            origin = self.render.field_origin(key, field) if field else self.render.origin(obj)
        stood_in = self.stood_in_url(obj) if obj is not None else None
        if stood_in is not None:
            message += f" ({stand_in_note(stood_in)})"
        return Finding(check, self.env, ref, origin or "-", message)


@dataclass
class RepoContext:
    root: Path
    renders: dict[str, RenderResult]
