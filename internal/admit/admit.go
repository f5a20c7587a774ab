// Package admit decides whether a Pharos object may be stored, given the
// objects already stored: the rules of the validating webhook, without the
// webhook. The controller's webhook feeds it what it lists from the
// apiserver; `kubectl pharos validate` feeds it the objects of the files it
// reads. Both print the same errors and warnings, because both come from
// here, and the checks themselves are internal/config's, which the
// controller and the speakers use: what is admitted is what is used.
package admit

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
)

// Stored are the objects already stored that a new or changed object is
// checked against. An object of the same kind and name as the one checked
// is its old version.
type Stored struct {
	Pools             []v1beta1.IPAddressPool
	L2Advertisements  []v1beta1.L2Advertisement
	BGPAdvertisements []v1beta1.BGPAdvertisement
	Communities       []v1beta1.Community
	BFDProfiles       []v1beta1.BFDProfile
	BGPPeers          []v1beta1.BGPPeer
	// Incomplete says that some of the lists only warnings depend on
	// could not be read: those warnings are left out rather than guessed.
	Incomplete bool
}

// Verdict is the answer for one object: Errors refuse it, Warnings are
// shown to whoever stores it.
type Verdict struct {
	Kind, Name string
	Errors     field.ErrorList
	Warnings   []string
	// Forbidden refuses a deletion (not a spec error), with its reason.
	Forbidden error
}

// Err is the error the apiserver returns for the verdict, worded as the
// webhook words it (apierrors' Invalid or Forbidden), or nil when the
// object is admitted.
func (v Verdict) Err() error {
	switch {
	case v.Forbidden != nil:
		return apierrors.NewForbidden(schema.GroupResource{Group: v1beta1.GroupVersion.Group, Resource: strings.ToLower(v.Kind) + "s"}, v.Name, v.Forbidden)
	case len(v.Errors) > 0:
		return apierrors.NewInvalid(schema.GroupKind{Group: v1beta1.GroupVersion.Group, Kind: v.Kind}, v.Name, v.Errors)
	}
	return nil
}

// Pool checks an IPAddressPool: its spec and overlaps with the stored
// pools are errors; aggregation beyond its ranges by a BGPAdvertisement
// and no advertisement at all are warnings.
func Pool(obj *v1beta1.IPAddressPool, s Stored) Verdict {
	v := Verdict{Kind: "IPAddressPool", Name: obj.Name}
	if v.Errors = config.ValidatePool(obj, s.Pools); len(v.Errors) > 0 || s.Incomplete {
		return v
	}
	pool, _ := config.ParsePool(obj)
	bgp := validBGPAdvertisements(s)
	for _, adv := range bgp {
		if !adv.SelectsPoolNamed(pool.Name, pool.Labels) {
			continue
		}
		for _, e := range config.AggregationErrors(adv, pool) {
			v.Warnings = append(v.Warnings, fmt.Sprintf("BGPAdvertisement %s: %s", adv.Name, e.Error()))
		}
	}
	if !announced(s.L2Advertisements, bgp, pool) {
		v.Warnings = append(v.Warnings, fmt.Sprintf(
			"no L2Advertisement or BGPAdvertisement selects IPAddressPool %q: its addresses will be assigned to Services but not announced; create an L2Advertisement or a BGPAdvertisement that lists it in spec.ipAddressPools",
			obj.Name))
	}
	return v
}

// announced reports whether a valid L2Advertisement of l2 or one of the
// valid BGPAdvertisements bgp selects pool.
func announced(l2 []v1beta1.L2Advertisement, bgp []*config.BGPAdvertisement, pool *config.Pool) bool {
	for _, adv := range bgp {
		if adv.SelectsPoolNamed(pool.Name, pool.Labels) {
			return true
		}
	}
	for i := range l2 {
		if adv, _, errs := config.ParseL2Advertisement(&l2[i], nil); len(errs) == 0 && adv.SelectsPool(pool) {
			return true
		}
	}
	return false
}

