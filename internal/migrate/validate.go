package migrate

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
)

// validate checks the converted objects with internal/config, as Pharos's
// controller, speakers and webhook would, and marks those it rejects
// fatal, so that the output holds only objects Pharos accepts. The checks
// that span objects (pool overlaps, community aliases, aggregation, local
// preference conflicts, references) see the converted objects only: those
// of the input, not of a cluster.
func (c *converter) validate() {
	rejected := func(s *Source, errs field.ErrorList) {
		for _, e := range errs {
			c.add(s.problem(Error, e.Field, "Pharos rejects the converted object: %s; fix it in the MetalLB object and convert again. Left out", e.ErrorBody()))
		}
	}

	// Pools, together: Build also finds overlaps between pools, which
	// MetalLB refuses as well. The older of two overlapping pools wins in
	// Pharos; converted objects have no age, so the first by name wins.
	var pools []v1beta1.IPAddressPool
	for _, p := range c.pools {
		pools = append(pools, p.obj)
	}
	built := config.Build(pools, nil)
	for i := range c.pools {
		p := &c.pools[i]
		if errs := built.Errors[p.obj.Name]; len(errs) > 0 {
			rejected(p.src, errs)
			p.fatal = true
		}
	}
	var keptPools []v1beta1.IPAddressPool
	for _, p := range c.pools {
		if !p.fatal {
			keptPools = append(keptPools, p.obj)
		}
	}
	poolExists := config.PoolNames(keptPools)

	var comms []v1beta1.Community
	for _, cm := range c.comms {
		comms = append(comms, cm.obj)
	}
	_, aliasErrs := config.ParseCommunityAliases(comms)
	comms = comms[:0]
	for i := range c.comms {
		cm := &c.comms[i]
		if errs := aliasErrs[cm.obj.Name]; len(errs) > 0 {
			rejected(cm.src, errs)
			cm.fatal = true
			continue
		}
		comms = append(comms, cm.obj)
	}
	aliases, _ := config.ParseCommunityAliases(comms)

	bfds := map[string]bool{}
	for i := range c.bfds {
		b := &c.bfds[i]
		if _, errs := config.ParseBFDProfile(&b.obj); len(errs) > 0 {
			rejected(b.src, errs)
			b.fatal = true
			continue
		}
		bfds[b.obj.Name] = true
	}

	peers := map[string]bool{}
	for i := range c.peers {
		p := &c.peers[i]
		if p.fatal {
			continue
		}
		if _, errs := config.ParseBGPPeer(&p.obj); len(errs) > 0 {
			rejected(p.src, errs)
			p.fatal = true
			continue
		}
		peers[p.obj.Name] = true
	}
	// References are checked once every peer is known, and only when the
	// input holds objects of the kind referred to: a file of peers alone
	// says nothing about the profiles in another file.
	for _, p := range c.peers {
		if name := p.obj.Spec.BFDProfile; !p.fatal && name != "" && len(c.bfds) > 0 && !bfds[name] {
			c.add(p.src.problem(Warning, "spec.bfdProfile", "BFDProfile %q is not among the converted objects; the session runs without BFD until it exists", name))
		}
	}

	for i := range c.l2s {
		a := &c.l2s[i]
		_, missing, errs := config.ParseL2Advertisement(&a.obj, poolExists)
		if len(errs) > 0 {
			rejected(a.src, errs)
			a.fatal = true
			continue
		}
		c.missingPools(a.src, missing)
	}

	var advs []*config.BGPAdvertisement
	advItem := map[string]*item[v1beta1.BGPAdvertisement]{}
	for i := range c.bgps {
		a := &c.bgps[i]
		adv, missing, errs := config.ParseBGPAdvertisement(&a.obj, aliases, poolExists)
		if len(errs) > 0 {
			rejected(a.src, errs)
			a.fatal = true
			continue
		}
		c.missingPools(a.src, missing)
		for j, name := range a.obj.Spec.Peers {
			if len(c.peers) > 0 && !peers[name] {
				c.add(a.src.problem(Warning, fmt.Sprintf("spec.peers[%d]", j), "BGPPeer %q is not among the converted objects; the routes go to it once it exists", name))
			}
		}
		// Aggregation must stay inside each pool advertised, or the
		// prefix would draw traffic for addresses outside it.
		var aggErrs field.ErrorList
		for _, name := range sortedKeys(built.Config.Pools) {
			pool := built.Config.Pools[name]
			if adv.SelectsPoolNamed(pool.Name, pool.Labels) {
				aggErrs = append(aggErrs, config.AggregationErrors(adv, pool)...)
			}
		}
		if len(aggErrs) > 0 {
			rejected(a.src, aggErrs)
			a.fatal = true
			continue
		}
		advs = append(advs, adv)
		advItem[adv.Name] = a
	}
	poolLabels := map[string]map[string]string{}
	for _, p := range keptPools {
		poolLabels[p.Name] = p.Labels
	}
	conflicts := config.LocalPrefConflicts(advs, poolLabels)
	for _, name := range sortedKeys(conflicts) {
		// The speakers leave out the advertisement at fault (the later
		// by name); so does the conversion.
		a := advItem[name]
		rejected(a.src, conflicts[name])
		a.fatal = true
	}

	for i, svc := range c.services {
		c.checkService(c.svcSrc[i], &svc, len(c.pools) > 0, poolExists)
	}
}

