// Package speaker is the speaker's core. From what a speaker knows about the
// cluster (Services, their endpoints, nodes, pools, advertisements, and the
// speakers' memberlist members and claims) it computes one desired state:
// for each LoadBalancer address, its Services, its pool, the elected node
// and the candidates, with their interfaces. Every announcer (layer 2
// today; BGP and the forwarding path next) takes that one state and makes
// it so, so the eligibility rules live here and only here.
//
// The package is pure: no client, no sockets. Its tables (state_test.go)
// read as the specification of who announces what.
package speaker

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
	"github.com/pharos-lb/pharos/internal/election"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// Snapshot is everything the desired state depends on. The speaker fills it
// from its informers' caches and from memberlist; the slices are only read.
type Snapshot struct {
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	Nodes          []corev1.Node
	// Pools are read for their names and labels only: which pool owns an
	// address is the controller's answer, recorded on the Service in
	// v1beta1.AnnotationAllocatedFromPool.
	Pools            []v1beta1.IPAddressPool
	L2Advertisements []v1beta1.L2Advertisement
	// Members are the alive speakers and their metadata, by node name.
	Members map[string]speakerlist.Meta
	// Claims are the speakers' current claims on addresses.
	Claims map[netip.Addr][]speakerlist.Claim
	// The BGP configuration.
	BGPPeers          []v1beta1.BGPPeer
	BGPAdvertisements []v1beta1.BGPAdvertisement
	Communities       []v1beta1.Community
	BFDProfiles       []v1beta1.BFDProfile
}

// Address is the desired state of one LoadBalancer address.
type Address struct {
	IP netip.Addr
	// Pool is the pool the controller allocated the address from.
	Pool string
	// Services are the Services that use the address (several when they
	// share it by key), sorted by namespace/name.
	Services []*corev1.Service
	// Election is the layer-2 election: the winner announces, the
	// candidates are the nodes that may.
	Election election.Result
	// Claims are the speakers' claims on the address (layer 2's current
	// owners as memberlist last told).
	Claims []speakerlist.Claim
	// BGP is how the address is advertised by BGP, if at all.
	BGP BGPRoute
}

// State is the desired state of every LoadBalancer address that Pharos
// assigned.
type State struct {
	// Addresses, sorted by address.
	Addresses []*Address
	// BGP is the valid BGP configuration.
	BGP *BGPConfig
	// Members are the alive speakers, by node name, as the snapshot had
	// them.
	Members map[string]speakerlist.Meta
	// CutOff says that this node is on the minority side of a split of
	// the memberlist cluster (see CutOff): the speaker sets it, and the
	// layer-2 announcer then gives up the addresses another MAC answers
	// for, and takes a new one only when nobody on the LAN answers for it.
	CutOff bool
	byIP   map[netip.Addr]*Address
	// slices are the EndpointSlices of each Service, by namespace/name.
	slices map[string][]*discoveryv1.EndpointSlice
}

// EndpointSlices returns the EndpointSlices of the Service (read-only).
func (s *State) EndpointSlices(svc *corev1.Service) []*discoveryv1.EndpointSlice {
	if s == nil {
		return nil
	}
	return s.slices[serviceKey(svc)]
}

// Lookup returns the address's desired state, or nil.
func (s *State) Lookup(ip netip.Addr) *Address {
	if s == nil {
		return nil
	}
	return s.byIP[ip]
}

// L2Node returns the node that announces the address by layer 2: the
// election's winner, when it has an interface to announce on; else "".
func (a *Address) L2Node() string {
	if len(a.Election.Interfaces) == 0 {
		return ""
	}
	return a.Election.Winner
}

// Won returns the addresses that node announces by layer 2, with the
// interface to announce each on.
func (s *State) Won(node string) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, a := range s.Addresses {
		if a.L2Node() == node && node != "" {
			out[a.IP] = a.Election.Interfaces[0]
		}
	}
	return out
}

