"""The disruption controller's arithmetic: percentages rounded up, the budget's two forms, nothing set."""

import pytest

from gitops.model.disruption import disruptions_allowed, scaled_value


def pdb(**spec):
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "spec": spec}


@pytest.mark.parametrize("pods", [1, 2, 3, 4])
def test_upstream_80_percent_never_lets_a_small_component_drain(pods):
    # ceil(0.8 * n) == n for n <= 4: Knative's own PDBs at the HPA floors block every eviction.
    assert disruptions_allowed(pdb(minAvailable="80%"), pods) == 0


def test_80_percent_starts_allowing_at_five_pods():
    assert disruptions_allowed(pdb(minAvailable="80%"), 5) == 1


@pytest.mark.parametrize(
    ("spec", "pods", "allowed"),
    [
        ({"maxUnavailable": 1}, 2, 1),
        ({"maxUnavailable": 1}, 10, 1),
        ({"maxUnavailable": "20%"}, 2, 1),  # ceil(0.4) = 1 may go
        ({"maxUnavailable": "0%"}, 4, 0),
        ({"maxUnavailable": 0}, 4, 0),
        ({"minAvailable": 1}, 2, 1),
        ({"minAvailable": 1}, 1, 0),
        ({"minAvailable": "50%"}, 3, 1),  # ceil(1.5) = 2 must stay
        ({}, 3, 0),  # neither field: expectedCount stays 0
        ({"maxUnavailable": 1}, 0, 0),
    ],
)
def test_budget_forms(spec, pods, allowed):
    assert disruptions_allowed(pdb(**spec), pods) == allowed


def test_scaled_value_rounds_as_intstr():
    assert scaled_value("80%", 2, True) == 2
    assert scaled_value("80%", 2, False) == 1
    assert scaled_value(3, 10, True) == 3
    with pytest.raises(ValueError, match="invalid value for IntOrString"):
        scaled_value("eighty", 2, True)