// missingPools warns about pools an advertisement names that the input
// does not hold (or that were left out).
func (c *converter) missingPools(s *Source, missing []string) {
	if len(missing) == 0 || len(c.pools) == 0 {
		return
	}
	c.add(s.problem(Warning, "spec.ipAddressPools", "IPAddressPool %s is not among the converted objects; its addresses are announced once it exists", strings.Join(missing, ", ")))
}

// checkService warns about a request that cannot be met by the converted
// pools. MetalLB could not meet it either, so these are warnings.
func (c *converter) checkService(s *Source, svc *corev1.Service, havePools bool, poolExists func(string) bool) {
	if name, ok := svc.Annotations[v1beta1.AnnotationAddressPool]; ok && havePools && !poolExists(strings.TrimSpace(name)) {
		c.add(s.problem(Warning, "metadata.annotations["+v1beta1.AnnotationAddressPool+"]", "IPAddressPool %q is not among the converted objects; the Service gets no address until it exists", name))
	}
	if ips, ok := svc.Annotations[v1beta1.AnnotationLoadBalancerIPs]; ok {
		for _, ip := range strings.Split(ips, ",") {
			if _, err := config.ParseAddress(ip); err != nil {
				c.add(s.problem(Warning, "metadata.annotations["+v1beta1.AnnotationLoadBalancerIPs+"]", "%v; write one address per family, comma-separated", err))
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// result collects the objects that were not left out, sorted by name.
func (c *converter) result() Result {
	r := Result{
		IPAddressPools:    kept(c.pools),
		Communities:       kept(c.comms),
		BFDProfiles:       kept(c.bfds),
		BGPPeers:          kept(c.peers),
		L2Advertisements:  kept(c.l2s),
		BGPAdvertisements: kept(c.bgps),
		Services:          c.services,
		Problems:          c.problems,
	}
	sort.SliceStable(r.Services, func(i, j int) bool {
		a, b := &r.Services[i], &r.Services[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return r
}

// kept returns the objects not left out, by name. PT lets it call
// GetName, which Pharos's kinds have on their pointers.
func kept[T any, PT interface {
	*T
	GetName() string
}](items []item[T]) []T {
	var out []T
	for _, it := range items {
		if !it.fatal {
			out = append(out, it.obj)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return PT(&out[i]).GetName() < PT(&out[j]).GetName()
	})
	return out
}
