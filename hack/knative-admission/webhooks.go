package main

// The admission controllers of the three Knative webhook binaries, built with the same type lists, context
// functions and unknown-field settings as their upstream mains. Each constructor below names the upstream file and
// function it mirrors: keep them in step when the pinned versions move (`make bump`).

import (
	"context"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"knative.dev/pkg/apis"
	kubeclient "knative.dev/pkg/client/injection/kube/client"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/leaderelection"
	"knative.dev/pkg/logging"
	"knative.dev/pkg/webhook"
	"knative.dev/pkg/webhook/configmaps"
	"knative.dev/pkg/webhook/resourcesemantics"
	"knative.dev/pkg/webhook/resourcesemantics/defaulting"
	"knative.dev/pkg/webhook/resourcesemantics/validation"

	// serving
	net "knative.dev/networking/pkg/apis/networking/v1alpha1"
	netcfg "knative.dev/networking/pkg/config"
	autoscalingv1alpha1 "knative.dev/serving/pkg/apis/autoscaling/v1alpha1"
	apisconfig "knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	servingv1beta1 "knative.dev/serving/pkg/apis/serving/v1beta1"
	autoscalerconfig "knative.dev/serving/pkg/autoscaler/config"
	"knative.dev/serving/pkg/deployment"
	"knative.dev/serving/pkg/gc"
	servingo11y "knative.dev/serving/pkg/observability/configmap"
	certconfig "knative.dev/serving/pkg/reconciler/certificate/config"
	domainconfig "knative.dev/serving/pkg/reconciler/route/config"
	extravalidation "knative.dev/serving/pkg/webhook"

	// eventing
	defaultconfig "knative.dev/eventing/pkg/apis/config"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	eventingv1alpha1 "knative.dev/eventing/pkg/apis/eventing/v1alpha1"
	eventingv1beta1 "knative.dev/eventing/pkg/apis/eventing/v1beta1"
	eventingv1beta2 "knative.dev/eventing/pkg/apis/eventing/v1beta2"
	"knative.dev/eventing/pkg/apis/feature"
	flowsv1 "knative.dev/eventing/pkg/apis/flows/v1"
	channeldefaultconfig "knative.dev/eventing/pkg/apis/messaging/config"
	messagingv1 "knative.dev/eventing/pkg/apis/messaging/v1"
	"knative.dev/eventing/pkg/apis/sinks"
	sinksv1alpha1 "knative.dev/eventing/pkg/apis/sinks/v1alpha1"
	pingdefaultconfig "knative.dev/eventing/pkg/apis/sources/config"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	sourcesv1alpha1 "knative.dev/eventing/pkg/apis/sources/v1alpha1"
	sourcesv1beta2 "knative.dev/eventing/pkg/apis/sources/v1beta2"
	"knative.dev/eventing/pkg/apis/sugar"
	eventingo11y "knative.dev/eventing/pkg/observability/configmap"
	"knative.dev/eventing/pkg/requestreply"

	// eventing-kafka-broker
	kafkaeventingv1 "knative.dev/eventing-kafka-broker/control-plane/pkg/apis/eventing/v1"
	kafkaeventingv1alpha1 "knative.dev/eventing-kafka-broker/control-plane/pkg/apis/eventing/v1alpha1"
	kafkainternals "knative.dev/eventing-kafka-broker/control-plane/pkg/apis/internalskafkaeventing/v1alpha1"
	kafkamessagingv1 "knative.dev/eventing-kafka-broker/control-plane/pkg/apis/messaging/v1"
	kafkamessagingv1beta1 "knative.dev/eventing-kafka-broker/control-plane/pkg/apis/messaging/v1beta1"
	kafkasourcesv1 "knative.dev/eventing-kafka-broker/control-plane/pkg/apis/sources/v1"
	kafkasourcesv1beta1 "knative.dev/eventing-kafka-broker/control-plane/pkg/apis/sources/v1beta1"
)

// family is one webhook binary: the namespace it runs in (where its config stores read ConfigMaps) and the
// admission controllers it serves, by the name of their webhook configuration.
type family struct {
	name       string
	namespace  string
	secretName string
	webhooks   []string // its webhook configurations, as named in the release YAML
	// build constructs the controllers under a context carrying the fake informers and the family's watcher.
	build func(ctx context.Context, cmw configmap.Watcher) []namedController
}

type namedController struct {
	webhook string // the (Mutating|Validating)WebhookConfiguration name
	kind    controllerKind
	types   map[schema.GroupVersionKind]resourcesemantics.GenericCRD
	impl    *controller.Impl
}

type controllerKind int

const (
	mutating controllerKind = iota
	validating
	configValidating
)

