"""gitops deployer-rbac: the deployer's ClusterRole is derived from the render."""

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
