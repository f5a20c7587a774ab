package allocation

import (
	"net/netip"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/pharos-lb/pharos/internal/allocator"
)

// Pool usage gauges, served on the controller's metrics endpoint. Only the
// leader reconciles pools, so only the leader exports them. A family that
// a pool does not hold has no series.
var (
	poolAddresses = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pharos_pool_addresses",
		Help: "Addresses that the IPAddressPool can assign (after avoidBuggyIPs), by family: its size, whether in use or not.",
	}, []string{"pool", "family"})
	poolAddressesInUse = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pharos_pool_addresses_in_use",
		Help: "Addresses of the IPAddressPool assigned to Services, by family.",
	}, []string{"pool", "family"})
)

// namespaceLookupFailures counts the reconciles of a Service that waited
// because its Namespace could not be read (usually: not in the cache yet).
// A steady rise means Services are not being assigned; see the log.
var namespaceLookupFailures = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "pharos_controller_namespace_lookup_failures_total",
	Help: "Reconciles of a Service that waited because its Namespace, whose labels select its pools, could not be read.",
})

// Allocation outcomes, from the leader.
var (
	allocationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_controller_allocations_total",
		Help: "Addresses newly assigned to Services, by IPAddressPool and family (addresses restored from Service status at startup are not counted).",
	}, []string{"pool", "family"})
	allocationRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_controller_allocation_refusals_total",
		Help: "Services whose IPAllocated condition turned False, by its reason (NoMatchingPool, PoolExhausted, RequestedIPUnavailable, SharingConflict, InvalidRequest, ServiceLBConflict, InternalError): counted once when the condition written enters that reason, not on every reconcile.",
	}, []string{"reason"})
	pendingServices = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pharos_controller_pending_services",
		Help: "LoadBalancer Services of this controller's class that wait for an address and hold none (refused, or waiting for their Namespace); Services left to K3s ServiceLB are not counted.",
	})
)

// collectors are the controller's own metrics, registered on the
// controller-runtime registry that its metrics endpoint serves (and linted
// by TestMetricsFollowTheNamingConventions).
var collectors = []prometheus.Collector{poolAddresses, poolAddressesInUse, namespaceLookupFailures,
	allocationsTotal, allocationRefusals, pendingServices}

func init() { metrics.Registry.MustRegister(collectors...) }

// countAllocations counts the addresses of after that before lacked.
func countAllocations(pool string, before, after []netip.Addr) {
	for _, ip := range after {
		if !slices.Contains(before, ip) {
			allocationsTotal.WithLabelValues(pool, familyOf(ip)).Inc()
		}
	}
}

func familyOf(ip netip.Addr) string {
	if ip.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// countRefusal counts a written IPAllocated condition that enters a
// refusal: it is False, and the previous condition was absent, True, or
// False with another reason.
func countRefusal(old *metav1.Condition, cond metav1.Condition) {
	if cond.Status != metav1.ConditionFalse {
		return
	}
	if old != nil && old.Status == metav1.ConditionFalse && old.Reason == cond.Reason {
		return
	}
	allocationRefusals.WithLabelValues(cond.Reason).Inc()
}

// setPoolMetrics publishes a pool's counts.
func setPoolMetrics(pool string, st allocator.PoolStats) {
	set := func(family string, size float64, used int64) {
		if size == 0 && used == 0 {
			poolAddresses.DeleteLabelValues(pool, family)
			poolAddressesInUse.DeleteLabelValues(pool, family)
			return
		}
		poolAddresses.WithLabelValues(pool, family).Set(size)
		poolAddressesInUse.WithLabelValues(pool, family).Set(float64(used))
	}
	set("IPv4", st.SizeIPv4, st.AssignedIPv4)
	set("IPv6", st.SizeIPv6, st.AssignedIPv6)
}

// deletePoolMetrics removes a deleted pool's series.
func deletePoolMetrics(pool string) {
	poolAddresses.DeletePartialMatch(prometheus.Labels{"pool": pool})
	poolAddressesInUse.DeletePartialMatch(prometheus.Labels{"pool": pool})
}