// families lists the three webhook binaries in the order of their MutatingWebhookConfiguration names, the order
// in which the API server calls mutating webhooks.
var families = []family{kafkaFamily, eventingFamily, servingFamily}

// ---- knative.dev/serving v0.50.0 cmd/webhook/main.go ----

// servingTypes mirrors `types` in serving cmd/webhook/main.go.
var servingTypes = map[schema.GroupVersionKind]resourcesemantics.GenericCRD{
	servingv1.SchemeGroupVersion.WithKind("Revision"):      &servingv1.Revision{},
	servingv1.SchemeGroupVersion.WithKind("Configuration"): &servingv1.Configuration{},
	servingv1.SchemeGroupVersion.WithKind("Route"):         &servingv1.Route{},
	servingv1.SchemeGroupVersion.WithKind("Service"):       &servingv1.Service{},

	autoscalingv1alpha1.SchemeGroupVersion.WithKind("PodAutoscaler"): &autoscalingv1alpha1.PodAutoscaler{},
	autoscalingv1alpha1.SchemeGroupVersion.WithKind("Metric"):        &autoscalingv1alpha1.Metric{},

	net.SchemeGroupVersion.WithKind("Certificate"):       &net.Certificate{},
	net.SchemeGroupVersion.WithKind("Ingress"):           &net.Ingress{},
	net.SchemeGroupVersion.WithKind("ServerlessService"): &net.ServerlessService{},

	servingv1beta1.SchemeGroupVersion.WithKind("DomainMapping"): &servingv1beta1.DomainMapping{},
}

// servingCallbacks mirrors `callbacks` in serving cmd/webhook/main.go. They only act on dry-run requests (they
// dry-run a Pod against the API server), and Argo CD's applies here are not dry runs, so they pass.
var servingCallbacks = map[schema.GroupVersionKind]validation.Callback{
	servingv1.SchemeGroupVersion.WithKind("Service"): validation.NewCallback(
		extravalidation.ValidateService, webhook.Create, webhook.Update),
	servingv1.SchemeGroupVersion.WithKind("Configuration"): validation.NewCallback(
		extravalidation.ValidateConfiguration, webhook.Create, webhook.Update),
}

var servingFamily = family{
	name:       "serving",
	namespace:  "knative-serving",
	secretName: "webhook-certs",
	webhooks: []string{"webhook.serving.knative.dev", "validation.webhook.serving.knative.dev",
		"config.webhook.serving.knative.dev"},
	build: func(ctx context.Context, cmw configmap.Watcher) []namedController {
		// newDefaultingAdmissionController / newValidationAdmissionController: store.ToContext, unknown fields
		// allowed ("our CRDs have schemas").
		defaultingStore := apisconfig.NewStore(logging.FromContext(ctx).Named("config-store"))
		defaultingStore.WatchConfigs(cmw)
		validationStore := apisconfig.NewStore(logging.FromContext(ctx).Named("config-store"))
		validationStore.WatchConfigs(cmw)
		return []namedController{
			{"webhook.serving.knative.dev", mutating, servingTypes, defaulting.NewAdmissionController(ctx,
				"webhook.serving.knative.dev", "/defaulting", servingTypes, defaultingStore.ToContext, false)},
			{"validation.webhook.serving.knative.dev", validating, servingTypes, validation.NewAdmissionController(ctx,
				"validation.webhook.serving.knative.dev", "/resource-validation", servingTypes,
				validationStore.ToContext, false, servingCallbacks)},
			// newConfigValidationController
			{"config.webhook.serving.knative.dev", configValidating, nil, configmaps.NewAdmissionController(ctx,
				"config.webhook.serving.knative.dev", "/config-validation",
				configmap.Constructors{
					autoscalerconfig.ConfigName:      autoscalerconfig.NewConfigFromConfigMap,
					gc.ConfigName:                    gc.NewConfigFromConfigMapFunc(ctx),
					netcfg.ConfigMapName:             netcfg.NewConfigFromConfigMap,
					deployment.ConfigName:            deployment.NewConfigFromConfigMap,
					apisconfig.FeaturesConfigName:    apisconfig.NewFeaturesConfigFromConfigMap,
					servingo11y.Name():               servingo11y.Parse,
					logging.ConfigMapName():          logging.NewConfigFromConfigMap,
					leaderelection.ConfigMapName():   leaderelection.NewConfigFromConfigMap,
					domainconfig.DomainConfigName:    domainconfig.NewDomainFromConfigMap,
					apisconfig.DefaultsConfigName:    apisconfig.NewDefaultsConfigFromConfigMap,
					certconfig.CertManagerConfigName: certconfig.NewCertManagerConfigFromConfigMap,
				})},
		}
	},
}

