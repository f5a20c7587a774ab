// Command controller is the Pharos controller: it assigns external
// addresses to LoadBalancer Services from IPAddressPools. Run two replicas;
// leader election lets one of them allocate at a time.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/controller/advertisement"
	"github.com/pharos-lb/pharos/controller/allocation"
	"github.com/pharos-lb/pharos/controller/memberlistkey"
	webhookpkg "github.com/pharos-lb/pharos/controller/webhook"
	"github.com/pharos-lb/pharos/internal/kubecheck"
)

// Leader election records an event (core/v1) on its Lease.
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch,namespace=pharos-system

// setLoggers makes logger the controller's one logger: controller-runtime's
// and client-go's (klog: leader election, reflectors, the event
// broadcaster), so that every line has one format and one level.
func setLoggers(logger logr.Logger) {
	ctrl.SetLogger(logger)
	klog.SetLoggerWithOptions(logger, klog.ContextualLogger(true))
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "check-webhook":
			checkWebhook(os.Args[2:])
			return
		case "delete-values-config":
			deleteValuesConfig(os.Args[2:])
			return
		}
	}
	var (
		lbClass        = flag.String("lb-class", "", "handle only Services with this spec.loadBalancerClass (for example pharos.io/lb); empty handles Services without a class")
		workers        = flag.Int("workers", 8, "Services reconciled in parallel")
		qps            = flag.Float64("kube-api-qps", -1, "client-side request rate limit; -1 (the default) disables it, because the apiserver's priority and fairness already bounds the controller, and a client limit only slows a backlog down")
		burst          = flag.Int("kube-api-burst", 1000, "client-side burst above kube-api-qps, when a limit is set")
		leaderElect    = flag.Bool("leader-elect", true, "elect one active replica through a Lease")
		leaseNamespace = flag.String("leader-election-namespace", "", "namespace of the leader Lease (default: the pod's namespace)")
		leaseDuration  = flag.Duration("leader-lease-duration", 15*time.Second, "how long a leader's Lease is valid without renewal")
		renewDeadline  = flag.Duration("leader-renew-deadline", 10*time.Second, "how long the leader tries to renew before it stops")
		retryPeriod    = flag.Duration("leader-retry-period", 2*time.Second, "how often candidates try to take the Lease")
		metricsAddr    = flag.String("metrics-bind-address", ":7472", "address of the Prometheus metrics endpoint; 0 disables it")
		probeAddr      = flag.String("health-probe-bind-address", ":7473", "address of the /healthz and /readyz endpoints")
		namespace      = flag.String("namespace", envOr("POD_NAMESPACE", "pharos-system"), "the controller's namespace: its Lease and webhook Secret live there (env POD_NAMESPACE)")
		webhookPort    = flag.Int("webhook-port", 0, "port of the validating webhook server; 0 disables it (the Helm chart sets 9443)")
		webhookService = flag.String("webhook-service", "pharos-webhook", "the Service in front of the webhook; its DNS names go into the serving certificate")
		webhookConfig  = flag.String("webhook-configuration", "pharos-webhook", "the ValidatingWebhookConfiguration that gets the CA bundle")
		webhookSecret  = flag.String("webhook-secret", "pharos-webhook-cert", "the Secret, in --namespace, that holds the webhook's CA and serving certificate")
		leaseID        = flag.String("leader-election-id", "pharos-controller", "name of the leader Lease (the Helm chart uses <release>-controller, so two releases never share one)")
		serviceLBNS    = flag.String("servicelb-namespace", "kube-system", "namespace where K3s ServiceLB creates its svclb-* DaemonSets; Services that ServiceLB also handles are left to it (condition reason ServiceLBConflict) until its DaemonSet is gone; empty disables the detection; unused with --lb-class")
		memberlistKey  = flag.String("memberlist-secret", "pharos-memberlist", "the Secret, in --namespace, whose field 'key' encrypts the speakers' gossip; the controller generates the key when the Secret has none (empty: leave it to you)")
		skipPreflight  = flag.Bool("skip-preflight", false, "start without checking CRDs and permissions first")
		forwarding     = flag.String("forwarding", v1beta1.ForwardingKubeProxy, "the cluster's default forwarding mode, which a Service's pharos.io/forwarding annotation overrides: kube-proxy (status ipMode VIP), nodeport or direct (ipMode Proxy: the speakers forward the address, to kube-proxy's NodePort or to the endpoints); give the speakers the same value")
	)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	setLoggers(zap.New(zap.UseFlagOptions(&zapOpts)))
	logger := ctrl.Log.WithName("setup")
	if err := checkForwarding(*forwarding); err != nil {
		kubecheck.WriteTerminationMessage(err)
		fail(err)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fail(err)
	}
	if err := v1beta1.AddToScheme(scheme); err != nil {
		fail(err)
	}

	cfg, err := ctrl.GetConfig()
	if err != nil {
		fail(fmt.Errorf("no Kubernetes configuration: %w (use --kubeconfig or run in a pod)", err))
	}
	cfg.QPS, cfg.Burst = float32(*qps), *burst
	cfg.UserAgent = "pharos-controller"

	if *leaseNamespace == "" {
		*leaseNamespace = *namespace
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fail(err)
	}
	// An unreachable apiserver (a cluster powering up with the control
	// plane last, an outage) is waited for here, not exited on: a
	// kubelet's back-off would add minutes once it returns.
	if !*skipPreflight {
		if err := kubecheck.Retry(context.Background(), kubecheck.RetryOptions{
			Waiting: func(err error) { logger.Info("waiting for the apiserver", "error", err.Error()) },
			Recovered: func(d time.Duration) {
				logger.Info("the apiserver answers", "waited", d.Round(time.Millisecond).String())
			},
		}, func(context.Context) error {
			return preflight(clientset, preflightOptions{
				leaseNamespace: *leaseNamespace, leaderElect: *leaderElect,
				leaseName: *leaseID, memberlistSecret: *memberlistKey,
				webhook: *webhookPort != 0, namespace: *namespace, secret: *webhookSecret, configuration: *webhookConfig,
			})
		}); err != nil {
			kubecheck.WriteTerminationMessage(err)
			fail(err)
		}
	}
	if *lbClass == "" {
		*serviceLBNS = serviceLBDetection(clientset, *serviceLBNS, func(msg string) { logger.Info(msg) })
	} else {
		*serviceLBNS = "" // ServiceLB ignores Services with a class
	}

	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fail(err)
	}
	var certManager *webhookpkg.CertManager
	var webhookServer webhook.Server
	if *webhookPort != 0 {
		certManager = webhookpkg.NewCertManager(direct, direct, webhookpkg.CertOptions{
			Namespace: *namespace, SecretName: *webhookSecret, ServiceName: *webhookService, ConfigurationName: *webhookConfig,
		})
		webhookServer = webhook.NewServer(webhook.Options{
			Port:    *webhookPort,
			TLSOpts: webhookpkg.TLSOptions(certManager),
		})
	}

	shutdownTimeout := 5 * time.Second
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		WebhookServer:                 webhookServer,
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress:        *probeAddr,
		LeaderElection:                *leaderElect,
		LeaderElectionID:              *leaseID,
		LeaderElectionNamespace:       *leaseNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 leaseDuration,
		RenewDeadline:                 renewDeadline,
		RetryPeriod:                   retryPeriod,
		// The cache holds every Service; managed fields are a third of a
		// Service's size and are never read.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		// Reconciles take milliseconds; a longer wait only delays exit,
		// as client-go's event broadcaster can block its shutdown.
		GracefulShutdownTimeout: &shutdownTimeout,
	})
	if err != nil {
		fail(err)
	}
	if err := allocation.New(mgr, allocation.Options{LoadBalancerClass: *lbClass, Workers: *workers, ServiceLBNamespace: *serviceLBNS, Forwarding: *forwarding}).SetupWithManager(mgr); err != nil {
		fail(err)
	}
	if err := advertisement.SetupWithManager(mgr); err != nil {
		fail(err)
	}
	if err := advertisement.SetupBGPWithManager(mgr); err != nil {
		fail(err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		fail(err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		fail(err)
	}
	if *memberlistKey != "" {
		keeper := &memberlistkey.Keeper{Secret: types.NamespacedName{Namespace: *namespace, Name: *memberlistKey}, Reader: direct, Writer: direct}
		if err := mgr.Add(keeper); err != nil {
			fail(err)
		}
	}
	if certManager != nil {
		if err := mgr.Add(certManager); err != nil {
			fail(err)
		}
		webhookpkg.Register(mgr.GetWebhookServer(), scheme, mgr.GetAPIReader())
		if err := mgr.AddReadyzCheck("webhook-certificate", certManager.ReadyCheck); err != nil {
			fail(err)
		}
		if err := mgr.AddReadyzCheck("webhook-server", mgr.GetWebhookServer().StartedChecker()); err != nil {
			fail(err)
		}
	}
	logger.Info("starting", "namespace", *namespace, "webhookPort", *webhookPort, "lbClass", *lbClass, "serviceLBNamespace", *serviceLBNS, "workers", *workers, "forwarding", *forwarding, "qps", *qps, "burst", *burst, "leaderElect", *leaderElect)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		fail(err)
	}
}

// checkForwarding refuses a --forwarding value that names no mode, rather
// than start with a default that the speakers, given the same value, would
// not share.
func checkForwarding(mode string) error {
	if slices.Contains(v1beta1.ForwardingModes, mode) {
		return nil
	}
	return fmt.Errorf("--forwarding=%q names no forwarding mode: use %s (the chart's value forwarding.mode)", mode, strings.Join(v1beta1.ForwardingModes, " or "))
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pharos-controller:", err)
	os.Exit(1)
}
