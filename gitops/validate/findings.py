"""What a check reports and what it is given.

A Finding names the environment, the object, the file it comes from and what is wrong. An environment check gets
one rendered environment (EnvContext); a repository check gets every environment at once (RepoContext), for facts
that span them, such as the Argo CD files. Checks register in gitops/validate/registry.py.
"""

from dataclasses import dataclass, field
from pathlib import Path

from gitops.core import environments, manifests
from gitops.core.cache import ResultCache, disabled
from gitops.core.render import RenderResult, stand_in_note


@dataclass(frozen=True)
class Finding:
    check: str
    env: str
    obj: str
    origin: str
    message: str

    def __str__(self) -> str:
        return f"[{self.env}] {self.obj} ({self.origin}): {self.message}  <{self.check}>"


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
