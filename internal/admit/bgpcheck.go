package admit

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
)

// BFDProblem says why a BGPPeer that names a BFDProfile gets no BFD: the
// profile does not exist among profiles, or it is invalid. It returns ""
// when the peer names no profile or a valid one.
func BFDProblem(peer *v1beta1.BGPPeer, profiles []v1beta1.BFDProfile) string {
	name := peer.Spec.BFDProfile
	if name == "" {
		return ""
	}
	for i := range profiles {
		if profiles[i].Name != name {
			continue
		}
		if _, errs := config.ParseBFDProfile(&profiles[i]); len(errs) > 0 {
			return fmt.Sprintf("BFDProfile %q named in spec.bfdProfile is invalid (%s); the session runs without BFD until the profile is fixed",
				name, errs.ToAggregate().Error())
		}
		return ""
	}
	return fmt.Sprintf("BFDProfile %q named in spec.bfdProfile does not exist; the session runs without BFD until you create it or remove spec.bfdProfile", name)
}

// BGPObjects are the stored objects a BGPAdvertisement is checked against.
type BGPObjects struct {
	Pools       []v1beta1.IPAddressPool
	Communities []v1beta1.Community
	// Advertisements are the stored BGPAdvertisements; one with the name
	// of the advertisement checked is its old version, and is skipped.
	Advertisements []v1beta1.BGPAdvertisement
}

// BGPAdvertisementCheck is what CheckBGPAdvertisement finds.
type BGPAdvertisementCheck struct {
	// Invalid are the errors of the spec itself, as the speakers see them:
	// with any of them, the advertisement is left out.
	Invalid field.ErrorList
	// Missing are the pools named in spec.ipAddressPools that do not exist.
	Missing []string
	// NamedAggregation are the aggregation errors against the pools named
	// in spec.ipAddressPools; SelectedAggregation against the other pools
	// the advertisement selects (by label, or all of them).
	NamedAggregation, SelectedAggregation field.ErrorList
	// LocalPref holds the localPref conflicts between this advertisement
	// and each other one, by the name of the advertisement at fault (the
	// later in name order, which the speakers leave out).
	LocalPref map[string]field.ErrorList
}

// CheckBGPAdvertisement checks obj with internal/config, as the speakers
// do, against the stored objects. Aggregation and localPref are checked
// only when the spec itself is valid.
func CheckBGPAdvertisement(obj *v1beta1.BGPAdvertisement, in BGPObjects) BGPAdvertisementCheck {
	var out BGPAdvertisementCheck
	aliases, aliasErrs := config.ParseCommunityAliases(in.Communities)
	adv, missing, errs := config.ParseBGPAdvertisement(obj, aliases, config.PoolNames(in.Pools))
	out.Missing = missing
	if len(errs) > 0 {
		out.Invalid = explainRejectedAliases(obj, errs, in.Communities, aliasErrs)
		return out
	}
	for i := range in.Pools {
		p := &in.Pools[i]
		if !adv.SelectsPoolNamed(p.Name, p.Labels) {
			continue
		}
		// Each pool on its own: an invalid pool is reported on the pool,
		// and an overlap between pools does not change its ranges.
		pool, perrs := config.ParsePool(p)
		if len(perrs) > 0 {
			continue
		}
		if aerrs := config.AggregationErrors(adv, pool); adv.Pools[p.Name] {
			out.NamedAggregation = append(out.NamedAggregation, aerrs...)
		} else {
			out.SelectedAggregation = append(out.SelectedAggregation, aerrs...)
		}
	}
	poolLabels := make(map[string]map[string]string, len(in.Pools))
	for i := range in.Pools {
		poolLabels[in.Pools[i].Name] = in.Pools[i].Labels
	}
	// The speakers compare every pair of valid advertisements; so does
	// this, one pair at a time, to find the conflicts in both directions.
	for i := range in.Advertisements {
		other := &in.Advertisements[i]
		if other.Name == obj.Name {
			continue
		}
		o, _, oerrs := config.ParseBGPAdvertisement(other, aliases, nil)
		if len(oerrs) > 0 {
			continue
		}
		for name, cerrs := range config.LocalPrefConflicts([]*config.BGPAdvertisement{adv, o}, poolLabels) {
			if out.LocalPref == nil {
				out.LocalPref = map[string]field.ErrorList{}
			}
			out.LocalPref[name] = append(out.LocalPref[name], cerrs...)
		}
	}
	return out
}

// explainRejectedAliases rewords the error of a community that names an
// alias which a Community object does define, but whose definition is
// rejected (a bad value, or a name another Community defines otherwise):
// "no alias exists" would send the user looking in the wrong place.
func explainRejectedAliases(obj *v1beta1.BGPAdvertisement, errs field.ErrorList, communities []v1beta1.Community, aliasErrs map[string]field.ErrorList) field.ErrorList {
	out := make(field.ErrorList, 0, len(errs))
	for _, e := range errs {
		for i, c := range obj.Spec.Communities {
			if e.Field != fmt.Sprintf("spec.communities[%d]", i) || strings.Contains(c, ":") {
				continue
			}
			if why := rejectedAlias(c, communities, aliasErrs); why != "" {
				e = field.Invalid(field.NewPath("spec", "communities").Index(i), c, why)
			}
		}
		out = append(out, e)
	}
	return out
}

// rejectedAlias says why alias, defined by some Community object, is not
// in the aliases; "" if no Community defines it.
func rejectedAlias(alias string, communities []v1beta1.Community, aliasErrs map[string]field.ErrorList) string {
	sorted := append([]v1beta1.Community(nil), communities...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, obj := range sorted {
		for j, a := range obj.Spec.Communities {
			if a.Name != alias {
				continue
			}
			prefix := fmt.Sprintf("spec.communities[%d].", j)
			for _, e := range aliasErrs[obj.Name] {
				if strings.HasPrefix(e.Field, prefix) {
					return fmt.Sprintf("Community %s defines alias %q, but that definition is rejected (%s: %s); fix the Community or write the value here",
						obj.Name, alias, e.Field, e.Detail)
				}
			}
		}
	}
	return ""
}
