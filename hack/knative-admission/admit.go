package main

// Feeding one rendered environment through the upstream admission controllers, the way the API server would on
// CREATE: every mutating webhook whose rules and selectors match (in the order of their configuration names), the
// JSON patch it returns applied, then every validating webhook on the mutated object.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/logging"
	"knative.dev/pkg/webhook"

	// Fake informers and client: the admission controllers' constructors wire them for reconciling their own
	// webhook configurations, which never happens here; Admit itself does not read them.
	_ "knative.dev/pkg/client/injection/kube/client/fake"
	_ "knative.dev/pkg/client/injection/kube/informers/admissionregistration/v1/mutatingwebhookconfiguration/fake"
	_ "knative.dev/pkg/client/injection/kube/informers/admissionregistration/v1/validatingwebhookconfiguration/fake"
	_ "knative.dev/pkg/injection/clients/namespacedkube/informers/core/v1/secret/fake"
)

// argoCDUser is who creates the objects: Argo CD's application controller (user info feeds the creator/updater
// annotations and any user-dependent defaulting).
const argoCDUser = "system:serviceaccount:argocd:argocd-application-controller"

// excludeLabel is the namespace label the knative.dev/pkg reconcilers add to every resource webhook's
// namespaceSelector (DoesNotExist).
const excludeLabel = "webhooks.knative.dev/exclude"

type Finding struct {
	Severity   string `json:"severity"` // error | warning
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Webhook    string `json:"webhook"`
	Message    string `json:"message"`
	// Field is the path Kubernetes' validation names (spec.template.spec...), empty for webhook findings.
	Field string `json:"field,omitempty"`
	// Subject is what Kubernetes judged when it is not the object itself (a Knative Service's Revision Deployment).
	Subject string `json:"subject,omitempty"`
}

// environment is one render: its objects plus what the API server would know about namespaces and webhooks.
type environment struct {
	objects    []*unstructured.Unstructured
	raw        [][]byte
	nsLabels   map[string]map[string]string
	selectors  map[string]webhookSelectors // by webhook name, from the rendered webhook configurations
	configMaps map[string]map[string]*corev1.ConfigMap
	findings   []Finding
	seen       map[string]bool
	// admitted is each object as the API server would store it: after every mutating webhook's patch (nil when
	// a mutating or validating webhook refused it).
	admitted [][]byte
}

type webhookSelectors struct {
	namespace *metav1.LabelSelector
	object    *metav1.LabelSelector
}

func newEnvironment(objects []json.RawMessage) (*environment, error) {
	env := &environment{
		nsLabels:   map[string]map[string]string{},
		selectors:  map[string]webhookSelectors{},
		configMaps: map[string]map[string]*corev1.ConfigMap{},
		seen:       map[string]bool{},
	}
	for i, raw := range objects {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("object %d is not a Kubernetes object: %w", i, err)
		}
		env.objects = append(env.objects, u)
		env.raw = append(env.raw, raw)
		switch u.GroupVersionKind() {
		case corev1.SchemeGroupVersion.WithKind("Namespace"):
			l := map[string]string{}
			for k, v := range u.GetLabels() {
				l[k] = v
			}
			l["kubernetes.io/metadata.name"] = u.GetName() // set by the API server on every namespace
			env.nsLabels[u.GetName()] = l
		case corev1.SchemeGroupVersion.WithKind("ConfigMap"):
			cm := &corev1.ConfigMap{}
			if err := json.Unmarshal(raw, cm); err != nil {
				return nil, fmt.Errorf("ConfigMap %s/%s: %w", u.GetNamespace(), u.GetName(), err)
			}
			if env.configMaps[cm.Namespace] == nil {
				env.configMaps[cm.Namespace] = map[string]*corev1.ConfigMap{}
			}
			env.configMaps[cm.Namespace][cm.Name] = cm
		case admissionregistrationv1.SchemeGroupVersion.WithKind("ValidatingWebhookConfiguration"):
			c := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			if err := json.Unmarshal(raw, c); err != nil {
				return nil, fmt.Errorf("ValidatingWebhookConfiguration %s: %w", u.GetName(), err)
			}
			for _, w := range c.Webhooks {
				env.selectors[w.Name] = webhookSelectors{w.NamespaceSelector, w.ObjectSelector}
			}
		case admissionregistrationv1.SchemeGroupVersion.WithKind("MutatingWebhookConfiguration"):
			c := &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := json.Unmarshal(raw, c); err != nil {
				return nil, fmt.Errorf("MutatingWebhookConfiguration %s: %w", u.GetName(), err)
			}
			for _, w := range c.Webhooks {
				env.selectors[w.Name] = webhookSelectors{w.NamespaceSelector, w.ObjectSelector}
			}
		}
	}
	return env, nil
}

// installs tells whether the render registers any of the family's webhooks.
func (env *environment) installs(f family) bool {
	for _, name := range f.webhooks {
		if _, ok := env.selectors[name]; ok {
			return true
		}
	}
	return false
}

