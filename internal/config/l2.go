package config

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// L2Advertisement is a validated L2Advertisement.
type L2Advertisement struct {
	// Name is the object's name.
	Name string
	// Pools are the pools named in spec.ipAddressPools.
	Pools map[string]bool
	// PoolSelectors select pools by label.
	PoolSelectors []labels.Selector
	// NodeSelectors select the nodes that may announce; none means all.
	NodeSelectors []labels.Selector
	// Interfaces limit the announcing interfaces; none means all.
	Interfaces []string
}

// SelectsPool reports whether the advertisement announces the pool's
// addresses. An advertisement that names no pool and selects none
// announces every pool.
func (a *L2Advertisement) SelectsPool(p *Pool) bool {
	return a.SelectsPoolNamed(p.Name, p.Labels)
}

// SelectsPoolNamed is SelectsPool for a pool known by its name and its
// object's labels only. The speaker uses it with the pool the controller
// recorded on the Service, so it needs no pool model of its own (which,
// without the controller's history, could disagree about which pool owns
// an address).
func (a *L2Advertisement) SelectsPoolNamed(name string, poolLabels map[string]string) bool {
	return selectsPool(a.Pools, a.PoolSelectors, name, poolLabels)
}

// SelectsNode reports whether a node with these labels may announce.
func (a *L2Advertisement) SelectsNode(nodeLabels map[string]string) bool {
	return selectsAny(a.NodeSelectors, nodeLabels)
}

// ParseL2Advertisement validates one L2Advertisement. Pools it names that do
// not exist are not errors (they may be created later) but are returned in
// missing, so that the status can say so. poolExists says whether an
// IPAddressPool object of that name exists, valid or not (a pool kept on
// its last valid spec still owns its addresses); nil treats every pool as
// missing.
func ParseL2Advertisement(obj *v1beta1.L2Advertisement, poolExists func(name string) bool) (adv *L2Advertisement, missing []string, errs field.ErrorList) {
	spec := field.NewPath("spec")
	adv = &L2Advertisement{Name: obj.Name, Pools: map[string]bool{}}
	for i, name := range obj.Spec.IPAddressPools {
		p := spec.Child("ipAddressPools").Index(i)
		if strings.TrimSpace(name) == "" {
			errs = append(errs, field.Invalid(p, name, "empty pool name; name an IPAddressPool or remove the entry"))
			continue
		}
		if adv.Pools[name] {
			e := field.Duplicate(p, name)
			e.Detail = "listed twice; remove one"
			errs = append(errs, e)
			continue
		}
		adv.Pools[name] = true
		if poolExists == nil || !poolExists(name) {
			missing = append(missing, name)
		}
	}
	adv.PoolSelectors, errs = parseSelectors(obj.Spec.IPAddressPoolSelectors, spec.Child("ipAddressPoolSelectors"), errs)
	adv.NodeSelectors, errs = parseSelectors(obj.Spec.NodeSelectors, spec.Child("nodeSelectors"), errs)
	seen := map[string]bool{}
	for i, ifname := range obj.Spec.Interfaces {
		p := spec.Child("interfaces").Index(i)
		switch {
		case ifname == "" || len(ifname) > 15 || strings.ContainsAny(ifname, "/: \t\n"):
			errs = append(errs, field.Invalid(p, ifname, "not a Linux interface name (1 to 15 characters, no '/', ':' or spaces), for example eth0"))
		case seen[ifname]:
			e := field.Duplicate(p, ifname)
			e.Detail = "listed twice; remove one"
			errs = append(errs, e)
		default:
			seen[ifname] = true
			adv.Interfaces = append(adv.Interfaces, ifname)
		}
	}
	sort.Strings(missing)
	if len(errs) > 0 {
		return nil, missing, errs
	}
	return adv, missing, nil
}

// MissingPoolsMessage words the missing pools for a status condition.
func MissingPoolsMessage(missing []string) string {
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("IPAddressPool %s does not exist yet; its addresses will be announced once it does", strings.Join(missing, ", "))
}

// PoolNames returns a poolExists function for ParseL2Advertisement: the
// names of the IPAddressPool objects, valid or not.
func PoolNames(pools []v1beta1.IPAddressPool) func(string) bool {
	names := make(map[string]bool, len(pools))
	for i := range pools {
		names[pools[i].Name] = true
	}
	return func(name string) bool { return names[name] }
}

// selectsPool is the pool selection of L2 and BGP advertisements: the
// pools named, and those the selectors match; neither selects every pool.
func selectsPool(pools map[string]bool, sels []labels.Selector, name string, poolLabels map[string]string) bool {
	if len(pools) == 0 && len(sels) == 0 {
		return true
	}
	return pools[name] || matchesAny(sels, poolLabels)
}

// selectsAny reports whether one of the selectors matches; none selects
// everything.
func selectsAny(sels []labels.Selector, l map[string]string) bool {
	return len(sels) == 0 || matchesAny(sels, l)
}

// matchesAny reports whether one of the selectors matches.
func matchesAny(sels []labels.Selector, l map[string]string) bool {
	for _, s := range sels {
		if s.Matches(labels.Set(l)) {
			return true
		}
	}
	return false
}
