"""Semantic checks: what schemas cannot see, but a real cluster (or a silent non-delivery) would.

Each check module exposes functions registered below. An environment check gets one rendered environment; a
repository check gets every environment at once (for facts that span them, such as argocd-app.yaml). Both yield
Findings that name the environment, the object, the file it comes from and what is wrong.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from gitops import manifests
from gitops.render import RenderResult


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

    @property
    def env(self) -> str:
        return self.render.env

    @property
    def objects(self) -> list[manifests.Obj]:
        return self.render.objects

    def finding(self, check: str, obj: manifests.Obj | None, message: str, origin: str | None = None) -> Finding:
        ref = str(manifests.ObjKey.of(obj)) if obj is not None else "-"
        where = origin or (self.render.origin(obj) if obj is not None else "-")
        return Finding(check, self.env, ref, where, message)


@dataclass
class RepoContext:
    root: Path
    renders: dict[str, RenderResult]


EnvCheck = Callable[[EnvContext], Iterable[Finding]]
RepoCheck = Callable[[RepoContext], Iterable[Finding]]


def env_checks() -> list[EnvCheck]:
    from gitops.checks import (
        argocd,
        availability,
        eventing,
        identity,
        network_policy,
        pod_security,
        policy,
        serving,
        upstream,
    )

    return [
        *eventing.CHECKS,
        *serving.CHECKS,
        *policy.CHECKS,
        *network_policy.CHECKS,
        *identity.CHECKS,
        *availability.CHECKS,
        *pod_security.CHECKS,
        *upstream.CHECKS,
        *argocd.ENV_CHECKS,
    ]


def repo_checks() -> list[RepoCheck]:
    from gitops.checks import argocd, repo

    return [*repo.CHECKS, *argocd.REPO_CHECKS]
