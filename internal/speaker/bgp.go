package speaker

import (
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
	"github.com/pharos-lb/pharos/internal/election"
)

// BGPConfig is the valid BGP configuration: peers, BFD profiles and
// advertisements. Objects that fail validation are left out (the controller
// reports them in their own status); a peer whose BFD profile is missing is
// kept, without BFD, and named in MissingBFD.
type BGPConfig struct {
	Peers          []*config.BGPPeer
	BFDProfiles    map[string]*config.BFD
	Advertisements []*config.BGPAdvertisement
	// MissingBFD names, by peer, the BFDProfile it names that does not
	// exist or is invalid.
	MissingBFD map[string]string
	// pools are the IPAddressPools, each parsed on its own, to check an
	// advertisement's aggregation against the pool it covers.
	pools map[string]*config.Pool
}

// PeersOf returns the peers a node with these labels opens sessions to.
func (c *BGPConfig) PeersOf(nodeLabels map[string]string) []*config.BGPPeer {
	var out []*config.BGPPeer
	for _, p := range c.Peers {
		if p.SelectsNode(nodeLabels) {
			out = append(out, p)
		}
	}
	return out
}

// parseBGP validates the BGP objects of the snapshot.
func parseBGP(snap Snapshot) *BGPConfig {
	c := &BGPConfig{BFDProfiles: map[string]*config.BFD{}, MissingBFD: map[string]string{}, pools: map[string]*config.Pool{}}
	for i := range snap.Pools {
		if p, errs := config.ParsePool(&snap.Pools[i]); len(errs) == 0 {
			c.pools[p.Name] = p
		}
	}
	for i := range snap.BFDProfiles {
		if b, errs := config.ParseBFDProfile(&snap.BFDProfiles[i]); len(errs) == 0 {
			c.BFDProfiles[b.Name] = b
		}
	}
	for i := range snap.BGPPeers {
		p, errs := config.ParseBGPPeer(&snap.BGPPeers[i])
		if len(errs) > 0 {
			continue
		}
		if p.BFDProfile != "" && c.BFDProfiles[p.BFDProfile] == nil {
			c.MissingBFD[p.Name] = p.BFDProfile
		}
		c.Peers = append(c.Peers, p)
	}
	slices.SortFunc(c.Peers, func(a, b *config.BGPPeer) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	aliases, _ := config.ParseCommunityAliases(snap.Communities)
	var advs []*config.BGPAdvertisement
	for i := range snap.BGPAdvertisements {
		if a, _, errs := config.ParseBGPAdvertisement(&snap.BGPAdvertisements[i], aliases, nil); len(errs) == 0 {
			advs = append(advs, a)
		}
	}
	// An advertisement whose localPref disagrees with another's for the
	// same prefixes is left out, as the controller's status says.
	poolLabels := map[string]map[string]string{}
	for i := range snap.Pools {
		poolLabels[snap.Pools[i].Name] = snap.Pools[i].Labels
	}
	conflicts := config.LocalPrefConflicts(advs, poolLabels)
	for _, a := range advs {
		if len(conflicts[a.Name]) == 0 {
			c.Advertisements = append(c.Advertisements, a)
		}
	}
	return c
}

// BGPRoute is one address as this cluster advertises it by BGP.
type BGPRoute struct {
	// Advertisements are those that select the address's pool and Services.
	Advertisements []*config.BGPAdvertisement
	// Nodes are the nodes that advertise it, sorted: eligible, selected by
	// one of the advertisements, and serving one of the address's
	// Services (for Local policy: holding a ready local endpoint).
	Nodes []string
	// Peers are the BGPPeers it goes to, sorted: selected by one of the
	// advertisements (spec.peers) and peering with one of the Nodes.
	Peers []string
}

// bgpRoute computes the BGP side of an address.
func bgpRoute(a *Address, c *BGPConfig, poolLabels map[string]string, nodes []*corev1.Node, in election.Input) BGPRoute {
	var r BGPRoute
	for _, adv := range c.Advertisements {
		if !adv.SelectsPoolNamed(a.Pool, poolLabels) {
			continue
		}
		// An aggregate that would cover addresses outside the pool is
		// never advertised (its Valid condition says why).
		if p := c.pools[a.Pool]; p != nil && len(config.AggregationErrors(adv, p)) > 0 {
			continue
		}
		for _, s := range a.Services {
			if adv.SelectsService(s.Labels) {
				r.Advertisements = append(r.Advertisements, adv)
				break
			}
		}
	}
	if len(r.Advertisements) == 0 {
		return r
	}
	totals := endpointTotals(in.Services)
	for _, node := range nodes {
		if !NodeEligible(node) || HasLabel(node, v1beta1.LabelExcludeFromLB) || !servesAny(node.Name, in.Services, totals) {
			continue
		}
		for _, adv := range r.Advertisements {
			if adv.SelectsNode(node.Labels) {
				r.Nodes = append(r.Nodes, node.Name)
				break
			}
		}
	}
	slices.Sort(r.Nodes)
	byName := map[string]*corev1.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	for _, p := range c.Peers {
		selected := false
		for _, adv := range r.Advertisements {
			selected = selected || adv.SelectsPeer(p.Name)
		}
		if !selected {
			continue
		}
		for _, name := range r.Nodes {
			if p.SelectsNode(byName[name].Labels) {
				r.Peers = append(r.Peers, p.Name)
				break
			}
		}
	}
	return r
}

// servesAny reports whether node can serve one of the Services: a Cluster
// Service with a serving endpoint anywhere, or a Local one with a ready
// endpoint on the node (or, when it has no ready endpoint anywhere, a
// terminating one that still serves, as kube-proxy falls back to).
func servesAny(node string, svcs []election.Service, totals []election.Endpoints) bool {
	for i, s := range svcs {
		total := totals[i]
		switch {
		case total.Ready+total.Terminating == 0:
			continue
		case !s.LocalPolicy:
			return true
		case s.Endpoints[node].Ready > 0:
			return true
		case total.Ready == 0 && s.Endpoints[node].Terminating > 0:
			return true
		}
	}
	return false
}

// endpointTotals counts each Service's endpoints over all nodes, once per
// address rather than once per node.
func endpointTotals(svcs []election.Service) []election.Endpoints {
	out := make([]election.Endpoints, len(svcs))
	for i, s := range svcs {
		for _, e := range s.Endpoints {
			out[i].Ready += e.Ready
			out[i].Terminating += e.Terminating
		}
	}
	return out
}