// ---- knative.dev/eventing v0.50.0 cmd/webhook/main.go ----

// eventingTypes mirrors `ourTypes` in eventing cmd/webhook/main.go.
var eventingTypes = map[schema.GroupVersionKind]resourcesemantics.GenericCRD{
	eventingv1alpha1.SchemeGroupVersion.WithKind("EventPolicy"):    &eventingv1alpha1.EventPolicy{},
	eventingv1alpha1.SchemeGroupVersion.WithKind("EventTransform"): &eventingv1alpha1.EventTransform{},
	eventingv1alpha1.SchemeGroupVersion.WithKind("RequestReply"):   &eventingv1alpha1.RequestReply{},
	eventingv1beta1.SchemeGroupVersion.WithKind("EventType"):       &eventingv1beta1.EventType{},
	eventingv1beta2.SchemeGroupVersion.WithKind("EventType"):       &eventingv1beta2.EventType{},
	eventingv1.SchemeGroupVersion.WithKind("Broker"):               &eventingv1.Broker{},
	eventingv1.SchemeGroupVersion.WithKind("Trigger"):              &eventingv1.Trigger{},

	messagingv1.SchemeGroupVersion.WithKind("Channel"):      &messagingv1.Channel{},
	messagingv1.SchemeGroupVersion.WithKind("Subscription"): &messagingv1.Subscription{},

	sourcesv1alpha1.SchemeGroupVersion.WithKind("IntegrationSource"): &sourcesv1alpha1.IntegrationSource{},
	sourcesv1beta2.SchemeGroupVersion.WithKind("PingSource"):         &sourcesv1beta2.PingSource{},
	sourcesv1.SchemeGroupVersion.WithKind("ApiServerSource"):         &sourcesv1.ApiServerSource{},
	sourcesv1.SchemeGroupVersion.WithKind("PingSource"):              &sourcesv1.PingSource{},
	sourcesv1.SchemeGroupVersion.WithKind("SinkBinding"):             &sourcesv1.SinkBinding{},
	sourcesv1.SchemeGroupVersion.WithKind("ContainerSource"):         &sourcesv1.ContainerSource{},

	sinksv1alpha1.SchemeGroupVersion.WithKind("JobSink"):         &sinksv1alpha1.JobSink{},
	sinksv1alpha1.SchemeGroupVersion.WithKind("IntegrationSink"): &sinksv1alpha1.IntegrationSink{},

	flowsv1.SchemeGroupVersion.WithKind("Parallel"): &flowsv1.Parallel{},
	flowsv1.SchemeGroupVersion.WithKind("Sequence"): &flowsv1.Sequence{},
}

var eventingFamily = family{
	name:       "eventing",
	namespace:  "knative-eventing",
	secretName: "eventing-webhook-certs",
	webhooks: []string{"webhook.eventing.knative.dev", "validation.webhook.eventing.knative.dev",
		"config.webhook.eventing.knative.dev"},
	build: func(ctx context.Context, cmw configmap.Watcher) []namedController {
		// NewDefaultingAdmissionController: defaults, channel defaults and feature flags; unknown fields refused.
		store := defaultconfig.NewStore(logging.FromContext(ctx).Named("config-store"))
		store.WatchConfigs(cmw)
		channelStore := channeldefaultconfig.NewStore(logging.FromContext(ctx).Named("channel-config-store"))
		channelStore.WatchConfigs(cmw)
		featureStore := feature.NewStore(logging.FromContext(ctx).Named("feature-config-store"))
		featureStore.WatchConfigs(cmw)
		defaultingCtx := func(ctx context.Context) context.Context {
			return featureStore.ToContext(channelStore.ToContext(store.ToContext(ctx)))
		}

		// NewValidationAdmissionController: the same plus ping defaults and the sinks config (a kube client).
		vStore := defaultconfig.NewStore(logging.FromContext(ctx).Named("config-store"))
		vStore.WatchConfigs(cmw)
		vChannelStore := channeldefaultconfig.NewStore(logging.FromContext(ctx).Named("channel-config-store"))
		vChannelStore.WatchConfigs(cmw)
		pingStore := pingdefaultconfig.NewStore(logging.FromContext(ctx).Named("ping-config-store"))
		pingStore.WatchConfigs(cmw)
		vFeatureStore := feature.NewStore(logging.FromContext(ctx).Named("feature-config-store"))
		vFeatureStore.WatchConfigs(cmw)
		k8s := kubeclient.Get(ctx)
		validationCtx := func(ctx context.Context) context.Context {
			return sinks.WithConfig(
				vFeatureStore.ToContext(vChannelStore.ToContext(pingStore.ToContext(vStore.ToContext(ctx)))),
				&sinks.Config{KubeClient: k8s})
		}
		if err := requestreply.RegisterCESQLVerifyCorrelationIdFilter(ctx); err != nil {
			logging.FromContext(ctx).Warn("Failed to register KN_VERIFY_CORRELATION_ID", zap.Error(err))
		}

		return []namedController{
			{"webhook.eventing.knative.dev", mutating, eventingTypes, defaulting.NewAdmissionController(ctx,
				"webhook.eventing.knative.dev", "/defaulting", eventingTypes, defaultingCtx, true)},
			{"validation.webhook.eventing.knative.dev", validating, eventingTypes, validation.NewAdmissionController(ctx,
				"validation.webhook.eventing.knative.dev", "/resource-validation", eventingTypes, validationCtx,
				true, map[schema.GroupVersionKind]validation.Callback{})},
			// NewConfigValidationController
			{"config.webhook.eventing.knative.dev", configValidating, nil, configmaps.NewAdmissionController(ctx,
				"config.webhook.eventing.knative.dev", "/config-validation",
				configmap.Constructors{
					eventingo11y.Name():            eventingo11y.Parse,
					logging.ConfigMapName():        logging.NewConfigFromConfigMap,
					leaderelection.ConfigMapName(): leaderelection.NewConfigFromConfigMap,
					sugar.ConfigName:               sugar.NewConfigFromConfigMap,
				})},
		}
	},
}

