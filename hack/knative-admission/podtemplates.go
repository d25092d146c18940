package main

// Kubernetes' own validation of every pod template the render implies, the way the API server judges a CREATE:
// the JSON decoded into the served version, defaulted and converted to the internal type (legacyscheme's codec),
// then rest.BeforeCreate with the resource's registry strategy (PrepareForCreate, Validate, object meta). Knative's
// webhooks judge what is Knative-specific; without this stage an invalid pod template field (a topology spread
// constraint, a probe, a volume) passes every check and fails only in the cluster, or, for a Knative Service, only
// when serving's controller creates the Revision's Deployment.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	_ "k8s.io/kubernetes/pkg/apis/apps/install"
	_ "k8s.io/kubernetes/pkg/apis/batch/install"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	"k8s.io/kubernetes/pkg/registry/apps/daemonset"
	"k8s.io/kubernetes/pkg/registry/apps/deployment"
	"k8s.io/kubernetes/pkg/registry/apps/replicaset"
	"k8s.io/kubernetes/pkg/registry/apps/statefulset"
	"k8s.io/kubernetes/pkg/registry/batch/cronjob"
	"k8s.io/kubernetes/pkg/registry/batch/job"
	"knative.dev/pkg/logging"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	configurationresources "knative.dev/serving/pkg/reconciler/configuration/resources"
	revisionconfig "knative.dev/serving/pkg/reconciler/revision/config"
	revisionresources "knative.dev/serving/pkg/reconciler/revision/resources"
	serviceresources "knative.dev/serving/pkg/reconciler/service/resources"
)

// kubernetesValidation names the judge in findings: the API server of the Kubernetes minor the render targets.
const kubernetesValidation = "kube-apiserver validation (k8s.io/kubernetes v1.35)"

// podTemplateStrategies: the kinds whose objects carry a pod template, each with the registry strategy the API
// server creates it through.
var podTemplateStrategies = map[schema.GroupVersionKind]rest.RESTCreateStrategy{
	appsv1.SchemeGroupVersion.WithKind("Deployment"):                        deployment.Strategy,
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"):                       statefulset.Strategy,
	appsv1.SchemeGroupVersion.WithKind("DaemonSet"):                         daemonset.Strategy,
	appsv1.SchemeGroupVersion.WithKind("ReplicaSet"):                        replicaset.Strategy,
	schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}:     job.Strategy,
	schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}: cronjob.Strategy,
}

var knativeServiceKind = servingv1.SchemeGroupVersion.WithKind("Service")

// collectedWarnings is a warning.Recorder: WarningsOnCreate reports through the request context.
type collectedWarnings []string

func (c *collectedWarnings) AddWarning(_, text string) { *c = append(*c, text) }

// validateWorkload runs one object with a pod template through the API server's create path; each refusal cause
// (a field path and a message) becomes one finding on `about` (the object itself, or the Knative Service whose
// Revision Deployment it is: `subject` says so).
func (env *environment) validateWorkload(raw []byte, about *unstructured.Unstructured, subject string) {
	gvk := schema.FromAPIVersionAndKind(gjson(raw, "apiVersion"), gjson(raw, "kind"))
	strategy := podTemplateStrategies[gvk]
	obj, _, err := legacyscheme.Codecs.UniversalDecoder().Decode(raw, nil, nil)
	if err != nil {
		env.add(podFinding("error", about, subject, "", "cannot be decoded as "+gvk.Kind+": "+err.Error()))
		return
	}
	meta, err := metaOf(obj)
	if err != nil {
		env.add(podFinding("error", about, subject, "", err.Error()))
		return
	}
	rest.FillObjectMetaSystemFields(meta)
	meta.SetUID(types.UID("00000000-0000-0000-0000-000000000000"))
	warnings := &collectedWarnings{}
	ctx := genericapirequest.WithNamespace(context.Background(), meta.GetNamespace())
	ctx = warning.WithWarningRecorder(ctx, warnings)
	err = func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("validation panicked: %v", r)
			}
		}()
		return rest.BeforeCreate(strategy, ctx, obj)
	}()
	var status apierrors.APIStatus
	switch {
	case err == nil:
	case errors.As(err, &status) && status.Status().Details != nil && len(status.Status().Details.Causes) > 0:
		for _, cause := range status.Status().Details.Causes {
			env.add(podFinding("error", about, subject, cause.Field, cause.Message))
		}
	default:
		env.add(podFinding("error", about, subject, "", err.Error()))
	}
	for _, w := range *warnings {
		env.add(podFinding("warning", about, subject, "", w))
	}
}