func (env *environment) add(f Finding) {
	key := strings.Join([]string{f.Severity, f.Kind, f.Namespace, f.Name, f.Webhook, f.Message, f.Field}, "\x00")
	if !env.seen[key] {
		env.seen[key] = true
		env.findings = append(env.findings, f)
	}
}

func (env *environment) refused(kind, namespace, name string) bool {
	for _, f := range env.findings {
		if f.Severity == "error" && f.Kind == kind && f.Namespace == namespace && f.Name == name {
			return true
		}
	}
	return false
}

// matches tells whether the API server would send obj to the webhook: its selectors from the rendered
// configuration (none when the render lacks it), plus the exclude label for resource webhooks.
func (env *environment) matches(webhookName string, resourceWebhook bool, obj *unstructured.Unstructured) bool {
	sel := env.selectors[webhookName]
	nsLabels := env.nsLabels[obj.GetNamespace()]
	if nsLabels == nil && obj.GetNamespace() != "" {
		nsLabels = map[string]string{"kubernetes.io/metadata.name": obj.GetNamespace()}
	}
	if resourceWebhook {
		if _, excluded := nsLabels[excludeLabel]; excluded {
			return false
		}
	}
	if !selectorMatches(sel.namespace, nsLabels) {
		return false
	}
	return selectorMatches(sel.object, obj.GetLabels())
}

func selectorMatches(sel *metav1.LabelSelector, set map[string]string) bool {
	if sel == nil {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return true // the API server refuses such a configuration; treat it as matching everything
	}
	return s.Matches(labels.Set(set))
}

// renderWatcher is a configmap.Watcher over the rendered ConfigMaps of one namespace. Like knative.dev/pkg's
// InformedWatcher it registers observers on Watch and feeds them on Start; unlike configmap.NewStaticWatcher it
// records instead of panicking: a ConfigMap the webhook would wait for but the render lacks, and a ConfigMap whose
// store constructor fails (the webhook would exit at start).
type renderWatcher struct {
	env       *environment
	namespace string
	webhook   string
	observers map[string][]configmap.Observer
	names     []string
}

func (w *renderWatcher) Watch(name string, observers ...configmap.Observer) {
	if w.observers == nil {
		w.observers = map[string][]configmap.Observer{}
	}
	if _, ok := w.observers[name]; !ok {
		w.names = append(w.names, name)
	}
	w.observers[name] = append(w.observers[name], observers...)
}

func (w *renderWatcher) Start(<-chan struct{}) error {
	for _, name := range w.names {
		cm, ok := w.env.configMaps[w.namespace][name]
		if !ok {
			w.env.add(Finding{"error", "v1", "ConfigMap", w.namespace, name, w.webhook,
				"the render has no such ConfigMap: the webhook's config store waits for it and the webhook does not start", "", ""})
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.namespace}}
		}
		for _, observe := range w.observers[name] {
			if err := observeSafely(observe, cm); err != nil {
				if !w.env.refused("ConfigMap", w.namespace, name) {
					w.env.add(Finding{"error", "v1", "ConfigMap", w.namespace, name, w.webhook,
						"the webhook's config store cannot load it, so the webhook exits at start: " + err.Error(), "", ""})
				}
				// Carry on with upstream defaults so the objects can still be judged.
				_ = observeSafely(observe, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.namespace}})
			}
		}
	}
	return nil
}

// observeSafely runs a config store observer; stores log a Fatal on a first load that fails, which the logger
// built in newContext turns into a panic.
func observeSafely(observe configmap.Observer, cm *corev1.ConfigMap) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	observe(cm)
	return nil
}

type builtFamily struct {
	family
	controllers []namedController
	ctx         context.Context
}

func newContext(f family) context.Context {
	// system.Namespace() (read while constructing the controllers) is the webhook Deployment's namespace.
	_ = os.Setenv("SYSTEM_NAMESPACE", f.namespace)
	ctx := logging.WithLogger(context.Background(), quietLogger())
	ctx = webhook.WithOptions(ctx, webhook.Options{ServiceName: f.name + "-webhook", Port: 8443, SecretName: f.secretName})
	ctx, _ = injection.Fake.SetupInformers(ctx, &rest.Config{})
	return ctx
}

// admitEnvironment runs every object of the render through the three webhook binaries.
func admitEnvironment(objects []json.RawMessage) ([]Finding, error) {
	env, err := admittedEnvironment(objects)
	if err != nil {
		return nil, err
	}
	return env.findings, nil
}

