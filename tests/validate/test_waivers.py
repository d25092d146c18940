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
