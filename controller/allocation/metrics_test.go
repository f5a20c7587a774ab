package allocation_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/controller/allocation"
)

// poolGauge reads one pool gauge from the registry that the controller's
// metrics endpoint serves.
func poolGauge(t *testing.T, name, pool, family string) (float64, bool) {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["pool"] == pool && l["family"] == family {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// poolUsage renders a pool's gauges as "total/in_use" per family, "-" for
// a missing series.
func poolUsage(t *testing.T, pool string) string {
	out := ""
	for _, fam := range []string{"IPv4", "IPv6"} {
		total, ok1 := poolGauge(t, "pharos_pool_addresses", pool, fam)
		used, ok2 := poolGauge(t, "pharos_pool_addresses_in_use", pool, fam)
		if !ok1 || !ok2 {
			out += fam + "=- "
			continue
		}
		out += fmt.Sprintf("%s=%v/%v ", fam, used, total)
	}
	return out
}

func TestPoolMetricsFollowThePool(t *testing.T) {
	ns := testNamespace(t, nil)
	dual := createPool(t, "metrics-dual", []string{"198.18.53.0/30", "2001:db8:53::/126"})
	createPool(t, "metrics-v4", []string{"198.18.54.0/29"}, noAutoAssign)
	startController(t, controllerOpts{})

	createService(t, ns, "a", dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	createService(t, ns, "b")
	createService(t, ns, "c", annotate("pharos.io/address-pool", "metrics-v4"))
	waitIPs(t, ns, "c", "198.18.54.0")
	eventually(t, waitTime, func() string {
		got := poolUsage(t, "metrics-dual") + "| " + poolUsage(t, "metrics-v4")
		if want := "IPv4=2/4 IPv6=1/4 | IPv4=1/8 IPv6=- "; got != want {
			return fmt.Sprintf("gauges %q, want %q", got, want)
		}
		return ""
	})

	// Deleted while a and b use it, the pool stays, and so do its gauges,
	// until they are gone.
	if err := k8s.Delete(context.Background(), dual); err != nil {
		t.Fatal(err)
	}
	waitDraining(t, dual.Name, v1beta1.ReasonPoolTerminating, ns+"/a", ns+"/b")
	if got := poolUsage(t, "metrics-dual"); got != "IPv4=2/4 IPv6=1/4 " {
		t.Errorf("gauges of the Terminating pool %q", got)
	}
	deleteServices(t, ns)
	eventually(t, waitTime, func() string {
		if got := poolUsage(t, "metrics-dual"); got != "IPv4=- IPv6=- " {
			return fmt.Sprintf("a deleted pool still has gauges: %q", got)
		}
		return ""
	})
}

// TestAllocationMetrics follows the allocation counters and the pending
// gauge through what a user does: Services assigned, one refused while the
// pool is full (counted once, however often it is reconciled), one asking
// for a pool that does not exist, then the full pool freed.
func TestAllocationMetrics(t *testing.T) {
	ns := testNamespace(t, nil)
	pool := "metrics-alloc"
	createPool(t, pool, []string{"198.18.56.0/31", "2001:db8:56::/127"}, noAutoAssign)
	startController(t, controllerOpts{})
	inPool := annotate(v1beta1.AnnotationAddressPool, pool)

	allocated := func(family string) float64 {
		return testutil.ToFloat64(allocation.AllocationsTotal.WithLabelValues(pool, family))
	}
	refused := func(reason string) float64 {
		return testutil.ToFloat64(allocation.AllocationRefusals.WithLabelValues(reason))
	}
	v4, v6 := allocated("IPv4"), allocated("IPv6")
	exhausted, noPool := refused("PoolExhausted"), refused("NoMatchingPool")
	// want checks the metrics, as changes since the start of the test
	// (the counters are the process's) and the pending gauge's value.
	want := func(step string, dv4, dv6, dExhausted, dNoPool, pending float64) {
		t.Helper()
		eventually(t, waitTime, func() string {
			got := []float64{allocated("IPv4") - v4, allocated("IPv6") - v6, refused("PoolExhausted") - exhausted,
				refused("NoMatchingPool") - noPool, testutil.ToFloat64(allocation.PendingServices)}
			if w := []float64{dv4, dv6, dExhausted, dNoPool, pending}; !slices.Equal(got, w) {
				return fmt.Sprintf("%s: allocated IPv4, IPv6, refused PoolExhausted, NoMatchingPool, pending = %v, want %v", step, got, w)
			}
			return ""
		})
	}

	createService(t, ns, "dual", inPool, dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	waitIPs(t, ns, "dual", "198.18.56.0,2001:db8:56::")
	want("dual-stack Service assigned", 1, 1, 0, 0, 0)
	createService(t, ns, "v4", inPool)
	waitIPs(t, ns, "v4", "198.18.56.1")
	want("second Service fills the IPv4 range", 2, 1, 0, 0, 0)

	createService(t, ns, "waits", inPool)
	waitReason(t, ns, "waits", "PoolExhausted", pool)
	want("third Service refused", 2, 1, 1, 0, 1)
	// More reconciles of the refused Service: no new refusal.
	for i := range 3 {
		updateService(t, ns, "waits", func(s *corev1.Service) { s.Labels = map[string]string{"touch": fmt.Sprint(i)} })
	}
	consistently(t, time.Second, func() string {
		if d := refused("PoolExhausted") - exhausted; d != 1 {
			return fmt.Sprintf("PoolExhausted refusals %v after reconciles of the same refusal, want 1", d)
		}
		return ""
	})

	createService(t, ns, "nowhere", annotate(v1beta1.AnnotationAddressPool, "metrics-nope"))
	waitReason(t, ns, "nowhere", "NoMatchingPool", "metrics-nope")
	want("Service asks for a missing pool", 2, 1, 1, 1, 2)

	if err := k8s.Delete(context.Background(), getService(t, ns, "v4")); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, ns, "waits", "198.18.56.1")
	want("freed address goes to the waiting Service", 3, 1, 1, 1, 1)
	if err := k8s.Delete(context.Background(), getService(t, ns, "nowhere")); err != nil {
		t.Fatal(err)
	}
	want("refused Service deleted", 3, 1, 1, 1, 0)
}
