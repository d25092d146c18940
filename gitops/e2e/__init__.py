"""`make e2e`, `make replay`, `make bench-e2e`: the event path through Knative's own Kafka data plane (docs/e2e.md)."""
