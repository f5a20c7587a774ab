// Package webhook is the controller's validating admission webhook for
// IPAddressPools and L2Advertisements, and the rotation of its own TLS
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

// Register adds both validators to server. reader should read from the
// apiserver, not a cache: two pools created a moment apart must see each
// other, or both could be admitted with overlapping addresses.
func Register(server webhook.Server, scheme *runtime.Scheme, reader client.Reader) {
	server.Register(PathIPAddressPool, admission.WithValidator[*v1beta1.IPAddressPool](scheme, poolValidator{reader}))
	server.Register(PathL2Advertisement, admission.WithValidator[*v1beta1.L2Advertisement](scheme, l2Validator{reader}))
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
	var advs v1beta1.L2AdvertisementList
	if err := v.reader.List(ctx, &advs); err != nil {
		// Only a warning depends on it; the pool itself is fine.
		return nil, nil
	}
	pool, _ := config.ParsePool(obj)
	for i := range advs.Items {
		if adv, _, errs := config.ParseL2Advertisement(&advs.Items[i], nil); len(errs) == 0 && adv.SelectsPool(pool) {
			return nil, nil
		}
	}
	return admission.Warnings{fmt.Sprintf(
		"no L2Advertisement selects IPAddressPool %q: its addresses will be assigned to Services but not announced; create an L2Advertisement that lists it in spec.ipAddressPools",
		obj.Name)}, nil
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
