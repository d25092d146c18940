//go:build tools

// The upstream mains this module builds as they are (hack/install-tools.sh: `go build <package>`), listed so that
// go.mod and go.sum pin them.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "knative.dev/eventing-kafka-broker/control-plane/cmd/kafka-controller"
)