func podFinding(severity string, about *unstructured.Unstructured, subject, field, message string) Finding {
	return Finding{Severity: severity, APIVersion: about.GetAPIVersion(), Kind: about.GetKind(), Namespace: about.GetNamespace(),
		Name: about.GetName(), Webhook: kubernetesValidation, Message: message, Field: field, Subject: subject}
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", obj)
	}
	return m, nil
}

func gjson(raw []byte, key string) string {
	var head map[string]json.RawMessage
	if json.Unmarshal(raw, &head) != nil {
		return ""
	}
	var s string
	_ = json.Unmarshal(head[key], &s)
	return s
}

// revisionDeployment builds the Deployment serving's controller creates for the first Revision of a Knative
// Service (after Knative's webhooks defaulted it): service -> Configuration -> Revision -> Deployment, with
// serving's own resource builders and the revision reconciler's config store fed the rendered knative-serving
// ConfigMaps. Queue-proxy is included, as in the cluster.
func (env *environment) revisionDeployment(raw []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("serving's builders panicked: %v", r)
		}
	}()
	ksvc := &servingv1.Service{}
	if err := json.Unmarshal(raw, ksvc); err != nil {
		return nil, err
	}
	if ksvc.UID == "" {
		ksvc.UID = types.UID("00000000-0000-0000-0000-000000000001")
	}
	ksvc.Generation = 1
	cfg := serviceresources.MakeConfiguration(ksvc)
	cfg.Generation = 1
	cfg.UID = types.UID("00000000-0000-0000-0000-000000000002")
	ctx := logging.WithLogger(context.Background(), quietLogger())
	rev := configurationresources.MakeRevision(ctx, cfg, time.Unix(0, 0))
	rev.UID = types.UID("00000000-0000-0000-0000-000000000003")
	store := revisionconfig.NewStore(quietLogger())
	cmw := &renderWatcher{env: env, namespace: servingNamespace, webhook: "serving controller (revision config store)"}
	store.WatchConfigs(cmw)
	if err := cmw.Start(nil); err != nil {
		return nil, err
	}
	c := store.Load()
	if c.Deployment == nil || c.Config == nil || c.Config.Autoscaler == nil {
		return nil, errors.New("the revision reconciler's config store did not load (see the ConfigMap findings)")
	}
	d, err := revisionresources.MakeDeployment(rev, c)
	if err != nil {
		return nil, err
	}
	d.TypeMeta = metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "Deployment"}
	return json.Marshal(d)
}

// servingNamespace holds serving's controller and its ConfigMaps (the release's namespace).
const servingNamespace = "knative-serving"

// validatePodTemplates judges every object the API server would validate a pod template of: workloads as
// rendered (after Knative's mutating webhooks, which do not touch them) and, for each Knative Service, the
// Revision Deployment serving builds from its defaulted template.
func (env *environment) validatePodTemplates(i int, raw []byte) {
	obj := env.objects[i]
	gvk := obj.GroupVersionKind()
	if _, ok := podTemplateStrategies[gvk]; ok {
		env.validateWorkload(raw, obj, "")
		return
	}
	if gvk != knativeServiceKind {
		return
	}
	d, err := env.revisionDeployment(raw)
	if err != nil {
		env.add(podFinding("error", obj, "", "", "serving cannot build its Revision's Deployment: "+err.Error()))
		return
	}
	env.validateWorkload(d, obj, "the Deployment serving builds for its Revision")
}
