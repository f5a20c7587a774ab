package allocation

import (
	"testing"

	"github.com/pharos-lb/pharos/internal/allocator"
	"github.com/pharos-lb/pharos/internal/metricstest"
)

// TestMetricsFollowTheNamingConventions lints every metric the controller
// registers as `promtool check metrics` would (a gauge named _total, a
// counter without it, a unit that is not a base unit, no help), each with
// one series so that none escapes.
func TestMetricsFollowTheNamingConventions(t *testing.T) {
	const pool = "lint-pool"
	t.Cleanup(func() { deletePoolMetrics(pool) })
	setPoolMetrics(pool, allocator.PoolStats{AssignedIPv4: 1, SizeIPv4: 4})
	allocationsTotal.WithLabelValues(pool, "IPv4").Add(0)
	allocationRefusals.WithLabelValues("NoMatchingPool").Add(0)
	names := metricstest.Lint(t, metricstest.Collectors(collectors))
	if len(names) != len(collectors) {
		t.Errorf("linted %v, want the %d families of collectors", names, len(collectors))
	}
}