// validBGPAdvertisements returns the stored BGPAdvertisements that parse,
// sorted by name.
func validBGPAdvertisements(s Stored) []*config.BGPAdvertisement {
	aliases, _ := config.ParseCommunityAliases(s.Communities)
	var out []*config.BGPAdvertisement
	for i := range s.BGPAdvertisements {
		if adv, _, errs := config.ParseBGPAdvertisement(&s.BGPAdvertisements[i], aliases, nil); len(errs) == 0 {
			out = append(out, adv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// L2Advertisement checks an L2Advertisement. Pools may be created after
// the advertisement that names them, so a missing one is a warning.
func L2Advertisement(obj *v1beta1.L2Advertisement, s Stored) Verdict {
	v := Verdict{Kind: "L2Advertisement", Name: obj.Name}
	_, missing, errs := config.ParseL2Advertisement(obj, config.PoolNames(s.Pools))
	if v.Errors = errs; len(errs) > 0 {
		return v
	}
	if m := config.MissingPoolsMessage(missing); m != "" {
		v.Warnings = append(v.Warnings, m)
	}
	return v
}

// BGPPeer checks a BGPPeer. A password in the spec and a BFDProfile that
// does not exist (yet) or is invalid are warnings.
func BGPPeer(obj *v1beta1.BGPPeer, s Stored) Verdict {
	v := Verdict{Kind: "BGPPeer", Name: obj.Name}
	if _, v.Errors = config.ParseBGPPeer(obj); len(v.Errors) > 0 {
		return v
	}
	if obj.Spec.Password != "" {
		v.Warnings = append(v.Warnings, "spec.password is readable by anyone who may read BGPPeers; prefer spec.passwordSecret (a kubernetes.io/basic-auth Secret)")
	}
	// The profile may come later: the session runs without BFD until then.
	if !s.Incomplete {
		if why := BFDProblem(obj, s.BFDProfiles); why != "" {
			v.Warnings = append(v.Warnings, why)
		}
	}
	return v
}

// BGPAdvertisement checks a BGPAdvertisement against the stored pools,
// Communities and other advertisements.
func BGPAdvertisement(obj *v1beta1.BGPAdvertisement, s Stored) Verdict {
	v := Verdict{Kind: "BGPAdvertisement", Name: obj.Name}
	check := CheckBGPAdvertisement(obj, BGPObjects{Pools: s.Pools, Communities: s.Communities, Advertisements: s.BGPAdvertisements})
	if v.Errors = check.Invalid; len(v.Errors) > 0 {
		return v
	}
	// A pool the advertisement names is known to the user: aggregating it
	// beyond its ranges is a mistake now. Pools selected by label or by
	// default may be there by chance: a warning, and the Valid condition.
	if v.Errors = check.NamedAggregation; len(v.Errors) > 0 {
		return v
	}
	for _, e := range check.SelectedAggregation {
		v.Warnings = append(v.Warnings, e.Error())
	}
	// Pools may be created after the advertisement that names them.
	if m := config.MissingPoolsMessage(check.Missing); m != "" {
		v.Warnings = append(v.Warnings, m)
	}
	v.Warnings = append(v.Warnings, localPrefWarnings(obj.Name, check.LocalPref)...)
	return v
}

// localPrefWarnings words the localPref conflicts of the advertisement
// name, in both directions, saying which advertisement the speakers leave
// out.
func localPrefWarnings(name string, conflicts map[string]field.ErrorList) []string {
	keys := make([]string, 0, len(conflicts))
	for k := range conflicts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
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

// Community checks a Community: each value must parse, and an alias that
// another stored Community defines must have the same value.
// internal/config reports a duplicate on the later object in name order;
// admission refuses whichever comes second, so that no stored object ever
// has that error.
func Community(obj *v1beta1.Community, s Stored) Verdict {
	v := Verdict{Kind: "Community", Name: obj.Name}
	_, own := config.ParseCommunityAliases([]v1beta1.Community{*obj})
	v.Errors = own[obj.Name]
	others := make([]v1beta1.Community, 0, len(s.Communities))
	for _, c := range s.Communities {
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
		v.Errors = append(v.Errors, field.Invalid(field.NewPath("spec", "communities").Index(i).Child("value"), a.Value,
			fmt.Sprintf("alias %q is already defined as %s by Community %s; use that value or another name", a.Name, old, definer(others, a.Name, old))))
	}
	return v
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

// BFDProfile checks a BFDProfile's spec.
func BFDProfile(obj *v1beta1.BFDProfile) Verdict {
	v := Verdict{Kind: "BFDProfile", Name: obj.Name}
	_, v.Errors = config.ParseBFDProfile(obj)
	return v
}

// DeleteBFDProfile refuses to delete a profile that a stored BGPPeer
// names: its sessions would silently lose failure detection.
func DeleteBFDProfile(obj *v1beta1.BFDProfile, s Stored) Verdict {
	v := Verdict{Kind: "BFDProfile", Name: obj.Name}
	var users []string
	for i := range s.BGPPeers {
		if s.BGPPeers[i].Spec.BFDProfile == obj.Name {
			users = append(users, s.BGPPeers[i].Name)
		}
	}
	if len(users) == 0 {
		return v
	}
	sort.Strings(users)
	that := "those peers"
	if len(users) == 1 {
		that = "that peer"
	}
	v.Forbidden = fmt.Errorf("in use by BGPPeer %s (spec.bfdProfile): remove spec.bfdProfile from %s or name another profile there, then delete this one",
		strings.Join(users, ", "), that)
	return v
}

// poolUsersNamed is how many Services a warning about a pool in use names;
// the others are counted.
const poolUsersNamed = 5

// poolUsers returns the LoadBalancer Services that hold addresses from the
// named pool, as the controller records it (their
// pharos.io/ip-allocated-from-pool annotation), sorted by namespace/name,
// with the addresses of their status.
func poolUsers(pool string, services []corev1.Service) (keys []string, ips map[string][]netip.Addr) {
	ips = map[string][]netip.Addr{}
	for i := range services {
		svc := &services[i]
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Annotations[v1beta1.AnnotationAllocatedFromPool] != pool {
			continue
		}
		var held []netip.Addr
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(ing.IP); err == nil {
				held = append(held, a)
			}
		}
		if len(held) == 0 {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		keys = append(keys, key)
		ips[key] = held
	}
	sort.Strings(keys)
	return keys, ips
}

// someOf joins the first poolUsersNamed items and counts the others.
func someOf(items []string) string {
	if len(items) <= poolUsersNamed {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:poolUsersNamed], ", "), len(items)-poolUsersNamed)
}

func countServices(n int) string {
	if n == 1 {
		return "1 Service"
	}
	return fmt.Sprintf("%d Services", n)
}

// DeletePool returns the warnings for deleting obj while Services hold its
// addresses (services are the stored Services, any namespace). The
// deletion is admitted: the controller's finalizer
// (v1beta1.FinalizerPoolInUse) keeps the pool Terminating, and the
// Services their addresses, until they release them.
func DeletePool(obj *v1beta1.IPAddressPool, svcs []corev1.Service) []string {
	keys, _ := poolUsers(obj.Name, svcs)
	if len(keys) == 0 {
		return nil
	}
	return []string{fmt.Sprintf(
		"IPAddressPool %s is used by %s (%s): it stays Terminating until they release their addresses, which they keep meanwhile; delete those Services or move them to another pool, or remove the finalizer %s to take their addresses away now",
		obj.Name, countServices(len(keys)), someOf(keys), v1beta1.FinalizerPoolInUse)}
}

// ShrinkPool returns the warnings for storing obj, a new spec of a stored
// pool, when Services hold addresses from it that the new spec no longer
// includes (fewer addresses, or avoidBuggyIPs turned on). The change is
// admitted: the controller lets those Services keep the addresses until
// they release them, and gives new Services addresses of the new spec
// only. An invalid spec gives no warning (its errors refuse it).
func ShrinkPool(obj *v1beta1.IPAddressPool, svcs []corev1.Service) []string {
	pool, errs := config.ParsePool(obj)
	if len(errs) > 0 {
		return nil
	}
	keys, ips := poolUsers(obj.Name, svcs)
	var outside []string
	for _, key := range keys {
		var out []string
		for _, a := range ips[key] {
			if !pool.Contains(a) {
				out = append(out, a.String())
			}
		}
		if len(out) > 0 {
			outside = append(outside, fmt.Sprintf("%s (%s)", key, strings.Join(out, ", ")))
		}
	}
	if len(outside) == 0 {
		return nil
	}
	return []string{fmt.Sprintf(
		"the new spec of IPAddressPool %s leaves out addresses that %s: %s; they keep them until they release them (the pool's %s condition names them), no other Service gets them meanwhile, and new Services get addresses of the new spec only",
		obj.Name, countServices(len(outside))+map[bool]string{true: " holds", false: " hold"}[len(outside) == 1], someOf(outside), v1beta1.ConditionDraining)}
}
