// Command eventpolicy-controller runs only eventing v0.50.0's EventPolicy reconciler
// (knative.dev/eventing/pkg/reconciler/eventpolicy), the one reconciler of eventing's cmd/controller that the
// render's objects need in `make e2e` (docs/e2e.md): it resolves each EventPolicy's `from` references into
// status.from and marks it Ready. Same sharedmain as cmd/controller, so leader election, logging and the
// config-* ConfigMaps behave as in the rendered Deployment.
package main

import (
	"knative.dev/pkg/injection/sharedmain"

	"knative.dev/eventing/pkg/reconciler/eventpolicy"
)

func main() {
	sharedmain.Main("controller", eventpolicy.NewController)
}