// ---- knative.dev/eventing-kafka-broker v0.50.1 control-plane/cmd/webhook-kafka/main.go ----

// kafkaTypes mirrors `types` in eventing-kafka-broker control-plane/cmd/webhook-kafka/main.go. The Broker entry is
// a stub whose Validate only speaks for Brokers of class Kafka.
var kafkaTypes = map[schema.GroupVersionKind]resourcesemantics.GenericCRD{
	kafkaeventingv1alpha1.SchemeGroupVersion.WithKind("KafkaSink"):    &kafkaeventingv1alpha1.KafkaSink{},
	kafkasourcesv1beta1.SchemeGroupVersion.WithKind("KafkaSource"):    &kafkasourcesv1beta1.KafkaSource{},
	kafkasourcesv1.SchemeGroupVersion.WithKind("KafkaSource"):         &kafkasourcesv1.KafkaSource{},
	kafkamessagingv1beta1.SchemeGroupVersion.WithKind("KafkaChannel"): &kafkamessagingv1beta1.KafkaChannel{},
	kafkamessagingv1.SchemeGroupVersion.WithKind("KafkaChannel"):      &kafkamessagingv1.KafkaChannel{},
	eventingv1.SchemeGroupVersion.WithKind("Broker"):                  &kafkaeventingv1.BrokerStub{},
	kafkainternals.SchemeGroupVersion.WithKind("ConsumerGroup"):       &kafkainternals.ConsumerGroup{},
	kafkainternals.SchemeGroupVersion.WithKind("Consumer"):            &kafkainternals.Consumer{},
}

var kafkaFamily = family{
	name:       "kafka",
	namespace:  "knative-eventing",
	secretName: "kafka-webhook-eventing-certs",
	webhooks:   []string{"defaulting.webhook.kafka.eventing.knative.dev", "validation.webhook.kafka.eventing.knative.dev"},
	build: func(ctx context.Context, cmw configmap.Watcher) []namedController {
		// NewDefaultingAdmissionController: AllowDifferentNamespace, unknown fields allowed.
		defaultingCtx := func(ctx context.Context) context.Context { return apis.AllowDifferentNamespace(ctx) }
		// NewValidationAdmissionController: feature flags + AllowDifferentNamespace, unknown fields refused.
		featureStore := feature.NewStore(logging.FromContext(ctx).Named("feature-config-store"))
		featureStore.WatchConfigs(cmw)
		validationCtx := func(ctx context.Context) context.Context {
			return apis.AllowDifferentNamespace(featureStore.ToContext(ctx))
		}
		// NewPodDefaultingAdmissionController only touches the Kafka dispatcher's own Pods, which a render of
		// ours never holds, so it is not built here.
		return []namedController{
			{"defaulting.webhook.kafka.eventing.knative.dev", mutating, kafkaTypes, defaulting.NewAdmissionController(ctx,
				"defaulting.webhook.kafka.eventing.knative.dev", "/defaulting", kafkaTypes, defaultingCtx, false)},
			{"validation.webhook.kafka.eventing.knative.dev", validating, kafkaTypes, validation.NewAdmissionController(ctx,
				"validation.webhook.kafka.eventing.knative.dev", "/resource-validation", kafkaTypes, validationCtx,
				true)},
		}
	},
}