// admittedEnvironment runs the webhooks and keeps what they made of each object (environment.admitted) beside
// the findings.
func admittedEnvironment(objects []json.RawMessage) (*environment, error) {
	env, err := newEnvironment(objects)
	if err != nil {
		return nil, err
	}
	env.admitted = make([][]byte, len(env.objects))
	var built []builtFamily
	for _, f := range families {
		if !env.installs(f) {
			continue // its webhook configurations are not in the render: the API server would call nobody
		}
		ctx := newContext(f)
		cmw := &renderWatcher{env: env, namespace: f.namespace, webhook: f.name + " webhook (config store)"}
		controllers := f.build(ctx, cmw)
		// Config validation first, so that a refused ConfigMap is named by the webhook that refuses it rather
		// than again by each store that cannot load it.
		for _, c := range controllers {
			if c.kind == configValidating {
				env.admitConfigMaps(ctx, c)
			}
		}
		if err := cmw.Start(nil); err != nil {
			return nil, err
		}
		built = append(built, builtFamily{f, controllers, ctx})
	}

	mutatingOrder := []namedController{}
	validatingOrder := []namedController{}
	ctxOf := map[string]context.Context{}
	for _, b := range built {
		for _, c := range b.controllers {
			ctxOf[c.webhook] = b.ctx
			switch c.kind {
			case mutating:
				mutatingOrder = append(mutatingOrder, c)
			case validating:
				validatingOrder = append(validatingOrder, c)
			}
		}
	}
	// The API server calls webhooks sorted by their configuration's name.
	sort.Slice(mutatingOrder, func(i, j int) bool { return mutatingOrder[i].webhook < mutatingOrder[j].webhook })
	sort.Slice(validatingOrder, func(i, j int) bool { return validatingOrder[i].webhook < validatingOrder[j].webhook })

	for i, obj := range env.objects {
		gvk := obj.GroupVersionKind()
		raw := env.raw[i]
		refused := false
		for _, c := range mutatingOrder {
			if !handles(c, gvk) || !env.matches(c.webhook, true, obj) {
				continue
			}
			resp := admit(ctxOf[c.webhook], c, obj, raw)
			if !resp.Allowed {
				// The API server stops at the first refusal: later webhooks never see the object.
				env.add(finding("error", obj, c.webhook, resp))
				refused = true
				break
			}
			warn(env, obj, c.webhook, resp)
			if len(resp.Patch) > 0 {
				patched, err := applyPatch(raw, resp.Patch)
				if err != nil {
					return nil, fmt.Errorf("%s %s/%s: applying %s's patch: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), c.webhook, err)
				}
				raw = patched
			}
		}
		if refused {
			continue
		}
		env.admitted[i] = raw
		env.validatePodTemplates(i, raw)
		for _, c := range validatingOrder {
			if !handles(c, gvk) || !env.matches(c.webhook, true, obj) {
				continue
			}
			resp := admit(ctxOf[c.webhook], c, obj, raw)
			if !resp.Allowed {
				env.add(finding("error", obj, c.webhook, resp))
				env.admitted[i] = nil // the API server stores nothing a validating webhook refuses
			}
			warn(env, obj, c.webhook, resp)
		}
	}
	return env, nil
}

func (env *environment) admitConfigMaps(ctx context.Context, c namedController) {
	for i, obj := range env.objects {
		if obj.GroupVersionKind() != corev1.SchemeGroupVersion.WithKind("ConfigMap") {
			continue
		}
		if !env.matches(c.webhook, false, obj) {
			continue
		}
		resp := admit(ctx, c, obj, env.raw[i])
		if !resp.Allowed {
			env.add(finding("error", obj, c.webhook, resp))
		}
	}
}

func handles(c namedController, gvk schema.GroupVersionKind) bool {
	_, ok := c.types[gvk]
	return ok
}

func admit(ctx context.Context, c namedController, obj *unstructured.Unstructured, raw []byte) (resp *admissionv1.AdmissionResponse) {
	gvk := obj.GroupVersionKind()
	req := &admissionv1.AdmissionRequest{
		UID:       types.UID(fmt.Sprintf("%s/%s/%s", gvk.Kind, obj.GetNamespace(), obj.GetName())),
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Resource:  metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version},
		Name:      obj.GetName(),
		Namespace: obj.GetNamespace(),
		Operation: admissionv1.Create,
		UserInfo:  authenticationv1.UserInfo{Username: argoCDUser},
		Object:    runtime.RawExtension{Raw: raw},
	}
	defer func() {
		// A panic inside upstream code is a refusal too (the webhook would answer 500), never a crash here.
		if r := recover(); r != nil {
			resp = &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Message: fmt.Sprintf("webhook panicked: %v", r)}}
		}
	}()
	return c.impl.Reconciler.(webhook.AdmissionController).Admit(ctx, req)
}

func finding(severity string, obj *unstructured.Unstructured, webhookName string, resp *admissionv1.AdmissionResponse) Finding {
	msg := "refused"
	if resp.Result != nil && resp.Result.Message != "" {
		msg = resp.Result.Message
	}
	return Finding{severity, obj.GetAPIVersion(), obj.GetKind(), obj.GetNamespace(), obj.GetName(), webhookName, msg, "", ""}
}

func warn(env *environment, obj *unstructured.Unstructured, webhookName string, resp *admissionv1.AdmissionResponse) {
	for _, w := range resp.Warnings {
		env.add(Finding{"warning", obj.GetAPIVersion(), obj.GetKind(), obj.GetNamespace(), obj.GetName(), webhookName, w, "", ""})
	}
}

func applyPatch(raw, patch []byte) ([]byte, error) {
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, err
	}
	return p.Apply(raw)
}
