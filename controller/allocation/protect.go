package allocation

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/allocator"
)

// Pools in use are protected, as Kubernetes protects its ServiceCIDRs:
//
//   - While Services hold addresses from a pool, the pool carries the
//     finalizer v1beta1.FinalizerPoolInUse: the Service reconcile adds it
//     before it writes a Service's first addresses from the pool
//     (protectForUse), the pool reconcile makes sure of it, and takes it
//     off when the last Service releases its addresses. A pool that nobody uses has none, so it goes at once,
//     even while no controller runs.
//   - Deleted while in use, the pool stays Terminating: it stays in the
//     allocator's model as a draining pool (allocator.SetDraining), so its
//     Services keep their addresses, the pool annotation that the speakers
//     read, and their announcements, while no Service gets a new address
//     from it. Its condition v1beta1.ConditionDraining (reason
//     ReasonPoolTerminating) names the Services and what to do, with a
//     Warning event. When the last one releases its addresses, the
//     finalizer comes off and the pool is gone. Removing the finalizer by
//     hand forces the deletion: the Services lose the addresses at once,
//     as before the finalizer existed.
//   - Shrunk below addresses in use (spec.addresses, or avoidBuggyIPs),
//     the pool keeps the addresses its Services hold outside the new
//     ranges (allocator.SetConfig), until they release them; no one else
//     gets them meanwhile, and new Services get addresses of the new
//     ranges only. The condition (reason ReasonAddressesOutsidePool) names
//     the Services and their addresses.
//
// The validating webhook warns about both when they are asked for (see
// internal/admit.DeletePool and ShrinkPool).

// namedServices is how many Services a pool's condition names; the others
// are counted.
const namedServices = 5

// poolUsersLocked returns the Services that hold addresses from the pool,
// leaving out the LoadBalancers of another class, whose addresses are only
// kept from our Services.
func (c *Controller) poolUsersLocked(pool string) []string {
	var out []string
	for _, key := range c.alloc.Users(pool) {
		if !c.foreign[key] {
			out = append(out, key)
		}
	}
	return out
}

// poolOutsideLocked is allocator.Outside without the foreign Services.
func (c *Controller) poolOutsideLocked(pool string) []allocator.Held {
	var out []allocator.Held
	for _, h := range c.alloc.Outside(pool) {
		if !c.foreign[h.Key] {
			out = append(out, h)
		}
	}
	return out
}

// protect keeps the pool's finalizer in step with its use: on while
// Services hold its addresses, off when none does. gone says that the pool
// was being deleted and is now released, so there is nothing more to
// write. pool is updated in place by the patch.
func (c *Controller) protect(ctx context.Context, pool *v1beta1.IPAddressPool, users []string) (gone bool, err error) {
	has := controllerutil.ContainsFinalizer(pool, v1beta1.FinalizerPoolInUse)
	deleting := pool.DeletionTimestamp != nil
	switch {
	case len(users) == 0 && has:
		orig := pool.DeepCopy()
		controllerutil.RemoveFinalizer(pool, v1beta1.FinalizerPoolInUse)
		if err := c.client.Patch(ctx, pool, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return false, fmt.Errorf("removing the finalizer %s from IPAddressPool %s: %w", v1beta1.FinalizerPoolInUse, pool.Name, err)
		}
		if deleting {
			log.FromContext(ctx).Info("IPAddressPool is no longer used by any Service; its deletion completes", "pool", pool.Name)
			deletePoolMetrics(pool.Name)
			return true, nil
		}
	case len(users) > 0 && !has && !deleting:
		// A pool being deleted accepts no new finalizer; and if it has
		// none, it was forced (or never used) and goes anyway.
		orig := pool.DeepCopy()
		controllerutil.AddFinalizer(pool, v1beta1.FinalizerPoolInUse)
		if err := c.client.Patch(ctx, pool, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return false, fmt.Errorf("adding the finalizer %s to IPAddressPool %s: %w", v1beta1.FinalizerPoolInUse, pool.Name, err)
		}
	}
	return false, nil
}

