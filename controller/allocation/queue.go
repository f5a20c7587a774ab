package allocation

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// requeuer re-queues objects of one of the controller's own controllers,
// for changes that no watch reports (a Service freed an address another
// one waits for; a pool's counts changed).
//
// It adds to the controller's work queue directly rather than sending on a
// channel: Add never blocks, so it may be called with Controller.mu held,
// and the queue coalesces duplicates and re-runs an object that changes
// while it is being reconciled, so no re-queue is ever dropped.
type requeuer struct {
	// mu is a leaf lock: nothing is called while it is held, so it may be
	// taken under Controller.mu.
	mu sync.Mutex
	q  workqueue.TypedRateLimitingInterface[reconcile.Request]
}

// source hands the controller's queue to r when the controller starts.
// Sources start before the controller's first reconcile.
func (r *requeuer) source() source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.q = q
		return nil
	})
}

// add queues a reconcile of nn. Before the controller has started it does
// nothing, which loses nothing: a controller's first act is to list and
// queue every object it watches.
func (r *requeuer) add(nn types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.q != nil {
		r.q.Add(reconcile.Request{NamespacedName: nn})
	}
}
