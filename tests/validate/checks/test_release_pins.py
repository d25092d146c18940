"""Release pins: one Knative release tag across the kustomizations, and a lock with exactly their URLs."""

from gitops.core.paths import REPO_ROOT
from gitops.validate.checks import release_pins
from gitops.validate.findings import RepoContext


def test_release_pins_one_version_and_an_exact_lock(tree_copy):
    kustomization = tree_copy / "base/platform/kustomization.yaml"
    text = kustomization.read_text()
    kustomization.write_text(
        text.replace("net-kourier/releases/download/knative-v1.23.0", "net-kourier/releases/download/knative-v1.22.0")
    )
    findings = list(release_pins.check_release_pins(RepoContext(tree_copy, {})))
    messages = sorted(f.message for f in findings)
    assert any("mix release tags: knative-v1.22.0 (1 assets), knative-v1.23.0 (13 assets)" in m for m in messages)
    assert any("not in base/platform/releases.lock.yaml" in m for m in messages)
    assert any("locked but no kustomization references it (stale)" in m for m in messages)
    assert list(release_pins.check_release_pins(RepoContext(REPO_ROOT, {}))) == []
