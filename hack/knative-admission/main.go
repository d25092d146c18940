// Command knative-admission runs Knative's own admission webhooks (serving, eventing, eventing-kafka-broker, at
// the versions pinned in go.mod) over rendered manifests, offline, as if Argo CD created every object.
//
// Input (stdin): {"environments": {"<env>": [<object as JSON>, ...], ...}}
// Output (stdout): {"environments": {"<env>": [{"severity", "apiVersion", "kind", "namespace", "name",
// "webhook", "message"}, ...]}}; exit 0 whether or not there are findings (the caller decides), 2 on bad input.
//
// `knative-admission kafka-auth`: the Kafka auth contract over derived Secrets instead (kafkaauth.go).
//
// `knative-admission mutate`: stdin {"objects": [...]} (one environment), stdout {"objects": [...]}: each object as
// the API server would store it after Knative's mutating webhooks (their defaults, e.g. a Trigger's
// eventing.knative.dev/broker label that kafka-controller selects Triggers by), null where a webhook refuses it.
// make e2e applies these, since its API server calls no webhooks.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type input struct {
	Environments map[string][]json.RawMessage `json:"environments"`
}

type output struct {
	Environments map[string][]Finding `json:"environments"`
}

// quietLogger discards upstream logging but turns Fatal (a config store's first load failing) into a panic that
// the watcher recovers and reports, instead of exiting the process.
func quietLogger() *zap.SugaredLogger {
	return zap.New(zapcore.NewNopCore(), zap.WithFatalHook(zapcore.WriteThenPanic)).Sugar()
}

func main() {
	mode := run
	if len(os.Args) > 1 && os.Args[1] == "kafka-auth" {
		mode = runKafkaAuth
	}
	if len(os.Args) > 1 && os.Args[1] == "mutate" {
		mode = runMutate
	}
	if err := mode(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "knative-admission: %v\n", err)
		os.Exit(2)
	}
}

func run(in io.Reader, out io.Writer) error {
	var req input
	dec := json.NewDecoder(in)
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("stdin is not {\"environments\": {...}}: %w", err)
	}
	envs := make([]string, 0, len(req.Environments))
	for env := range req.Environments {
		envs = append(envs, env)
	}
	sort.Strings(envs)
	res := output{Environments: map[string][]Finding{}}
	for _, env := range envs {
		findings, err := admitEnvironment(req.Environments[env])
		if err != nil {
			return fmt.Errorf("environment %s: %w", env, err)
		}
		if findings == nil {
			findings = []Finding{}
		}
		res.Environments[env] = findings
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

type mutateIO struct {
	Objects []json.RawMessage `json:"objects"`
}

func runMutate(in io.Reader, out io.Writer) error {
	var req mutateIO
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return fmt.Errorf("stdin is not {\"objects\": [...]}: %w", err)
	}
	env, err := admittedEnvironment(req.Objects)
	if err != nil {
		return err
	}
	res := mutateIO{Objects: make([]json.RawMessage, len(env.admitted))}
	for i, raw := range env.admitted {
		if raw == nil {
			res.Objects[i] = json.RawMessage("null")
			continue
		}
		res.Objects[i] = raw
	}
	return json.NewEncoder(out).Encode(res)
}
