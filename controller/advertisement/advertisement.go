// Package advertisement validates L2Advertisements and reports the result
// in their Valid condition, with the same internal/config code that the
// speakers use, so that a user sees on the object why it is not applied.
package advertisement

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
)

// +kubebuilder:rbac:groups=pharos.io,resources=l2advertisements,verbs=get;list;watch
// +kubebuilder:rbac:groups=pharos.io,resources=l2advertisements/status,verbs=update

// Reconciler writes the Valid condition of L2Advertisements.
type Reconciler struct {
	client   client.Client
	recorder recorder.EventRecorder
}

// SetupWithManager registers the reconciler; pool changes re-check every
// advertisement, because a named pool may appear or vanish.
func SetupWithManager(mgr ctrl.Manager) error {
	r := &Reconciler{client: mgr.GetClient(), recorder: mgr.GetEventRecorder("pharos-controller")}
	return ctrl.NewControllerManagedBy(mgr).
		Named("l2advertisement").
		For(&v1beta1.L2Advertisement{}).
		Watches(&v1beta1.IPAddressPool{}, handler.EnqueueRequestsFromMapFunc(r.all)).
		Complete(r)
}

func (r *Reconciler) all(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1beta1.L2AdvertisementList
	if err := r.client.List(ctx, &list); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, a := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&a)})
	}
	return out
}

// Reconcile validates one L2Advertisement against the current pools.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	adv := &v1beta1.L2Advertisement{}
	if err := r.client.Get(ctx, req.NamespacedName, adv); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var pools v1beta1.IPAddressPoolList
	if err := r.client.List(ctx, &pools); err != nil {
		return reconcile.Result{}, err
	}
	// A pool exists for the advertisement as long as its object does: one
	// whose new spec is invalid keeps serving on its last valid spec.
	_, missing, errs := config.ParseL2Advertisement(adv, config.PoolNames(pools.Items))
	cond := metav1.Condition{Type: v1beta1.ConditionValid, Status: metav1.ConditionTrue, Reason: "Valid", ObservedGeneration: adv.Generation,
		Message: "the advertisement is valid"}
	if m := config.MissingPoolsMessage(missing); m != "" {
		cond.Reason, cond.Message = "PoolMissing", m
	}
	if len(errs) > 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, "InvalidSpec"
		cond.Message = errs.ToAggregate().Error() + "; the advertisement is not applied until this is fixed"
	}
	old := meta.FindStatusCondition(adv.Status.Conditions, v1beta1.ConditionValid)
	if old != nil && old.Status == cond.Status && old.Reason == cond.Reason && old.Message == cond.Message && old.ObservedGeneration == cond.ObservedGeneration {
		return reconcile.Result{}, nil
	}
	desired := adv.DeepCopy()
	desired.Status.ObservedGeneration = adv.Generation
	meta.SetStatusCondition(&desired.Status.Conditions, cond)
	if err := r.client.Status().Update(ctx, desired); err != nil {
		// A conflict is returned too: the workqueue retries it with
		// backoff, from a fresh read.
		return reconcile.Result{}, fmt.Errorf("writing status of L2Advertisement %s: %w", adv.Name, err)
	}
	if cond.Status == metav1.ConditionFalse {
		log.FromContext(ctx).Info("L2Advertisement is invalid", "name", adv.Name, "message", cond.Message)
		r.recorder.Eventf(desired, nil, "Warning", "InvalidSpec", "Validate", "%s", cond.Message)
	}
	return reconcile.Result{}, nil
}
