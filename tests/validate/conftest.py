"""Fixtures of the validate tests: the JSON schemas kubeconform checks against, built once per module; the real
tree validated from scratch once per session."""

from pathlib import Path

import pytest

from gitops.core import render
from gitops.validate import schemas
from gitops.validate.run import Report, validate


@pytest.fixture(scope="module")
def crd_dir(renders) -> Path:
    crds = [o for o in renders["prod"].objects if o["kind"] == "CustomResourceDefinition"]
    return schemas.crd_schemas(crds, schemas.extra_crd_files())


@pytest.fixture(scope="session")
def validated_tree() -> tuple[Report, list[str]]:
    """validate() of the real tree with no cache (every result proved from scratch), once per session, with the
    overlays kustomize built for it (tests of the build count and of the cache both read it)."""
    built: list[str] = []
    real = render._kustomize_build
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render, "_kustomize_build", lambda path, work: built.append(path.name) or real(path, work))
        report = validate()
    return report, built
