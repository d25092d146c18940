"""The `gitops` CLI and the domain packages behind it (docs/architecture.md).

Sub-packages, bottom to top. A module imports only from its own sub-package and the ones before it in LAYERS
(tests/test_architecture.py enforces it), so the foundation never learns about the gate, and the gate never about
the review diff built on top of it. cli.py sits above all of them and reaches them only through its verb table.
"""

LAYERS = ("core", "model", "events", "upstream", "delivery", "e2e", "validate", "diff")
