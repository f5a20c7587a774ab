package chart_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestServerDryRun sends every object that the chart renders, for several
// value sets, to a real kube-apiserver as a server-side dry-run create: the
// apiserver's validation, defaulting and the CRDs' schemas accept them.
// ServiceMonitor and PrometheusRule are left out (their CRDs are not
// installed here); TestMonitoring checks them.
func TestServerDryRun(t *testing.T) {
	ctx := context.Background()
	for name, args := range map[string][]string{
		"defaults":        nil,
		"pools":           {"--set", poolFlag, "--set", "pools[1].addresses[0]=2001:db8:100::/120", "--set", "pools[1].autoAssign=false"},
		"pools upgrade":   {"--is-upgrade", "--set", poolFlag},
		"full":            {"-f", fullValues},
		"webhook off":     {"--set", "webhook.enabled=false", "--set", poolFlag},
		"own namespace":   {"--set", "namespace.create=true", "--set", "namespace.name=pharos-lb", "--set", poolFlag},
		"one replica":     {"--set", "controller.replicas=1", "--set", "webhook.failurePolicy=Ignore"},
		"control plane":   {"--set", "speaker.runOnControlPlane=true"},
		"monitoring only": {"--set", "prometheus.serviceMonitor.enabled=true"},
	} {
		t.Run(name, func(t *testing.T) {
			objs := render(t, args...)
			sent := 0
			for _, o := range objs {
				if o.GetObjectKind().GroupVersionKind().Group == "monitoring.coreos.com" {
					continue
				}
				if o.GetKind() == "Namespace" {
					// Later objects need it for real.
					if err := k8s.Create(ctx, o.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
						t.Errorf("creating Namespace %s: %v", o.GetName(), err)
					}
					continue
				}
				if err := k8s.Create(ctx, o.DeepCopy(), client.DryRunAll); err != nil {
					t.Errorf("dry-run create of %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
				sent++
			}
			if sent < 15 {
				t.Errorf("only %d objects sent", sent)
			}
		})
	}
	// The dry runs stored nothing.
	var secrets corev1.SecretList
	if err := k8s.List(ctx, &secrets, client.InNamespace(releaseNS)); err != nil || len(secrets.Items) != 0 {
		t.Errorf("after dry runs, %s holds %d Secrets (err %v)", releaseNS, len(secrets.Items), err)
	}
}
