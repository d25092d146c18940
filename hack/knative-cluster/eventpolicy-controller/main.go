// Command eventpolicy-controller runs only eventing v0.50.0's EventPolicy reconciler
// (knative.dev/eventing/pkg/reconciler/eventpolicy), the one reconciler of eventing's cmd/controller that the
// render's objects need in `make e2e` (docs/e2e.md): it resolves each EventPolicy's `from` references into
// status.from and marks it Ready. Same sharedmain as cmd/controller, so leader election, logging and the
// config-* ConfigMaps behave as in the rendered Deployment. One difference: sharedmain's health probe server
// listens on :8080 of every interface (knative.dev/pkg injection.HealthCheckDefaultPort); in a cluster each pod
// has its own network namespace, here kafka-controller shares this one and holds that port, so this main turns
// the probe server off.
package main

import (
	"knative.dev/pkg/injection/sharedmain"
	"knative.dev/pkg/signals"

	"knative.dev/eventing/pkg/reconciler/eventpolicy"
)

func main() {
	ctx := sharedmain.WithHealthProbesDisabled(signals.NewContext())
	sharedmain.MainWithContext(ctx, "controller", eventpolicy.NewController)
}
