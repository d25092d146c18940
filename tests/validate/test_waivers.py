"""Waivers: a finding is waived only by an exact check, environment, object and message; otherwise it fails."""

from gitops.validate import waivers
from gitops.validate.findings import Finding


def test_waiver_needs_exact_object_and_message():
    finding = Finding("prod-policy", "prod", "Deployment a/b", "x", "image 'e:1' is not pinned")
    waiver = waivers.Waiver("prod-policy", "prod", "Deployment a/b", "'e:1'", "why")
    assert waivers.apply([finding], [waiver]) == ([], [(finding, waiver)])
    other = waivers.Waiver("prod-policy", "dev", "Deployment a/b", "'e:1'", "why")
    failing, waived = waivers.apply([finding], [other])
    assert waived == [] and [f.check for f in failing] == ["prod-policy", "waivers"]


def test_a_waiver_is_judged_only_when_its_environment_is_validated():
    """`gitops validate dev` (hydrate.yaml's dev job) must not fail on prod's waiver, which only a prod run can
    match; a waiver for what every run checks (argocd files) is judged in every run."""
    prod = waivers.Waiver("prod-policy", "prod", "Deployment a/b", "'e:1'", "why")
    argocd = waivers.Waiver("schema", "argocd", "AppProject argocd/x", "y", "why")
    known = ["dev", "prod"]
    assert waivers.judged([prod, argocd], ["dev"], known) == [argocd]
    assert waivers.judged([prod, argocd], ["dev", "prod"], known) == [prod, argocd]
    failing, _ = waivers.apply([], waivers.judged([prod], ["dev"], known))
    assert failing == []
    failing, _ = waivers.apply([], waivers.judged([prod], ["prod"], known))
    assert [f.message for f in failing] == ["stale waiver for prod-policy: it matches no finding"]
