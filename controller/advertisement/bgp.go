package advertisement

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/admit"
	"github.com/pharos-lb/pharos/internal/config"
)

// +kubebuilder:rbac:groups=pharos.io,resources=bgppeers;bgpadvertisements;communities;bfdprofiles,verbs=get;list;watch
// +kubebuilder:rbac:groups=pharos.io,resources=bgppeers/status;bgpadvertisements/status,verbs=update

// SetupBGPWithManager registers the reconcilers of the Valid condition of
// BGPPeers and BGPAdvertisements. A peer is re-checked when a BFDProfile
// it names changes; every advertisement is re-checked when a pool, a
// Community or another advertisement changes (its spec or labels: the
// pools' frequent status updates change neither).
func SetupBGPWithManager(mgr ctrl.Manager) error {
	rec := mgr.GetEventRecorder("pharos-controller")
	peers := &PeerReconciler{client: mgr.GetClient(), recorder: rec}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("bgppeer").
		For(&v1beta1.BGPPeer{}).
		Watches(&v1beta1.BFDProfile{}, handler.EnqueueRequestsFromMapFunc(peers.naming)).
		Complete(peers); err != nil {
		return err
	}
	advs := &BGPAdvertisementReconciler{client: mgr.GetClient(), recorder: rec}
	specOrLabels := builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))
	return ctrl.NewControllerManagedBy(mgr).
		Named("bgpadvertisement").
		For(&v1beta1.BGPAdvertisement{}).
		Watches(&v1beta1.IPAddressPool{}, handler.EnqueueRequestsFromMapFunc(advs.all), specOrLabels).
		Watches(&v1beta1.Community{}, handler.EnqueueRequestsFromMapFunc(advs.all), specOrLabels).
		// A localPref conflict involves two advertisements, and resolves
		// when the other one changes or goes.
		Watches(&v1beta1.BGPAdvertisement{}, handler.EnqueueRequestsFromMapFunc(advs.all), specOrLabels).
		Complete(advs)
}

// PeerReconciler writes the Valid condition of BGPPeers.
type PeerReconciler struct {
	client   client.Client
	recorder recorder.EventRecorder
}

