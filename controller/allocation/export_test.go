package allocation

import (
	"testing"
	"time"
)

// SetNamespaceRetry sets the backoff of the Services whose Namespace cannot
// be read, for the controllers created until the test ends.
func SetNamespaceRetry(t testing.TB, base, max time.Duration) {
	oldBase, oldMax := namespaceRetryBase, namespaceRetryMax
	namespaceRetryBase, namespaceRetryMax = base, max
	t.Cleanup(func() { namespaceRetryBase, namespaceRetryMax = oldBase, oldMax })
}

// The allocation metrics, for the tests to read as the endpoint serves them.
var (
	AllocationsTotal   = allocationsTotal
	AllocationRefusals = allocationRefusals
	PendingServices    = pendingServices
)
