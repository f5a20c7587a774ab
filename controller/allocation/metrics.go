package allocation

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/pharos-lb/pharos/internal/allocator"
)

// Pool usage gauges, served on the controller's metrics endpoint. Only the
// leader reconciles pools, so only the leader exports them. A family that
// a pool does not hold has no series.
var (
	poolAddressesTotal = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pharos_pool_addresses_total",
		Help: "Addresses that the IPAddressPool can assign (after avoidBuggyIPs), by family.",
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

func init() {
	metrics.Registry.MustRegister(poolAddressesTotal, poolAddressesInUse, namespaceLookupFailures)
}

// setPoolMetrics publishes a pool's counts.
func setPoolMetrics(pool string, st allocator.PoolStats) {
	set := func(family string, size float64, used int64) {
		if size == 0 && used == 0 {
			poolAddressesTotal.DeleteLabelValues(pool, family)
			poolAddressesInUse.DeleteLabelValues(pool, family)
			return
		}
		poolAddressesTotal.WithLabelValues(pool, family).Set(size)
		poolAddressesInUse.WithLabelValues(pool, family).Set(float64(used))
	}
	set("IPv4", st.SizeIPv4, st.AssignedIPv4)
	set("IPv6", st.SizeIPv6, st.AssignedIPv6)
}

// deletePoolMetrics removes a deleted pool's series.
func deletePoolMetrics(pool string) {
	poolAddressesTotal.DeletePartialMatch(prometheus.Labels{"pool": pool})
	poolAddressesInUse.DeletePartialMatch(prometheus.Labels{"pool": pool})
}
