"""Shared by the diff tests: objects of a render by name, and a diff of prod before and after a mutation."""

import copy
from collections.abc import Callable

from gitops.core import manifests
from gitops.core.manifests import Obj
from gitops.core.render import RenderResult
from gitops.diff.engine import EnvDiff, diff_env

Mutation = Callable[[list[Obj]], None]


def _get(objects: list[Obj], group: str, kind: str, namespace: str, name: str) -> Obj:
    found = manifests.find(objects, group, kind, namespace, name)
    assert found is not None, f"{kind} {namespace}/{name} missing from the render"
    return found


def broker_config(objects: list[Obj]) -> Obj:
    return _get(objects, "", "ConfigMap", "notifications", "kafka-broker-config")


def set_partitions(value: str) -> Mutation:
    return lambda objects: broker_config(objects)["data"].__setitem__("default.topic.partitions", value)


def diff_prod(renders: dict[str, RenderResult], mutate: Mutation, *, before: Mutation | None = None) -> EnvDiff:
    old = copy.deepcopy(renders["prod"].objects)
    if before is not None:
        before(old)
    new = copy.deepcopy(old)
    mutate(new)
    return diff_env("prod", old, new)
