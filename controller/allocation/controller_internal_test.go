package allocation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/allocator"
)

func TestFailureReason(t *testing.T) {
	exhausted := &allocator.Error{Reason: allocator.PoolExhausted, Message: "no free IPv4 address"}
	for _, tc := range []struct {
		name    string
		err     error
		reason  string
		message string
	}{
		{"allocator error", exhausted, "PoolExhausted", "no free IPv4 address"},
		{"wrapped allocator error", fmt.Errorf("assigning: %w", exhausted), "PoolExhausted", "no free IPv4 address"},
		{"other error", errors.New("boom"), v1beta1.ReasonInternalError, "boom"},
		{"nil allocator error", (*allocator.Error)(nil), v1beta1.ReasonInternalError, "unexpected allocator error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, message := failureReason(tc.err)
			if reason != tc.reason || !strings.Contains(message, tc.message) {
				t.Errorf("failureReason(%v) = %q, %q; want %q and a message with %q", tc.err, reason, message, tc.reason, tc.message)
			}
		})
	}
}

// startedQueue is a controller work queue that r feeds, as when the
// controller has started.
func startedQueue(t *testing.T, r *requeuer) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	t.Helper()
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	t.Cleanup(q.ShutDown)
	if err := r.source().Start(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	return q
}

// withLock runs f with c.mu held and fails if it does not return promptly:
// every reconcile needs c.mu, so a call that blocks under it stops them all.
func withLock(t *testing.T, c *Controller, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		f()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s blocked with the controller's lock held", what)
	}
}

// Re-queueing the Services that wait for an address, and the pools whose
// counts changed, happens with c.mu held: it must not block, however many
// there are and whether or not the queue is being drained, and must not
// drop any.
func TestRequeueNeverBlocksNorDrops(t *testing.T) {
	c := newController(nil, nil, Options{})
	services := startedQueue(t, &c.services)
	pools := startedQueue(t, &c.pools)

	const n = 10000 // well past any channel buffer; nothing drains the queues
	for i := range n {
		c.pending[types.NamespacedName{Namespace: "ns", Name: fmt.Sprint("svc-", i)}] = true
	}
	withLock(t, c, "kickPendingLocked", c.kickPendingLocked)
	if got := services.Len(); got != n {
		t.Errorf("%d Services queued, want %d", got, n)
	}
	withLock(t, c, "kickPendingLocked, again", c.kickPendingLocked)
	if got := services.Len(); got != n {
		t.Errorf("%d Services queued after a second kick, want %d: the queue coalesces", got, n)
	}

	const p = 1000
	withLock(t, c, "poolChanged", func() {
		for i := range p {
			c.poolChanged(fmt.Sprint("pool-", i), "")
		}
	})
	if got := pools.Len(); got != p {
		t.Errorf("%d pools queued, want %d: a count change was dropped", got, p)
	}
}

// Before its controller starts, a requeuer has no queue: adding is a no-op
// (the controller lists everything when it starts), not a block.
func TestRequeueBeforeStart(t *testing.T) {
	c := newController(nil, nil, Options{})
	c.pending[types.NamespacedName{Namespace: "ns", Name: "svc"}] = true
	withLock(t, c, "kickPendingLocked before start", c.kickPendingLocked)
	withLock(t, c, "poolChanged before start", func() { c.poolChanged("pool") })
}

func TestNamespaceRequests(t *testing.T) {
	c := newController(nil, nil, Options{})
	for _, nn := range []types.NamespacedName{{Namespace: "a", Name: "x"}, {Namespace: "a", Name: "y"}, {Namespace: "b", Name: "x"}} {
		c.pending[nn] = true
	}
	got := c.namespaceRequests(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}})
	var names []string
	for _, r := range got {
		names = append(names, r.String())
	}
	if strings.Join(slices.Sorted(slices.Values(names)), " ") != "a/x a/y" {
		t.Errorf("Namespace a re-queues %q, want its own waiting Services a/x and a/y", names)
	}
}
