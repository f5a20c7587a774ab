package allocation

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/allocator"
)

// poolGauges reads the pool gauges from the controller-runtime registry,
// as the metrics endpoint serves them, for the pools named unit-*:
// "name pool family" -> value.
func poolGauges(t *testing.T) map[string]float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "pharos_pool_addresses" && mf.GetName() != "pharos_pool_addresses_in_use" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if strings.HasPrefix(l["pool"], "unit-") { // other tests' pools may be there too
				out[mf.GetName()+" "+l["pool"]+" "+l["family"]] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestPoolMetrics(t *testing.T) {
	setPoolMetrics("unit-a", allocator.PoolStats{AssignedIPv4: 3, SizeIPv4: 256, AssignedIPv6: 1, SizeIPv6: 0x1p64})
	setPoolMetrics("unit-b", allocator.PoolStats{AssignedIPv4: 1, SizeIPv4: 4})
	want := map[string]float64{
		"pharos_pool_addresses unit-a IPv4":        256,
		"pharos_pool_addresses_in_use unit-a IPv4": 3,
		"pharos_pool_addresses unit-a IPv6":        0x1p64,
		"pharos_pool_addresses_in_use unit-a IPv6": 1,
		"pharos_pool_addresses unit-b IPv4":        4,
		"pharos_pool_addresses_in_use unit-b IPv4": 1,
	}
	check := func(step string) {
		t.Helper()
		got := poolGauges(t)
		if len(got) != len(want) {
			t.Errorf("%s: series %v, want %v", step, got, want)
		}
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s: %s = %v (present %v), want %v", step, k, g, ok, v)
			}
		}
	}
	check("set")
	// A pool that loses its IPv6 range loses those series.
	setPoolMetrics("unit-a", allocator.PoolStats{AssignedIPv4: 3, SizeIPv4: 256})
	delete(want, "pharos_pool_addresses unit-a IPv6")
	delete(want, "pharos_pool_addresses_in_use unit-a IPv6")
	check("IPv6 range removed")
	deletePoolMetrics("unit-a")
	deletePoolMetrics("unit-b")
	want = map[string]float64{}
	check("pools deleted")
}

// TestRefusalCountedOnTransition: a refusal is counted when the written
// condition enters it, not when it is written again or its message alone
// changes.
func TestRefusalCountedOnTransition(t *testing.T) {
	cond := func(status metav1.ConditionStatus, reason, msg string) *metav1.Condition {
		return &metav1.Condition{Type: v1beta1.ConditionIPAllocated, Status: status, Reason: reason, Message: msg}
	}
	for _, tc := range []struct {
		name string
		old  *metav1.Condition
		cond *metav1.Condition
		want float64
	}{
		{"new Service refused", nil, cond(metav1.ConditionFalse, "unit-PoolExhausted", "a"), 1},
		{"allocated Service refused", cond(metav1.ConditionTrue, "Allocated", ""), cond(metav1.ConditionFalse, "unit-PoolExhausted", "a"), 1},
		{"another refusal", cond(metav1.ConditionFalse, "unit-NoMatchingPool", ""), cond(metav1.ConditionFalse, "unit-PoolExhausted", "a"), 1},
		{"same refusal, new message", cond(metav1.ConditionFalse, "unit-PoolExhausted", "a"), cond(metav1.ConditionFalse, "unit-PoolExhausted", "b"), 0},
		{"allocated", cond(metav1.ConditionFalse, "unit-PoolExhausted", "a"), cond(metav1.ConditionTrue, "Allocated", ""), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := allocationRefusals.WithLabelValues(tc.cond.Reason)
			before := testutil.ToFloat64(c)
			countRefusal(tc.old, *tc.cond)
			if got := testutil.ToFloat64(c) - before; got != tc.want {
				t.Errorf("refusals of %s rose by %v, want %v", tc.cond.Reason, got, tc.want)
			}
		})
	}
	for _, r := range []string{"unit-PoolExhausted", "unit-NoMatchingPool", "Allocated"} {
		allocationRefusals.DeleteLabelValues(r)
	}
}
