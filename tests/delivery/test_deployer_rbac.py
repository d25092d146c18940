"""gitops deployer-rbac: the deployer's ClusterRole is derived from the render."""

import re
from pathlib import Path

import pytest

from gitops.core.render import RenderError, RenderResult
from gitops.delivery import deployer_rbac


def test_deployer_rbac_is_derived_from_the_render(renders) -> None:
    role = next(o for o in deployer_rbac.derive(renders["dev"]) if o["kind"] == "ClusterRole")
    by_group = {r["apiGroups"][0]: r for r in role["rules"] if "resourceNames" not in r}
    assert by_group["sources.knative.dev"]["resources"] == ["kafkasources"]  # the CRD's spec.names.plural
    assert "horizontalpodautoscalers" in by_group["autoscaling"]["resources"]
    assert "argoproj.io" not in by_group  # nothing of Argo CD's own
    escalate = next(r for r in role["rules"] if r.get("verbs") == ["escalate"] and r["resources"] == ["clusterroles"])
    assert "knative-serving-admin" in escalate["resourceNames"]
    assert deployer_rbac.resource_of("NetworkPolicy", {}, "networking.k8s.io") == "networkpolicies"
    assert deployer_rbac.resource_of("Ingress", {}, "networking.k8s.io") == "ingresses"


def test_write_prints_each_environment_with_its_time_and_the_files_it_wrote(
    renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / deployer_rbac.DEPLOYERS_DIR).mkdir(parents=True)
    monkeypatch.setattr(deployer_rbac, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(deployer_rbac, "render_env", lambda env: renders[env])
    assert deployer_rbac.main(["dev", "prod", "--write"]) == 0
    err = capsys.readouterr().err
    for env in ("dev", "prod"):
        assert re.search(rf"^deployer-rbac: {env}: rendered, RBAC derived \d+\.\ds$", err, re.M), err
        assert f"deployer-rbac: wrote argocd/deployers/{env}.yaml\n" in err
        assert (tmp_path / deployer_rbac.deployer_file(env)).read_text() == deployer_rbac.render_file(renders[env])


def test_write_leaves_every_file_alone_when_one_environment_fails(
    renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / deployer_rbac.DEPLOYERS_DIR).mkdir(parents=True)
    monkeypatch.setattr(deployer_rbac, "REPO_ROOT", tmp_path)

    def render_env(env: str) -> RenderResult:
        if env == "prod":
            raise RenderError("kustomize build failed: boom", where="overlays/prod")
        return renders[env]

    monkeypatch.setattr(deployer_rbac, "render_env", render_env)
    assert deployer_rbac.main(["dev", "prod", "--write"]) == 1
    assert list((tmp_path / deployer_rbac.DEPLOYERS_DIR).iterdir()) == []  # dev's render worked: not written either
    assert (
        "deployer-rbac prod: overlays/prod: kustomize build failed: boom; nothing was written"
        in capsys.readouterr().err
    )
