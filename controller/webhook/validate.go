// Package webhook is the controller's validating admission webhook for
// IPAddressPools, L2Advertisements and the BGP objects (BGPPeer,
// BGPAdvertisement, Community, BFDProfile), and the rotation of its own TLS
// certificate.
//
// The webhook checks an incoming object together with everything already
// stored, with internal/admit (whose checks are the same internal/config
// code the reconcilers use, and which `kubectl pharos validate` runs
// offline), so the
// webhook and the controller never disagree: what the webhook admits, the
// controller uses; what it would reject but got in while the webhook was
// down, the controller reports in the object's Valid condition.
package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/admit"
)

// The paths the ValidatingWebhookConfiguration calls.
const (
	PathIPAddressPool   = "/validate-pharos-io-v1beta1-ipaddresspool"
	PathL2Advertisement = "/validate-pharos-io-v1beta1-l2advertisement"
)

// Register adds the validators to server: pools, L2Advertisements and the
// BGP objects (bgp.go). reader should read from the apiserver, not a
// cache: two pools created a moment apart must see each other, or both
// could be admitted with overlapping addresses.
func Register(server webhook.Server, scheme *runtime.Scheme, reader client.Reader) {
	server.Register(PathIPAddressPool, admission.WithValidator[*v1beta1.IPAddressPool](scheme, poolValidator{reader}))
	server.Register(PathL2Advertisement, admission.WithValidator[*v1beta1.L2Advertisement](scheme, l2Validator{reader}))
	registerBGP(server, scheme, reader)
}

// Probe is an IPAddressPool that the CRD's schema accepts and the webhook
// refuses (a selector operator that does not exist), so that a refusal of
// a dry-run create of it can only come from the webhook: how one asks
// whether the apiserver calls the webhook yet.
func Probe() *v1beta1.IPAddressPool {
	return &v1beta1.IPAddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: "pharos-webhook-check"},
		Spec: v1beta1.IPAddressPoolSpec{
			Addresses: []string{"2001:db8:ffff:ffff::/128"},
			ServiceAllocation: &v1beta1.ServiceAllocation{NamespaceSelectors: []metav1.LabelSelector{{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pharos.io/webhook-check", Operator: "OnlyTheWebhookRefusesThis"}},
			}}},
		},
	}
}

type poolValidator struct{ reader client.Reader }

func (v poolValidator) ValidateCreate(ctx context.Context, obj *v1beta1.IPAddressPool) (admission.Warnings, error) {
	return v.validate(ctx, obj)
}

// ValidateUpdate checks a changed spec as a new pool, and warns about the
// Services that hold addresses the new spec leaves out (admit.ShrinkPool).
// An update that leaves the spec alone (labels, annotations, finalizers:
// the controller's pool-in-use finalizer among them) cannot make the pool
// any less valid, so its errors do not refuse it: a pool that got in
// invalid while the webhook was down can still be protected and released.
func (v poolValidator) ValidateUpdate(ctx context.Context, old, obj *v1beta1.IPAddressPool) (admission.Warnings, error) {
	w, err := v.validate(ctx, obj)
	if equality.Semantic.DeepEqual(old.Spec, obj.Spec) {
		if err != nil {
			return nil, nil
		}
		return w, nil
	}
	if err != nil {
		return nil, err
	}
	if svcs, ok := v.services(ctx); ok {
		w = append(w, admit.ShrinkPool(obj, svcs)...)
	}
	return w, nil
}

// ValidateDelete admits every deletion, warning about the Services that
// hold the pool's addresses (admit.DeletePool): the controller's finalizer
// keeps the pool Terminating, and them their addresses, until they
// release them.
func (v poolValidator) ValidateDelete(ctx context.Context, obj *v1beta1.IPAddressPool) (admission.Warnings, error) {
	svcs, ok := v.services(ctx)
	if !ok {
		return nil, nil
	}
	return admit.DeletePool(obj, svcs), nil
}

// services lists the Services, for the warnings about a pool in use; ok is
// false when they cannot be read, and the warnings are then left out
// rather than guessed.
func (v poolValidator) services(ctx context.Context) ([]corev1.Service, bool) {
	var l corev1.ServiceList
	if err := v.reader.List(ctx, &l); err != nil {
		return nil, false
	}
	return l.Items, true
}

func (v poolValidator) validate(ctx context.Context, obj *v1beta1.IPAddressPool) (admission.Warnings, error) {
	var s admit.Stored
	if err := list(ctx, v.reader, &s, storedPools); err != nil {
		return nil, fmt.Errorf("cannot list IPAddressPools to check overlaps: %w", err)
	}
	// Only warnings depend on the advertisements: when they cannot be
	// read, the pool is admitted without them.
	if list(ctx, v.reader, &s, storedL2, storedBGPAdvertisements, storedCommunities) != nil {
		s.Incomplete = true
	}
	return answer(admit.Pool(obj, s))
}

type l2Validator struct{ reader client.Reader }

func (v l2Validator) ValidateCreate(ctx context.Context, obj *v1beta1.L2Advertisement) (admission.Warnings, error) {
	return v.validate(ctx, obj)
}

func (v l2Validator) ValidateUpdate(ctx context.Context, _, obj *v1beta1.L2Advertisement) (admission.Warnings, error) {
	return v.validate(ctx, obj)
}

func (v l2Validator) ValidateDelete(context.Context, *v1beta1.L2Advertisement) (admission.Warnings, error) {
	return nil, nil
}

func (v l2Validator) validate(ctx context.Context, obj *v1beta1.L2Advertisement) (admission.Warnings, error) {
	var s admit.Stored
	if err := list(ctx, v.reader, &s, storedPools); err != nil {
		return nil, fmt.Errorf("cannot list IPAddressPools to check the pools named: %w", err)
	}
	return answer(admit.L2Advertisement(obj, s))
}

// answer turns a verdict into the webhook's answer.
func answer(v admit.Verdict) (admission.Warnings, error) {
	if err := v.Err(); err != nil {
		return nil, err
	}
	return v.Warnings, nil
}

// storedKind names one list of admit.Stored.
type storedKind int

const (
	storedPools storedKind = iota
	storedL2
	storedBGPAdvertisements
	storedCommunities
	storedBFDProfiles
	storedBGPPeers
)

// list reads the kinds into s, from the apiserver.
func list(ctx context.Context, reader client.Reader, s *admit.Stored, kinds ...storedKind) error {
	for _, k := range kinds {
		var err error
		switch k {
		case storedPools:
			var l v1beta1.IPAddressPoolList
			err = reader.List(ctx, &l)
			s.Pools = l.Items
		case storedL2:
			var l v1beta1.L2AdvertisementList
			err = reader.List(ctx, &l)
			s.L2Advertisements = l.Items
		case storedBGPAdvertisements:
			var l v1beta1.BGPAdvertisementList
			err = reader.List(ctx, &l)
			s.BGPAdvertisements = l.Items
		case storedCommunities:
			var l v1beta1.CommunityList
			err = reader.List(ctx, &l)
			s.Communities = l.Items
		case storedBFDProfiles:
			var l v1beta1.BFDProfileList
			err = reader.List(ctx, &l)
			s.BFDProfiles = l.Items
		case storedBGPPeers:
			var l v1beta1.BGPPeerList
			err = reader.List(ctx, &l)
			s.BGPPeers = l.Items
		}
		if err != nil {
			return err
		}
	}
	return nil
}
