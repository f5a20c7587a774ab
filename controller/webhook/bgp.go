package webhook

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/admit"
)

// The paths of the BGP validators.
const (
	PathBGPPeer          = "/validate-pharos-io-v1beta1-bgppeer"
	PathBGPAdvertisement = "/validate-pharos-io-v1beta1-bgpadvertisement"
	PathCommunity        = "/validate-pharos-io-v1beta1-community"
	// PathBFDProfile is also called on DELETE: a profile that a BGPPeer
	// names may not be deleted.
	PathBFDProfile = "/validate-pharos-io-v1beta1-bfdprofile"
)

func registerBGP(server webhook.Server, scheme *runtime.Scheme, reader client.Reader) {
	server.Register(PathBGPPeer, admission.WithValidator[*v1beta1.BGPPeer](scheme, peerValidator{reader}))
	server.Register(PathBGPAdvertisement, admission.WithValidator[*v1beta1.BGPAdvertisement](scheme, bgpAdvValidator{reader}))
	server.Register(PathCommunity, admission.WithValidator[*v1beta1.Community](scheme, communityValidator{reader}))
	server.Register(PathBFDProfile, admission.WithValidator[*v1beta1.BFDProfile](scheme, bfdValidator{reader}))
}

type peerValidator struct{ reader client.Reader }

func (v peerValidator) ValidateCreate(ctx context.Context, obj *v1beta1.BGPPeer) (admission.Warnings, error) {
	return v.validate(ctx, obj)
}

func (v peerValidator) ValidateUpdate(ctx context.Context, _, obj *v1beta1.BGPPeer) (admission.Warnings, error) {
	return v.validate(ctx, obj)
}

// ValidateDelete admits every deletion: the speakers close the session.
func (v peerValidator) ValidateDelete(context.Context, *v1beta1.BGPPeer) (admission.Warnings, error) {
	return nil, nil
}

func (v peerValidator) validate(ctx context.Context, obj *v1beta1.BGPPeer) (admission.Warnings, error) {
	var s admit.Stored
	// The profile is only a warning: without the list, none is given.
	if obj.Spec.BFDProfile != "" && list(ctx, v.reader, &s, storedBFDProfiles) != nil {
		s.Incomplete = true
	}
	return answer(admit.BGPPeer(obj, s))
}

type bgpAdvValidator struct{ reader client.Reader }

func (v bgpAdvValidator) ValidateCreate(ctx context.Context, obj *v1beta1.BGPAdvertisement) (admission.Warnings, error) {
	return v.validate(ctx, obj)
}

func (v bgpAdvValidator) ValidateUpdate(ctx context.Context, _, obj *v1beta1.BGPAdvertisement) (admission.Warnings, error) {
	return v.validate(ctx, obj)
}

func (v bgpAdvValidator) ValidateDelete(context.Context, *v1beta1.BGPAdvertisement) (admission.Warnings, error) {
	return nil, nil
}

func (v bgpAdvValidator) validate(ctx context.Context, obj *v1beta1.BGPAdvertisement) (admission.Warnings, error) {
	var s admit.Stored
	for _, l := range []struct {
		kind storedKind
		what string
	}{{storedPools, "IPAddressPools to check the pools named"}, {storedCommunities, "Communities to resolve community aliases"}, {storedBGPAdvertisements, "BGPAdvertisements to check localPref"}} {
		if err := list(ctx, v.reader, &s, l.kind); err != nil {
			return nil, fmt.Errorf("cannot list %s: %w", l.what, err)
		}
	}
	return answer(admit.BGPAdvertisement(obj, s))
}

type communityValidator struct{ reader client.Reader }

func (v communityValidator) ValidateCreate(ctx context.Context, obj *v1beta1.Community) (admission.Warnings, error) {
	return v.validate(ctx, obj)
}

func (v communityValidator) ValidateUpdate(ctx context.Context, _, obj *v1beta1.Community) (admission.Warnings, error) {
	return v.validate(ctx, obj)
}

// ValidateDelete admits every deletion: advertisements that use one of its
// aliases become invalid, which their Valid condition says.
func (v communityValidator) ValidateDelete(context.Context, *v1beta1.Community) (admission.Warnings, error) {
	return nil, nil
}

func (v communityValidator) validate(ctx context.Context, obj *v1beta1.Community) (admission.Warnings, error) {
	var s admit.Stored
	if err := list(ctx, v.reader, &s, storedCommunities); err != nil {
		return nil, fmt.Errorf("cannot list Communities to check for aliases defined twice: %w", err)
	}
	return answer(admit.Community(obj, s))
}

type bfdValidator struct{ reader client.Reader }

func (v bfdValidator) ValidateCreate(_ context.Context, obj *v1beta1.BFDProfile) (admission.Warnings, error) {
	return answer(admit.BFDProfile(obj))
}

func (v bfdValidator) ValidateUpdate(_ context.Context, _, obj *v1beta1.BFDProfile) (admission.Warnings, error) {
	return answer(admit.BFDProfile(obj))
}

// ValidateDelete refuses to delete a profile that a BGPPeer names: its
// sessions would silently lose failure detection.
func (v bfdValidator) ValidateDelete(ctx context.Context, obj *v1beta1.BFDProfile) (admission.Warnings, error) {
	var s admit.Stored
	if err := list(ctx, v.reader, &s, storedBGPPeers); err != nil {
		return nil, fmt.Errorf("cannot list BGPPeers to check that none names BFDProfile %s: %w", obj.Name, err)
	}
	return answer(admit.DeleteBFDProfile(obj, s))
}
