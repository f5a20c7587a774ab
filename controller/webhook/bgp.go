package webhook

import (
	"context"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/controller/advertisement"
	"github.com/pharos-lb/pharos/internal/config"
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

func invalid(kind, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(schema.GroupKind{Group: v1beta1.GroupVersion.Group, Kind: kind}, name, errs)
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
	if _, errs := config.ParseBGPPeer(obj); len(errs) > 0 {
		return nil, invalid("BGPPeer", obj.Name, errs)
	}
	var warnings admission.Warnings
	if obj.Spec.Password != "" {
		warnings = append(warnings, "spec.password is readable by anyone who may read BGPPeers; prefer spec.passwordSecret (a kubernetes.io/basic-auth Secret)")
	}
	// The profile may come later: the session runs without BFD until then.
	if obj.Spec.BFDProfile != "" {
		var profiles v1beta1.BFDProfileList
		if err := v.reader.List(ctx, &profiles); err == nil {
			if why := advertisement.BFDProblem(obj, profiles.Items); why != "" {
				warnings = append(warnings, why)
			}
		}
	}
	return warnings, nil
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
	var (
		pools       v1beta1.IPAddressPoolList
		communities v1beta1.CommunityList
		advs        v1beta1.BGPAdvertisementList
	)
	for _, l := range []struct {
		list client.ObjectList
		what string
	}{{&pools, "IPAddressPools to check the pools named"}, {&communities, "Communities to resolve community aliases"}, {&advs, "BGPAdvertisements to check localPref"}} {
		if err := v.reader.List(ctx, l.list); err != nil {
			return nil, fmt.Errorf("cannot list %s: %w", l.what, err)
		}
	}
	check := advertisement.CheckBGPAdvertisement(obj, advertisement.BGPObjects{Pools: pools.Items, Communities: communities.Items, Advertisements: advs.Items})
	if len(check.Invalid) > 0 {
		return nil, invalid("BGPAdvertisement", obj.Name, check.Invalid)
	}
	// A pool the advertisement names is known to the user: aggregating it
	// beyond its ranges is a mistake now. Pools selected by label or by
	// default may be there by chance: a warning, and the Valid condition.
	if len(check.NamedAggregation) > 0 {
		return nil, invalid("BGPAdvertisement", obj.Name, check.NamedAggregation)
	}
	var warnings admission.Warnings
	for _, e := range check.SelectedAggregation {
		warnings = append(warnings, e.Error())
	}
	// Pools may be created after the advertisement that names them.
	if m := config.MissingPoolsMessage(check.Missing); m != "" {
		warnings = append(warnings, m)
	}
	return append(warnings, localPrefWarnings(obj.Name, check.LocalPref)...), nil
}

// localPrefWarnings words the localPref conflicts of the advertisement
// name, in both directions, saying which advertisement the speakers leave
// out.
func localPrefWarnings(name string, conflicts map[string]field.ErrorList) admission.Warnings {
	keys := make([]string, 0, len(conflicts))
	for k := range conflicts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out admission.Warnings
	for _, k := range keys {
		for _, e := range conflicts[k] {
			prefix := e.Field
			if k != name {
				prefix = fmt.Sprintf("BGPAdvertisement %s (%s %v)", k, e.Field, e.BadValue)
			}
			out = append(out, fmt.Sprintf("%s: %s; until they agree, the speakers leave BGPAdvertisement %s out", prefix, e.Detail, k))
		}
	}
	return out
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
	var stored v1beta1.CommunityList
	if err := v.reader.List(ctx, &stored); err != nil {
		return nil, fmt.Errorf("cannot list Communities to check for aliases defined twice: %w", err)
	}
	if errs := communityErrors(obj, stored.Items); len(errs) > 0 {
		return nil, invalid("Community", obj.Name, errs)
	}
	return nil, nil
}

// communityErrors checks the aliases of obj: each value must parse, and an
// alias that another Community (of stored; obj's old version is skipped)
// defines must have the same value. internal/config reports a duplicate on
// the later object in name order; the webhook refuses whichever comes
// second, so that no stored object ever has that error.
func communityErrors(obj *v1beta1.Community, stored []v1beta1.Community) field.ErrorList {
	_, own := config.ParseCommunityAliases([]v1beta1.Community{*obj})
	errs := own[obj.Name]
	others := make([]v1beta1.Community, 0, len(stored))
	for _, c := range stored {
		if c.Name != obj.Name {
			others = append(others, c)
		}
	}
	sort.Slice(others, func(i, j int) bool { return others[i].Name < others[j].Name })
	aliases, _ := config.ParseCommunityAliases(others)
	for i, a := range obj.Spec.Communities {
		c, err := config.ParseCommunity(a.Value)
		if err != nil {
			continue
		}
		old, ok := aliases[a.Name]
		if !ok || old == c {
			continue
		}
		errs = append(errs, field.Invalid(field.NewPath("spec", "communities").Index(i).Child("value"), a.Value,
			fmt.Sprintf("alias %q is already defined as %s by Community %s; use that value or another name", a.Name, old, definer(others, a.Name, old))))
	}
	return errs
}

// definer returns the first Community of sorted that defines alias as c.
func definer(sorted []v1beta1.Community, alias string, c config.Community) string {
	for _, obj := range sorted {
		for _, a := range obj.Spec.Communities {
			if v, err := config.ParseCommunity(a.Value); err == nil && a.Name == alias && v == c {
				return obj.Name
			}
		}
	}
	return "(unknown)"
}

type bfdValidator struct{ reader client.Reader }

func (v bfdValidator) ValidateCreate(_ context.Context, obj *v1beta1.BFDProfile) (admission.Warnings, error) {
	return validateBFD(obj)
}

func (v bfdValidator) ValidateUpdate(_ context.Context, _, obj *v1beta1.BFDProfile) (admission.Warnings, error) {
	return validateBFD(obj)
}

func validateBFD(obj *v1beta1.BFDProfile) (admission.Warnings, error) {
	if _, errs := config.ParseBFDProfile(obj); len(errs) > 0 {
		return nil, invalid("BFDProfile", obj.Name, errs)
	}
	return nil, nil
}

// ValidateDelete refuses to delete a profile that a BGPPeer names: its
// sessions would silently lose failure detection.
func (v bfdValidator) ValidateDelete(ctx context.Context, obj *v1beta1.BFDProfile) (admission.Warnings, error) {
	var peers v1beta1.BGPPeerList
	if err := v.reader.List(ctx, &peers); err != nil {
		return nil, fmt.Errorf("cannot list BGPPeers to check that none names BFDProfile %s: %w", obj.Name, err)
	}
	var users []string
	for i := range peers.Items {
		if peers.Items[i].Spec.BFDProfile == obj.Name {
			users = append(users, peers.Items[i].Name)
		}
	}
	if len(users) == 0 {
		return nil, nil
	}
	sort.Strings(users)
	return nil, apierrors.NewForbidden(schema.GroupResource{Group: v1beta1.GroupVersion.Group, Resource: "bfdprofiles"}, obj.Name,
		fmt.Errorf("in use by BGPPeer %s (spec.bfdProfile): remove spec.bfdProfile from %s or name another profile there, then delete this one",
			strings.Join(users, ", "), pluralize(len(users), "that peer", "those peers")))
}

func pluralize(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
