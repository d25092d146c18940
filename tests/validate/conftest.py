"""Fixtures of the validate tests: the JSON schemas kubeconform checks against, built once per module."""

from pathlib import Path

import pytest

from gitops.core.paths import argocd_crds_dir
from gitops.validate import schemas


@pytest.fixture(scope="module")
def crd_dir(renders) -> Path:
    crds = [o for o in renders["prod"].objects if o["kind"] == "CustomResourceDefinition"]
    return schemas.crd_schemas(crds, sorted(argocd_crds_dir().glob("*.yaml")))
