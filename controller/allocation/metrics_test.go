package allocation_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
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
		total, ok1 := poolGauge(t, "pharos_pool_addresses_total", pool, fam)
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

	if err := k8s.Delete(context.Background(), dual); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitTime, func() string {
		if got := poolUsage(t, "metrics-dual"); got != "IPv4=- IPv6=- " {
			return fmt.Sprintf("a deleted pool still has gauges: %q", got)
		}
		return ""
	})
}
