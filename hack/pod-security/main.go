// Command pod-security evaluates the pod templates of a manifest stream with the upstream Pod Security admission
// library (k8s.io/pod-security-admission), the code kube-apiserver runs, instead of a re-implementation.
//
// Usage: pod-security <version> < stream.yaml
//
// For every object that carries a pod template (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
// CronJob, and a Knative Service's revision template) it prints one JSON line: the object, and for the levels
// baseline and restricted at <version> (e.g. v1.34) whether the template is allowed and, if not, why.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

type template struct {
	Metadata struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

type verdict struct {
	Allowed bool     `json:"allowed"`
	Reasons []string `json:"reasons"`
}

type result struct {
	Kind      string             `json:"kind"`
	Group     string             `json:"group"`
	Namespace string             `json:"namespace"`
	Name      string             `json:"name"`
	Levels    map[string]verdict `json:"levels"`
}

// podTemplate returns the pod template of a workload, or nil for objects without one.
func podTemplate(obj object) (*template, error) {
	var spec map[string]json.RawMessage
	if len(obj.Spec) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(obj.Spec, &spec); err != nil {
		return nil, err
	}
	var raw json.RawMessage
	switch {
	case obj.Kind == "Pod" && obj.APIVersion == "v1":
		raw, _ = json.Marshal(map[string]json.RawMessage{"spec": obj.Spec})
	case obj.Kind == "CronJob":
		var job struct {
			Spec struct {
				Template json.RawMessage `json:"template"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(spec["jobTemplate"], &job); err != nil {
			return nil, err
		}
		raw = job.Spec.Template
	case strings.HasPrefix(obj.APIVersion, "apps/"), strings.HasPrefix(obj.APIVersion, "batch/"),
		obj.Kind == "Service" && strings.HasPrefix(obj.APIVersion, "serving.knative.dev/"):
		raw = spec["template"]
	}
	if len(raw) == 0 {
		return nil, nil
	}
	var tpl template
	if err := json.Unmarshal(raw, &tpl); err != nil {
		return nil, err
	}
	return &tpl, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: pod-security <version, e.g. v1.34> < stream.yaml")
		os.Exit(2)
	}
	version, err := api.ParseVersion(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "pod-security: bad version %q: %v\n", os.Args[1], err)
		os.Exit(2)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks())
	if err != nil {
		fmt.Fprintln(os.Stderr, "pod-security:", err)
		os.Exit(1)
	}
	input, err := io.ReadAll(bufio.NewReader(os.Stdin))
	if err != nil {
		fmt.Fprintln(os.Stderr, "pod-security:", err)
		os.Exit(1)
	}
	out := json.NewEncoder(os.Stdout)
	for _, doc := range bytes.Split(input, []byte("\n---")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var obj object
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			fmt.Fprintln(os.Stderr, "pod-security: unparsable document:", err)
			os.Exit(1)
		}
		tpl, err := podTemplate(obj)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pod-security: %s %s/%s: %v\n", obj.Kind, obj.Metadata.Namespace, obj.Metadata.Name, err)
			os.Exit(1)
		}
		if tpl == nil {
			continue
		}
		// A Knative revision spec is a PodSpec plus a few Knative fields; the PodSpec decoder ignores those.
		var podSpec corev1.PodSpec
		if err := json.Unmarshal(tpl.Spec, &podSpec); err != nil {
			fmt.Fprintf(os.Stderr, "pod-security: %s %s/%s: pod spec: %v\n", obj.Kind, obj.Metadata.Namespace, obj.Metadata.Name, err)
			os.Exit(1)
		}
		group := ""
		if i := strings.Index(obj.APIVersion, "/"); i >= 0 {
			group = obj.APIVersion[:i]
		}
		res := result{Kind: obj.Kind, Group: group, Namespace: obj.Metadata.Namespace, Name: obj.Metadata.Name, Levels: map[string]verdict{}}
		for _, level := range []api.Level{api.LevelBaseline, api.LevelRestricted} {
			meta := &podMeta{labels: tpl.Metadata.Labels, annotations: tpl.Metadata.Annotations}
			agg := policy.AggregateCheckResults(evaluator.EvaluatePod(api.LevelVersion{Level: level, Version: version}, meta.objectMeta(), &podSpec))
			v := verdict{Allowed: agg.Allowed, Reasons: []string{}}
			if !agg.Allowed {
				for i, reason := range agg.ForbiddenReasons {
					v.Reasons = append(v.Reasons, reason+" ("+agg.ForbiddenDetails[i]+")")
				}
			}
			res.Levels[string(level)] = v
		}
		if err := out.Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, "pod-security:", err)
			os.Exit(1)
		}
	}
}