// naming maps a BFDProfile to the peers that name it.
func (r *PeerReconciler) naming(ctx context.Context, profile client.Object) []reconcile.Request {
	var list v1beta1.BGPPeerList
	if err := r.client.List(ctx, &list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if list.Items[i].Spec.BFDProfile == profile.GetName() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return out
}

// Reconcile validates one BGPPeer and looks up its BFDProfile.
func (r *PeerReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	peer := &v1beta1.BGPPeer{}
	if err := r.client.Get(ctx, req.NamespacedName, peer); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	cond := validCondition(peer.Generation, "the peer is valid")
	if _, errs := config.ParseBGPPeer(peer); len(errs) > 0 {
		invalid(&cond, ReasonInvalidSpec, errs, "the speakers do not open this session until this is fixed")
	} else if peer.Spec.BFDProfile != "" {
		var profiles v1beta1.BFDProfileList
		if err := r.client.List(ctx, &profiles); err != nil {
			return reconcile.Result{}, err
		}
		if why := admit.BFDProblem(peer, profiles.Items); why != "" {
			cond.Reason, cond.Message = ReasonBFDProfileMissing, why
		}
	}
	old := meta.FindStatusCondition(peer.Status.Conditions, v1beta1.ConditionValid)
	if sameCondition(old, cond) && peer.Status.ObservedGeneration == peer.Generation {
		return reconcile.Result{}, nil
	}
	desired := peer.DeepCopy()
	desired.Status.ObservedGeneration = peer.Generation
	meta.SetStatusCondition(&desired.Status.Conditions, cond)
	if err := r.client.Status().Update(ctx, desired); err != nil {
		// A conflict is returned too: the workqueue retries it with
		// backoff, from a fresh read.
		return reconcile.Result{}, fmt.Errorf("writing status of BGPPeer %s: %w", peer.Name, err)
	}
	warn(ctx, r.recorder, desired, "BGPPeer", cond)
	return reconcile.Result{}, nil
}

// BGPAdvertisementReconciler writes the Valid condition of
// BGPAdvertisements.
type BGPAdvertisementReconciler struct {
	client   client.Client
	recorder recorder.EventRecorder
}

func (r *BGPAdvertisementReconciler) all(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1beta1.BGPAdvertisementList
	if err := r.client.List(ctx, &list); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}

// Reconcile checks one BGPAdvertisement against the pools, the community
// aliases and the other advertisements.
func (r *BGPAdvertisementReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	adv := &v1beta1.BGPAdvertisement{}
	if err := r.client.Get(ctx, req.NamespacedName, adv); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var (
		pools       v1beta1.IPAddressPoolList
		communities v1beta1.CommunityList
		advs        v1beta1.BGPAdvertisementList
	)
	for _, l := range []client.ObjectList{&pools, &communities, &advs} {
		if err := r.client.List(ctx, l); err != nil {
			return reconcile.Result{}, err
		}
	}
	check := admit.CheckBGPAdvertisement(adv, admit.BGPObjects{Pools: pools.Items, Communities: communities.Items, Advertisements: advs.Items})
	cond := validCondition(adv.Generation, "the advertisement is valid")
	switch {
	case len(check.Invalid) > 0:
		invalid(&cond, ReasonInvalidSpec, check.Invalid, "the advertisement is not applied until this is fixed")
	case len(check.LocalPref[adv.Name]) > 0:
		invalid(&cond, ReasonLocalPrefConflict, check.LocalPref[adv.Name],
			"the speakers leave this advertisement out until the localPref values agree (the later one in name order gives way)")
	case len(check.NamedAggregation)+len(check.SelectedAggregation) > 0:
		invalid(&cond, ReasonAggregationOutsidePool, append(check.NamedAggregation, check.SelectedAggregation...),
			"set a longer aggregation length, or make the pool's ranges whole prefixes of that length")
	case len(check.Missing) > 0:
		cond.Reason, cond.Message = ReasonPoolMissing, config.MissingPoolsMessage(check.Missing)
	}
	old := meta.FindStatusCondition(adv.Status.Conditions, v1beta1.ConditionValid)
	if sameCondition(old, cond) && adv.Status.ObservedGeneration == adv.Generation {
		return reconcile.Result{}, nil
	}
	desired := adv.DeepCopy()
	desired.Status.ObservedGeneration = adv.Generation
	meta.SetStatusCondition(&desired.Status.Conditions, cond)
	if err := r.client.Status().Update(ctx, desired); err != nil {
		return reconcile.Result{}, fmt.Errorf("writing status of BGPAdvertisement %s: %w", adv.Name, err)
	}
	warn(ctx, r.recorder, desired, "BGPAdvertisement", cond)
	return reconcile.Result{}, nil
}

func validCondition(generation int64, msg string) metav1.Condition {
	return metav1.Condition{Type: v1beta1.ConditionValid, Status: metav1.ConditionTrue, Reason: ReasonValid,
		ObservedGeneration: generation, Message: msg}
}

// invalid makes cond False with reason and the errors, and what follows.
func invalid(cond *metav1.Condition, reason string, errs field.ErrorList, then string) {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	cond.Status, cond.Reason = metav1.ConditionFalse, reason
	cond.Message = strings.Join(msgs, "; ") + "; " + then
}

func sameCondition(old *metav1.Condition, c metav1.Condition) bool {
	return old != nil && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message &&
		old.ObservedGeneration == c.ObservedGeneration
}

// warn repeats a False condition, or a missing BFDProfile (the session
// then runs without the failure detection it asks for), as a Warning event
// on the object; it is called only when the condition changes.
func warn(ctx context.Context, rec recorder.EventRecorder, obj client.Object, kind string, cond metav1.Condition) {
	if cond.Status == metav1.ConditionTrue && cond.Reason != ReasonBFDProfileMissing {
		return
	}
	log.FromContext(ctx).Info(kind+" is not fully applied", "name", obj.GetName(), "reason", cond.Reason, "message", cond.Message)
	rec.Eventf(obj, nil, "Warning", cond.Reason, "Validate", "%s", cond.Message)
}
