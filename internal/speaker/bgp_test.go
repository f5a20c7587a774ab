package speaker

import (
	"net/netip"
	"strings"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

func bgpAdv(name string, spec v1beta1.BGPAdvertisementSpec) v1beta1.BGPAdvertisement {
	return v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

func i32p(v int32) *int32   { return &v }
func u32p(v uint32) *uint32 { return &v }
func poolWith(name string, addrs ...string) v1beta1.IPAddressPool {
	return v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.IPAddressPoolSpec{Addresses: addrs}}
}

// TestComputeBGP is the specification of which nodes advertise an address
// by BGP: every eligible node an advertisement selects, as long as it
// serves one of the address's Services (Cluster: an endpoint anywhere;
// Local: a ready endpoint on the node).
func TestComputeBGP(t *testing.T) {
	bgpBase := func() Snapshot {
		s := base()
		s.Pools = []v1beta1.IPAddressPool{poolWith("web", "198.18.0.0/24")}
		s.L2Advertisements = nil
		s.BGPAdvertisements = []v1beta1.BGPAdvertisement{bgpAdv("all", v1beta1.BGPAdvertisementSpec{})}
		return s
	}
	tests := []struct {
		name  string
		edit  func(*Snapshot)
		nodes string // comma-separated; "" none
		advs  int    // advertisements that apply
	}{
		{name: "Cluster policy: every eligible node", nodes: "n1,n2,n3", advs: 1},
		{name: "not Ready, cordoned, excluded and NetworkUnavailable nodes do not advertise",
			edit: func(s *Snapshot) {
				s.Nodes = append(s.Nodes[:0], node("n1", notReady), node("n2", cordoned), node("n3", excluded), node("n4", netDown), node("n5"))
			}, nodes: "n5", advs: 1},
		{name: "memberlist does not matter to BGP: the router detects a dead node itself",
			edit: func(s *Snapshot) { delete(s.Members, "n2") }, nodes: "n1,n2,n3", advs: 1},
		{name: "Local policy: only nodes with a ready endpoint",
			edit: func(s *Snapshot) {
				s.Services[0] = service("web", []string{ip4}, local)
				s.EndpointSlices = []*discoveryv1.EndpointSlice{endpoints("web", "n2", "n3")}
			}, nodes: "n2,n3", advs: 1},
		{name: "no endpoint: nobody advertises", edit: func(s *Snapshot) { s.EndpointSlices = nil }, nodes: "", advs: 1},
		{name: "nodeSelectors",
			edit: func(s *Snapshot) {
				s.Nodes[0] = node("n1", labelled("bgp", "yes"))
				s.BGPAdvertisements = []v1beta1.BGPAdvertisement{bgpAdv("sel", v1beta1.BGPAdvertisementSpec{
					NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"bgp": "yes"}}}})}
			}, nodes: "n1", advs: 1},
		{name: "serviceSelectors that do not match",
			edit: func(s *Snapshot) {
				s.BGPAdvertisements = []v1beta1.BGPAdvertisement{bgpAdv("sel", v1beta1.BGPAdvertisementSpec{
					ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "edge"}}}})}
			}, nodes: "", advs: 0},
		{name: "another pool's advertisement",
			edit: func(s *Snapshot) {
				s.BGPAdvertisements = []v1beta1.BGPAdvertisement{bgpAdv("db", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"db"}})}
			}, nodes: "", advs: 0},
		{name: "an aggregate wider than the pool is never advertised",
			edit: func(s *Snapshot) {
				s.BGPAdvertisements = []v1beta1.BGPAdvertisement{bgpAdv("wide", v1beta1.BGPAdvertisementSpec{AggregationLength: i32p(16)})}
			}, nodes: "", advs: 0},
		{name: "an aggregate inside the pool is",
			edit: func(s *Snapshot) {
				s.BGPAdvertisements = []v1beta1.BGPAdvertisement{bgpAdv("agg", v1beta1.BGPAdvertisementSpec{AggregationLength: i32p(24)})}
			}, nodes: "n1,n2,n3", advs: 1},
		{name: "of two advertisements disagreeing on localPref, the later in name order is left out",
			edit: func(s *Snapshot) {
				s.BGPAdvertisements = []v1beta1.BGPAdvertisement{
					bgpAdv("a", v1beta1.BGPAdvertisementSpec{LocalPref: u32p(100)}),
					bgpAdv("b", v1beta1.BGPAdvertisementSpec{LocalPref: u32p(200)}),
				}
			}, nodes: "n1,n2,n3", advs: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := bgpBase()
			if tc.edit != nil {
				tc.edit(&snap)
			}
			a := Compute(snap).Lookup(netip.MustParseAddr(ip4))
			if a == nil {
				t.Fatal("address missing")
			}
			if got := strings.Join(a.BGP.Nodes, ","); got != tc.nodes {
				t.Errorf("advertising nodes %q, want %q", got, tc.nodes)
			}
			if len(a.BGP.Advertisements) != tc.advs {
				t.Errorf("%d advertisements apply, want %d", len(a.BGP.Advertisements), tc.advs)
			}
		})
	}
}