// Compute builds the desired state. Every speaker given the same Snapshot
// computes the same State.
func Compute(snap Snapshot) *State {
	poolLabels := map[string]map[string]string{}
	for i := range snap.Pools {
		poolLabels[snap.Pools[i].Name] = snap.Pools[i].Labels
	}
	var advs []*config.L2Advertisement
	for i := range snap.L2Advertisements {
		// An invalid advertisement is reported on its own status by the
		// controller; here it simply does not apply.
		if a, _, errs := config.ParseL2Advertisement(&snap.L2Advertisements[i], nil); len(errs) == 0 {
			advs = append(advs, a)
		}
	}
	nodes := make([]*corev1.Node, len(snap.Nodes))
	for i := range snap.Nodes {
		nodes[i] = &snap.Nodes[i]
	}

	st := &State{byIP: map[netip.Addr]*Address{}, BGP: parseBGP(snap), Members: snap.Members,
		slices: slicesByService(snap.EndpointSlices)}
	endpoints := endpointsByService(st.slices)
	for _, svc := range snap.Services {
		pool := svc.Annotations[v1beta1.AnnotationAllocatedFromPool]
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || pool == "" {
			continue
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(ing.IP)
			if err != nil {
				continue
			}
			a := st.byIP[ip]
			if a == nil {
				a = &Address{IP: ip, Pool: pool, Claims: snap.Claims[ip]}
				st.byIP[ip] = a
				st.Addresses = append(st.Addresses, a)
			}
			a.Services = append(a.Services, svc)
		}
	}
	slices.SortFunc(st.Addresses, func(x, y *Address) int { return x.IP.Compare(y.IP) })
	notL2 := map[string]election.Result{}
	for _, a := range st.Addresses {
		slices.SortFunc(a.Services, func(x, y *corev1.Service) int { return strings.Compare(serviceKey(x), serviceKey(y)) })
		var selecting []*config.L2Advertisement
		for _, adv := range advs {
			if adv.SelectsPoolNamed(a.Pool, poolLabels[a.Pool]) {
				selecting = append(selecting, adv)
			}
		}
		in := electionInput(a, nodes, selecting, snap.Members, endpoints)
		if len(selecting) == 0 {
			// Not a layer-2 address (a BGP-only pool, say): no election,
			// and one message per pool rather than one per address that
			// explains every node.
			a.Election = notLayer2(a.Pool, notL2)
		} else {
			in.CurrentOwner = currentOwner(in, a.Claims)
			a.Election = election.Elect(in)
		}
		a.BGP = bgpRoute(a, st.BGP, poolLabels[a.Pool], nodes, in)
	}
	return st
}

// notLayer2 is the layer-2 result of an address of a pool that no
// L2Advertisement selects, shared by the pool's addresses (memo).
func notLayer2(pool string, memo map[string]election.Result) election.Result {
	r, ok := memo[pool]
	if !ok {
		r = election.Result{Reason: election.NoMatchingAdvertisement,
			Message: "no L2Advertisement selects pool " + pool + "; create one that lists it in spec.ipAddressPools"}
		memo[pool] = r
	}
	return r
}

// electionInput describes one address to the election.
func electionInput(a *Address, nodes []*corev1.Node, advs []*config.L2Advertisement, members map[string]speakerlist.Meta, endpoints map[string]map[string]election.Endpoints) election.Input {
	in := election.Input{IP: a.IP}
	for _, node := range nodes {
		meta, alive := members[node.Name]
		n := election.Node{
			Name:     node.Name,
			Alive:    alive && !meta.Draining,
			Ready:    NodeEligible(node),
			Excluded: HasLabel(node, v1beta1.LabelExcludeFromLB),
		}
		var wanted []string
		for _, adv := range advs {
			if adv.SelectsNode(node.Labels) {
				n.Selected = true
				wanted = append(wanted, adv.Interfaces...)
			}
		}
		n.Interfaces = announcingInterfaces(a.IP, wanted, meta)
		in.Nodes = append(in.Nodes, n)
	}
	for _, s := range a.Services {
		key := serviceKey(s)
		in.Services = append(in.Services, election.Service{
			Key:         key,
			LocalPolicy: s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			Endpoints:   endpoints[key],
		})
		if s.Annotations[v1beta1.AnnotationReturnToPreferred] == "true" {
			in.ReturnToPreferred = true
		}
	}
	return in
}

// currentOwner is the node that holds the address now: among the nodes
// that claim it and are still candidates, the one that claimed it first,
// so that a node that returns, or claims by mistake, never takes it away
// from the established owner. Ties go to the hash order.
func currentOwner(in election.Input, claims []speakerlist.Claim) string {
	if len(claims) == 0 {
		return ""
	}
	candidates := map[string]bool{}
	for _, c := range election.Elect(in).Candidates {
		candidates[c] = true
	}
	ec := make([]election.Claim, 0, len(claims))
	for _, c := range claims {
		if candidates[c.Node] {
			ec = append(ec, election.Claim{Node: c.Node, Epoch: uint64(c.Epoch)})
		}
	}
	return election.ResolveConflict(in.IP, "", ec)
}

