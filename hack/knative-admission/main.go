// Command knative-admission runs Knative's own admission webhooks (serving, eventing, eventing-kafka-broker, at
// the versions pinned in go.mod) over rendered manifests, offline, as if Argo CD created every object.
//
// Input (stdin): {"environments": {"<env>": [<object as JSON>, ...], ...}}
// Output (stdout): {"environments": {"<env>": [{"severity", "apiVersion", "kind", "namespace", "name",
// "webhook", "message"}, ...]}}; exit 0 whether or not there are findings (the caller decides), 2 on bad input.
//
// `knative-admission kafka-auth`: the Kafka auth contract over derived Secrets instead (kafkaauth.go).
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