// TestBGPPeersOfNode: a node peers with the BGPPeers whose nodeSelectors
// match it; invalid peers are left out; a peer naming a missing BFD
// profile is kept, without BFD, and named.
func TestBGPPeersOfNode(t *testing.T) {
	snap := base()
	snap.BGPPeers = []v1beta1.BGPPeer{
		{ObjectMeta: metav1.ObjectMeta{Name: "all"}, Spec: v1beta1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: "198.18.96.1", BFDProfile: "gone"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "edge"}, Spec: v1beta1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: "198.18.96.2",
			NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"edge": "true"}}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "broken"}, Spec: v1beta1.BGPPeerSpec{MyASN: 64512, PeerAddress: "198.18.96.3"}},
	}
	st := Compute(snap)
	names := func(l map[string]string) string {
		var out []string
		for _, p := range st.BGP.PeersOf(l) {
			out = append(out, p.Name)
		}
		return strings.Join(out, ",")
	}
	if got := names(map[string]string{"edge": "true"}); got != "all,edge" {
		t.Errorf("edge node peers %q", got)
	}
	if got := names(nil); got != "all" {
		t.Errorf("other node peers %q", got)
	}
	if st.BGP.MissingBFD["all"] != "gone" {
		t.Errorf("missing BFD %v", st.BGP.MissingBFD)
	}
}

// TestBGPRoutePeers: the condition names the peers an address goes to:
// those its advertisements select that peer with an advertising node.
func TestBGPRoutePeers(t *testing.T) {
	snap := base()
	snap.L2Advertisements = nil
	snap.Nodes[0] = node("n1", labelled("rack", "a"))
	snap.BGPPeers = []v1beta1.BGPPeer{
		{ObjectMeta: metav1.ObjectMeta{Name: "tor-a"}, Spec: v1beta1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: "198.18.96.1",
			NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "a"}}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "tor-b"}, Spec: v1beta1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: "198.18.96.2",
			NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "b"}}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "spine"}, Spec: v1beta1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: "198.18.96.3"}},
	}
	for _, tc := range []struct {
		peers []string
		want  string
	}{
		{nil, "spine,tor-a"},         // tor-b peers with no node
		{[]string{"tor-a"}, "tor-a"}, // the advertisement names one
		{[]string{"tor-b"}, ""},      // named, but peers with no node
	} {
		snap.BGPAdvertisements = []v1beta1.BGPAdvertisement{bgpAdv("a", v1beta1.BGPAdvertisementSpec{Peers: tc.peers})}
		a := Compute(snap).Lookup(netip.MustParseAddr(ip4))
		if got := strings.Join(a.BGP.Peers, ","); got != tc.want {
			t.Errorf("spec.peers %v: peers %q, want %q", tc.peers, got, tc.want)
		}
	}
}
