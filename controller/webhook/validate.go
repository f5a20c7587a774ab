// Package webhook is the controller's validating admission webhook for
// IPAddressPools, L2Advertisements and the BGP objects (BGPPeer,
// BGPAdvertisement, Community, BFDProfile), and the rotation of its own TLS
// certificate.
//
// The webhook checks an incoming object together with everything already
// stored, with the same internal/config code the reconcilers use, so the
// webhook and the controller never disagree: what the webhook admits, the
// controller uses; what it would reject but got in while the webhook was
// down, the controller reports in the object's Valid condition.
package webhook

import (
	"context"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
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

func (v poolValidator) ValidateUpdate(ctx context.Context, _, obj *v1beta1.IPAddressPool) (admission.Warnings, error) {
	return v.validate(ctx, obj)
}

// ValidateDelete admits every deletion: the controller moves the Services
// of a deleted pool to other pools or marks them pending, with events.
func (v poolValidator) ValidateDelete(context.Context, *v1beta1.IPAddressPool) (admission.Warnings, error) {
	return nil, nil
}

func (v poolValidator) validate(ctx context.Context, obj *v1beta1.IPAddressPool) (admission.Warnings, error) {
	var pools v1beta1.IPAddressPoolList
	if err := v.reader.List(ctx, &pools); err != nil {
		return nil, fmt.Errorf("cannot list IPAddressPools to check overlaps: %w", err)
	}
	if errs := config.ValidatePool(obj, pools.Items); len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: v1beta1.GroupVersion.Group, Kind: "IPAddressPool"}, obj.Name, errs)
	}
	pool, _ := config.ParsePool(obj)
	// Only warnings depend on the advertisements: when they cannot be
	// read, the pool is admitted without them.
	bgp, err := bgpAdvertisements(ctx, v.reader)
	if err != nil {
		return nil, nil
	}
	warnings := bgpAggregationWarnings(bgp, pool)
	if !announced(ctx, v.reader, bgp, pool) {
		warnings = append(warnings, fmt.Sprintf(
			"no L2Advertisement or BGPAdvertisement selects IPAddressPool %q: its addresses will be assigned to Services but not announced; create an L2Advertisement or a BGPAdvertisement that lists it in spec.ipAddressPools",
			obj.Name))
	}
	return warnings, nil
}

// announced reports whether a valid L2Advertisement or one of the valid
// BGPAdvertisements bgp selects pool. Only a warning depends on it: when
// the L2Advertisements cannot be read, the pool counts as announced.
func announced(ctx context.Context, reader client.Reader, bgp []*config.BGPAdvertisement, pool *config.Pool) bool {
	for _, adv := range bgp {
		if adv.SelectsPoolNamed(pool.Name, pool.Labels) {
			return true
		}
	}
	var l2 v1beta1.L2AdvertisementList
	if err := reader.List(ctx, &l2); err != nil {
		return true
	}
	for i := range l2.Items {
		if adv, _, errs := config.ParseL2Advertisement(&l2.Items[i], nil); len(errs) == 0 && adv.SelectsPool(pool) {
			return true
		}
	}
	return false
}

// bgpAggregationWarnings warns about each of the valid BGPAdvertisements
// advs that selects pool and would aggregate its addresses beyond its
// ranges (the advertisement's Valid condition then says
// AggregationOutsidePool).
func bgpAggregationWarnings(advs []*config.BGPAdvertisement, pool *config.Pool) admission.Warnings {
	var out admission.Warnings
	for _, adv := range advs {
		if !adv.SelectsPoolNamed(pool.Name, pool.Labels) {
			continue
		}
		for _, e := range config.AggregationErrors(adv, pool) {
			out = append(out, fmt.Sprintf("BGPAdvertisement %s: %s", adv.Name, e.Error()))
		}
	}
	return out
}

// bgpAdvertisements returns the valid BGPAdvertisements, sorted by name.
func bgpAdvertisements(ctx context.Context, reader client.Reader) ([]*config.BGPAdvertisement, error) {
	var advs v1beta1.BGPAdvertisementList
	if err := reader.List(ctx, &advs); err != nil {
		return nil, err
	}
	var communities v1beta1.CommunityList
	if err := reader.List(ctx, &communities); err != nil {
		return nil, err
	}
	aliases, _ := config.ParseCommunityAliases(communities.Items)
	var out []*config.BGPAdvertisement
	for i := range advs.Items {
		if adv, _, errs := config.ParseBGPAdvertisement(&advs.Items[i], aliases, nil); len(errs) == 0 {
			out = append(out, adv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
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
	var pools v1beta1.IPAddressPoolList
	if err := v.reader.List(ctx, &pools); err != nil {
		return nil, fmt.Errorf("cannot list IPAddressPools to check the pools named: %w", err)
	}
	_, missing, errs := config.ParseL2Advertisement(obj, config.PoolNames(pools.Items))
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: v1beta1.GroupVersion.Group, Kind: "L2Advertisement"}, obj.Name, errs)
	}
	// Pools may be created after the advertisement that names them, so a
	// missing one is a warning, not a rejection.
	if len(missing) > 0 {
		return admission.Warnings{config.MissingPoolsMessage(missing)}, nil
	}
	return nil, nil
}
