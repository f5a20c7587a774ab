package webhook_test

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/certs"
)

// alsoOnDelete adds DELETE to the operations for which the apiserver calls
// the served configuration's ipaddresspools webhook.
func alsoOnDelete(t *testing.T, s *served) {
	t.Helper()
	ctx := context.Background()
	for i := 0; ; i++ {
		var cfg admissionregistrationv1.ValidatingWebhookConfiguration
		if err := k8s.Get(ctx, types.NamespacedName{Name: s.name}, &cfg); err != nil {
			t.Fatal(err)
		}
		for j := range cfg.Webhooks {
			if cfg.Webhooks[j].Name == "ipaddresspools.pharos.io" {
				cfg.Webhooks[j].Rules[0].Operations = append(cfg.Webhooks[j].Rules[0].Operations, admissionregistrationv1.Delete)
			}
		}
		err := k8s.Update(ctx, &cfg)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) || i > 20 {
			t.Fatal(err)
		}
	}
}

// usingService stores a LoadBalancer Service that holds ips from pool, as
// the controller records it (status and pharos.io/ip-allocated-from-pool),
// and deletes it when the test ends.
func usingService(t *testing.T, name, pool string, ips ...string) {
	t.Helper()
	ctx := context.Background()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{v1beta1.AnnotationAllocatedFromPool: pool}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if err := k8s.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), svc) })
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	if err := k8s.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
}

func TestWebhookWarnsAboutDeletingAPoolInUse(t *testing.T) {
	s := serve(t, "pharos-webhook-protect-delete", certs.Policy{}, admissionregistrationv1.Fail)
	alsoOnDelete(t, s)
	cleanupPools(t)
	ctx := context.Background()
	if err := k8s.Create(ctx, pool("in-use", "198.18.130.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, pool("idle", "198.18.131.0/24")); err != nil {
		t.Fatal(err)
	}
	usingService(t, "web-b", "in-use", "198.18.130.2")
	usingService(t, "web-a", "in-use", "198.18.130.1")
	usingService(t, "elsewhere", "idle-not", "198.18.131.1")

	want := `IPAddressPool in-use is used by 2 Services (pharos-system/web-a, pharos-system/web-b): it stays Terminating until they release their addresses`
	// The apiserver calls the webhook on DELETE once its informer has the
	// new rules: dry runs until it does.
	var got string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		warnings.take()
		if err := k8s.Delete(ctx, pool("in-use"), client.DryRunAll); err != nil {
			t.Fatalf("a dry-run deletion of a pool in use was refused: %v", err)
		}
		if got = strings.Join(warnings.take(), "\n"); strings.Contains(got, want) || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(got, want) || !strings.Contains(got, "remove the finalizer pharos.io/pool-in-use-protection") {
		t.Fatalf("deleting a pool in use warned %q; want %q and how to force it", got, want)
	}
	// Admitted, with the same warning, for real.
	if err := k8s.Delete(ctx, pool("in-use")); err != nil {
		t.Fatalf("deleting a pool in use was refused: %v", err)
	}
	if got := strings.Join(warnings.take(), "\n"); !strings.Contains(got, want) {
		t.Errorf("deleting a pool in use warned %q; want %q", got, want)
	}
	// A pool that no Service uses goes without a word.
	if err := k8s.Delete(ctx, pool("idle")); err != nil {
		t.Fatal(err)
	}
	if got := warnings.take(); len(got) != 0 {
		t.Errorf("deleting an unused pool warned %q", got)
	}
}

func TestWebhookWarnsAboutShrinkingAPoolInUse(t *testing.T) {
	serve(t, "pharos-webhook-protect-shrink", certs.Policy{}, admissionregistrationv1.Fail)
	cleanupPools(t)
	ctx := context.Background()
	if err := k8s.Create(ctx, pool("shrinking", "198.18.132.0/24")); err != nil {
		t.Fatal(err)
	}
	usingService(t, "kept", "shrinking", "198.18.132.10")
	usingService(t, "left-out", "shrinking", "198.18.132.200")

	update := func(change func(*v1beta1.IPAddressPool)) error {
		var p v1beta1.IPAddressPool
		if err := k8s.Get(ctx, types.NamespacedName{Name: "shrinking"}, &p); err != nil {
			t.Fatal(err)
		}
		change(&p)
		return k8s.Update(ctx, &p)
	}
	warnings.take()
	if err := update(func(p *v1beta1.IPAddressPool) { p.Spec.Addresses = []string{"198.18.132.0/25"} }); err != nil {
		t.Fatalf("shrinking a pool in use was refused: %v", err)
	}
	got := strings.Join(warnings.take(), "\n")
	want := "the new spec of IPAddressPool shrinking leaves out addresses that 1 Service holds: pharos-system/left-out (198.18.132.200); they keep them until they release them"
	if !strings.Contains(got, want) || strings.Contains(got, "kept (") {
		t.Fatalf("shrinking a pool in use warned %q; want %q only", got, want)
	}
	// Growing it again says nothing about the Services.
	if err := update(func(p *v1beta1.IPAddressPool) { p.Spec.Addresses = []string{"198.18.132.0/24"} }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(warnings.take(), "\n"); strings.Contains(got, "leaves out") {
		t.Errorf("growing a pool warned %q", got)
	}
	// A change of metadata only, as the controller's finalizer is, is
	// admitted.
	if err := update(func(p *v1beta1.IPAddressPool) { p.Finalizers = append(p.Finalizers, v1beta1.FinalizerPoolInUse) }); err != nil {
		t.Fatalf("adding the finalizer was refused: %v", err)
	}
	if err := update(func(p *v1beta1.IPAddressPool) { p.Finalizers = nil }); err != nil {
		t.Fatalf("removing the finalizer was refused: %v", err)
	}
}
