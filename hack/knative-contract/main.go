// Command knative-contract computes the data plane's egress configuration (proto/contract.proto EgressConfig) of a
// Kafka Broker's Triggers and a KafkaSource with the Knative control plane's own functions (eventing-kafka-broker
// control-plane/pkg/core/config: EgressConfigFromDelivery, MergeEgressConfig), at the version pinned in go.mod.
// gitops/e2e/contracts.py writes the rest of the contract and resolves addresses to loopback ones; here the
// dead-letter sink is left out (resolving it needs an API server) and Python adds its local URL.
//
// Input (stdin): {"egresses": [{"delivery": <DeliverySpec>, "parent": <DeliverySpec or null>,
// "defaultBackoffDelayMs": N}, ...]}: `delivery` is the object's own, `parent` the Broker's for a Trigger.
// Output (stdout): {"egressConfigs": [<EgressConfig as protobuf JSON, or null>, ...]}; exit 2 on bad input.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/encoding/protojson"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	duck "knative.dev/eventing/pkg/apis/duck/v1"

	coreconfig "knative.dev/eventing-kafka-broker/control-plane/pkg/core/config"
	"knative.dev/eventing-kafka-broker/control-plane/pkg/contract"
)

type egressInput struct {
	Delivery              *duck.DeliverySpec `json:"delivery"`
	Parent                *duck.DeliverySpec `json:"parent"`
	DefaultBackoffDelayMs uint64             `json:"defaultBackoffDelayMs"`
}

type input struct {
	Egresses []egressInput `json:"egresses"`
}

type output struct {
	EgressConfigs []json.RawMessage `json:"egressConfigs"`
}

func withoutDeadLetterSink(d *duck.DeliverySpec) *duck.DeliverySpec {
	if d == nil {
		return nil
	}
	c := d.DeepCopy()
	c.DeadLetterSink = nil
	return c
}

func egressConfig(d *duck.DeliverySpec, defaultMs uint64) (*contract.EgressConfig, error) {
	// The resolver is only used for the dead-letter sink, which is removed first.
	return coreconfig.EgressConfigFromDelivery(context.Background(), nil, &metav1.ObjectMeta{}, withoutDeadLetterSink(d), defaultMs)
}

func run(in io.Reader, out io.Writer) error {
	var req input
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return fmt.Errorf("stdin is not {\"egresses\": [...]}: %w", err)
	}
	res := output{EgressConfigs: []json.RawMessage{}}
	marshal := protojson.MarshalOptions{UseProtoNames: false, EmitUnpopulated: false}
	for i, e := range req.Egresses {
		own, err := egressConfig(e.Delivery, e.DefaultBackoffDelayMs)
		if err != nil {
			return fmt.Errorf("egress %d: %w", i, err)
		}
		parent, err := egressConfig(e.Parent, e.DefaultBackoffDelayMs)
		if err != nil {
			return fmt.Errorf("egress %d parent: %w", i, err)
		}
		merged := coreconfig.MergeEgressConfig(own, parent)
		if merged == nil {
			res.EgressConfigs = append(res.EgressConfigs, json.RawMessage("null"))
			continue
		}
		raw, err := marshal.Marshal(merged)
		if err != nil {
			return err
		}
		res.EgressConfigs = append(res.EgressConfigs, raw)
	}
	return json.NewEncoder(out).Encode(res)
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "knative-contract: %v\n", err)
		os.Exit(2)
	}
}