// NextEpoch is the epoch of a new claim on an address: one more than every
// claim seen on it. Epochs are a logical clock, so "who claimed first" is
// decided by what each node had seen when it claimed, never by the nodes'
// wall clocks, which may be skewed.
func NextEpoch(claims []speakerlist.Claim) int64 {
	var last int64
	for _, c := range claims {
		last = max(last, c.Epoch)
	}
	return last + 1
}

// NodeEligible reports whether a node may announce at all: Ready, not
// cordoned (a cordoned node hands its addresses over gracefully before it
// is drained), and with a working network (NetworkUnavailable not True, as
// the CNI or the cloud route controller sets it on a node whose pod network
// is not configured).
func NodeEligible(n *corev1.Node) bool {
	if n.Spec.Unschedulable {
		return false
	}
	ready := false
	for _, c := range n.Status.Conditions {
		switch c.Type {
		case corev1.NodeReady:
			ready = c.Status == corev1.ConditionTrue
		case corev1.NodeNetworkUnavailable:
			if c.Status == corev1.ConditionTrue {
				return false
			}
		}
	}
	return ready
}

// HasLabel reports whether the node carries the label key.
func HasLabel(n *corev1.Node, key string) bool {
	_, ok := n.Labels[key]
	return ok
}

// announcingInterfaces returns a node's interfaces for the address: the
// ones the advertisements name, or else those whose subnet holds it, each
// up or down as the node reports in its metadata.
func announcingInterfaces(ip netip.Addr, wanted []string, meta speakerlist.Meta) []election.Interface {
	up := map[string]bool{}
	var onLink []string
	for _, entry := range meta.InterfacesUp {
		name, prefix, _ := strings.Cut(entry, "=")
		up[name] = true
		if p, err := netip.ParsePrefix(prefix); err == nil && p.Contains(ip) {
			onLink = append(onLink, name)
		}
	}
	names := onLink
	if len(wanted) > 0 {
		names = wanted
	}
	var out []election.Interface
	seen := map[string]bool{}
	for _, name := range names {
		if !seen[name] {
			seen[name] = true
			out = append(out, election.Interface{Name: name, Up: len(wanted) == 0 || up[name]})
		}
	}
	return out
}

// slicesByService groups EndpointSlices by their Service's key
// (namespace/name); slices of no Service are left out.
func slicesByService(slices []*discoveryv1.EndpointSlice) map[string][]*discoveryv1.EndpointSlice {
	out := map[string][]*discoveryv1.EndpointSlice{}
	for _, es := range slices {
		if name := es.Labels[discoveryv1.LabelServiceName]; name != "" {
			k := es.Namespace + "/" + name
			out[k] = append(out[k], es)
		}
	}
	return out
}

// endpointsByService counts endpoints by Service key and node.
func endpointsByService(bySvc map[string][]*discoveryv1.EndpointSlice) map[string]map[string]election.Endpoints {
	out := make(map[string]map[string]election.Endpoints, len(bySvc))
	for key, slices := range bySvc {
		byNode := map[string]election.Endpoints{}
		out[key] = byNode
		for _, es := range slices {
			for _, ep := range es.Endpoints {
				node := ""
				if ep.NodeName != nil {
					node = *ep.NodeName
				}
				c := byNode[node]
				ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
				serving := ep.Conditions.Serving != nil && *ep.Conditions.Serving
				switch {
				case ready:
					c.Ready++
				case serving:
					c.Terminating++
				}
				byNode[node] = c
			}
		}
	}
	return out
}

func serviceKey(s *corev1.Service) string { return s.Namespace + "/" + s.Name }

// Successor returns the node that takes the address over by layer 2 if its
// announcing node dies: the first candidate in hash order other than the
// winner, which is whom every speaker elects once the winner is gone. It
// returns "" when nobody announces the address or no other node may.
func (a *Address) Successor() string {
	winner := a.L2Node()
	if winner == "" {
		return ""
	}
	for _, c := range a.Election.Candidates {
		if c != winner {
			return c
		}
	}
	return ""
}

// HeartbeatPeers returns, sorted, the nodes with which node self exchanges
// fast heartbeats: watch are the announcing nodes whose addresses self
// would take over (self watches them and takes over when they die), notify
// the successors of the addresses self announces (they watch self).
func (s *State) HeartbeatPeers(self string) (watch, notify []string) {
	w, n := map[string]bool{}, map[string]bool{}
	for _, a := range s.Addresses {
		winner, next := a.L2Node(), a.Successor()
		switch {
		case next == "":
		case next == self:
			w[winner] = true
		case winner == self:
			n[next] = true
		}
	}
	return sortedKeys(w), sortedKeys(n)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