// protectForUse puts the finalizer on a pool that a Service is about to
// get new addresses from, before they are written, so that no deletion
// slips in between the write and the pool reconcile that would add it. A
// failure (a stale cache, the webhook down) is left to that reconcile: it
// must not keep the Service from its addresses.
func (c *Controller) protectForUse(ctx context.Context, name string) {
	pool := &v1beta1.IPAddressPool{}
	if err := c.client.Get(ctx, types.NamespacedName{Name: name}, pool); err != nil {
		return
	}
	if pool.DeletionTimestamp != nil || controllerutil.ContainsFinalizer(pool, v1beta1.FinalizerPoolInUse) {
		return
	}
	orig := pool.DeepCopy()
	controllerutil.AddFinalizer(pool, v1beta1.FinalizerPoolInUse)
	if err := c.client.Patch(ctx, pool, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsConflict(err) {
		log.FromContext(ctx).Info("cannot add the pool-in-use finalizer yet; the pool's reconcile retries", "pool", name, "error", err.Error())
	}
}

// drainingCondition returns the pool's Draining condition, or nil when it
// drains nothing: it is deleted while Services use it, or Services keep
// addresses that its spec no longer includes.
func drainingCondition(pool *v1beta1.IPAddressPool, users []string, outside []allocator.Held) *metav1.Condition {
	cond := &metav1.Condition{Type: v1beta1.ConditionDraining, Status: metav1.ConditionTrue, ObservedGeneration: pool.Generation}
	switch {
	case pool.DeletionTimestamp != nil && len(users) > 0 && controllerutil.ContainsFinalizer(pool, v1beta1.FinalizerPoolInUse):
		cond.Reason = v1beta1.ReasonPoolTerminating
		cond.Message = fmt.Sprintf("the pool is being deleted, but %s still %s its addresses: %s; it stays Terminating, and they keep their addresses, until they release them, and no Service gets a new address from it. "+
			"Delete those Services, or move them to another pool (pharos.io/address-pool or pharos.io/loadBalancerIPs); "+
			"to take their addresses away now, remove the finalizer: kubectl patch ipaddresspool %s --type=json -p '[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]'",
			countServices(len(users)), verb(len(users), "holds", "hold"), nameSome(users), pool.Name)
	case len(outside) > 0:
		named := make([]string, len(outside))
		for i, h := range outside {
			named[i] = fmt.Sprintf("%s (%s)", h.Key, joinIPs(h.IPs))
		}
		cond.Reason = v1beta1.ReasonAddressesOutsidePool
		cond.Message = fmt.Sprintf("%s %s addresses that the pool's spec no longer includes: %s; %s them until released, and no other Service gets them meanwhile; new Services get addresses of the current spec only. "+
			"To move %s, delete and recreate %s, or request another address (pharos.io/loadBalancerIPs) or pool (pharos.io/address-pool)",
			countServices(len(outside)), verb(len(outside), "keeps", "keep"), nameSome(named), verb(len(outside), "it keeps", "they keep"),
			verb(len(outside), "it", "them"), verb(len(outside), "it", "them"))
	default:
		return nil
	}
	return cond
}

// setDraining puts cond (nil: none) into the conditions and reports
// whether the condition changed, and whether its reason is new, for an
// event.
func setDraining(conds *[]metav1.Condition, cond *metav1.Condition) (changed, newReason bool) {
	old := meta.FindStatusCondition(*conds, v1beta1.ConditionDraining)
	if cond == nil {
		return meta.RemoveStatusCondition(conds, v1beta1.ConditionDraining), false
	}
	meta.SetStatusCondition(conds, *cond)
	if old == nil || old.Reason != cond.Reason {
		return true, true
	}
	return old.Message != cond.Message || old.Status != cond.Status, false
}

func countServices(n int) string {
	if n == 1 {
		return "1 Service"
	}
	return fmt.Sprintf("%d Services", n)
}

func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// nameSome joins the first namedServices items and counts the rest.
func nameSome(items []string) string {
	if len(items) <= namedServices {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:namedServices], ", "), len(items)-namedServices)
}
