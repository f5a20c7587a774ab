package speaker

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/election"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// The fixtures: nodes n1, n2, n3 on a LAN 198.18.0.0/24 and
// 2001:db8:1::/64 (eth0), a pool "web" whose addresses are in that LAN.

const (
	ip4 = "198.18.0.100"
	ip6 = "2001:db8:1::100"
)

type nodeOpt func(*corev1.Node)

func node(name string, opts ...nodeOpt) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	for _, o := range opts {
		o(&n)
	}
	return n
}

var (
	notReady = func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }
	cordoned = func(n *corev1.Node) { n.Spec.Unschedulable = true }
	excluded = func(n *corev1.Node) { n.Labels[v1beta1.LabelExcludeFromLB] = "" }
	netDown  = func(n *corev1.Node) {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue})
	}
	netUp = func(n *corev1.Node) {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse})
	}
	labelled = func(k, v string) nodeOpt { return func(n *corev1.Node) { n.Labels[k] = v } }
)

type svcOpt func(*corev1.Service)

func service(name string, ips []string, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{v1beta1.AnnotationAllocatedFromPool: "web"}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster},
	}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

var (
	local    = func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }
	fromPool = func(p string) svcOpt {
		return func(s *corev1.Service) { s.Annotations[v1beta1.AnnotationAllocatedFromPool] = p }
	}
	notAllocated = func(s *corev1.Service) { delete(s.Annotations, v1beta1.AnnotationAllocatedFromPool) }
)

// endpoints returns an EndpointSlice of the Service with one ready
// endpoint on each named node.
func endpoints(svc string, nodes ...string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svc}}}
	for _, n := range nodes {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{"198.19.0.1"}, NodeName: &n})
	}
	return es
}

func pool(name string, lbls map[string]string) v1beta1.IPAddressPool {
	return v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
}

func l2adv(name string, spec v1beta1.L2AdvertisementSpec) v1beta1.L2Advertisement {
	return v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

// lan is the metadata of a speaker with eth0 up on the LAN.
var lan = speakerlist.Meta{InterfacesUp: []string{"eth0=198.18.0.0/24", "eth0=2001:db8:1::/64"}}

func allMembers(names ...string) map[string]speakerlist.Meta {
	m := map[string]speakerlist.Meta{}
	for _, n := range names {
		m[n] = lan
	}
	return m
}

// base is a healthy three-node cluster with one Cluster Service on ip4,
// served from n1, and an advertisement for every pool.
func base() Snapshot {
	return Snapshot{
		Services:         []*corev1.Service{service("web", []string{ip4})},
		EndpointSlices:   []*discoveryv1.EndpointSlice{endpoints("web", "n1")},
		Nodes:            []corev1.Node{node("n1"), node("n2"), node("n3")},
		Pools:            []v1beta1.IPAddressPool{pool("web", nil)},
		L2Advertisements: []v1beta1.L2Advertisement{l2adv("all", v1beta1.L2AdvertisementSpec{})},
		Members:          allMembers("n1", "n2", "n3"),
	}
}

// TestCompute is the specification of who may announce an address by
// layer 2. Each case edits the healthy base cluster and lists the
// candidates (the nodes that may announce), and either the winner or,
// when there is none, the reason.
func TestCompute(t *testing.T) {
	preferred := election.Order(netip.MustParseAddr(ip4), []string{"n1", "n2", "n3"})
	tests := []struct {
		name       string
		edit       func(*Snapshot)
		ip         string
		candidates []string // sorted; nil: no candidate
		winner     string   // "" with candidates: the hash order's first
		reason     election.Reason
		absent     bool // the address is not in the state at all
	}{
		{name: "healthy cluster: every node is a candidate", candidates: []string{"n1", "n2", "n3"}},
		{name: "a node that is not Ready is not a candidate",
			edit:       func(s *Snapshot) { s.Nodes[0] = node("n1", notReady) },
			candidates: []string{"n2", "n3"}},
		{name: "a cordoned node is not a candidate (graceful hand-over before a drain)",
			edit:       func(s *Snapshot) { s.Nodes[1] = node("n2", cordoned) },
			candidates: []string{"n1", "n3"}},
		{name: "a node labelled exclude-from-external-load-balancers is not a candidate",
			edit:       func(s *Snapshot) { s.Nodes[2] = node("n3", excluded) },
			candidates: []string{"n1", "n2"}},
		{name: "a node whose NetworkUnavailable is True is not a candidate",
			edit:       func(s *Snapshot) { s.Nodes[0] = node("n1", netDown) },
			candidates: []string{"n2", "n3"}},
		{name: "NetworkUnavailable False changes nothing",
			edit:       func(s *Snapshot) { s.Nodes[0] = node("n1", netUp) },
			candidates: []string{"n1", "n2", "n3"}},
		{name: "a node whose speaker is not a member is not a candidate",
			edit:       func(s *Snapshot) { delete(s.Members, "n2") },
			candidates: []string{"n1", "n3"}},
		{name: "a draining speaker is not a candidate",
			edit:       func(s *Snapshot) { s.Members["n3"] = speakerlist.Meta{InterfacesUp: lan.InterfacesUp, Draining: true} },
			candidates: []string{"n1", "n2"}},
		{name: "a node without an interface up on the address's subnet is not a candidate",
			edit:       func(s *Snapshot) { s.Members["n1"] = speakerlist.Meta{InterfacesUp: []string{"eth1=198.18.5.0/24"}} },
			candidates: []string{"n2", "n3"}},
		{name: "an interface named by the advertisement but down on a node",
			edit: func(s *Snapshot) {
				s.L2Advertisements = []v1beta1.L2Advertisement{l2adv("eth1", v1beta1.L2AdvertisementSpec{Interfaces: []string{"eth1"}})}
				for _, n := range []string{"n1", "n2"} {
					s.Members[n] = speakerlist.Meta{InterfacesUp: []string{"eth1=198.18.7.0/24"}}
				}
			},
			candidates: []string{"n1", "n2"}},
		{name: "every interface down: no winner, InterfaceDown",
			edit: func(s *Snapshot) {
				for n := range s.Members {
					s.Members[n] = speakerlist.Meta{}
				}
			},
			reason: election.InterfaceDown},
		{name: "Local policy: only nodes with a ready local endpoint",
			edit: func(s *Snapshot) {
				s.Services[0] = service("web", []string{ip4}, local)
				s.EndpointSlices = []*discoveryv1.EndpointSlice{endpoints("web", "n2", "n3")}
			},
			candidates: []string{"n2", "n3"}},
		{name: "Local policy with its only endpoint on an excluded node: no winner",
			edit: func(s *Snapshot) {
				s.Services[0] = service("web", []string{ip4}, local)
				s.EndpointSlices = []*discoveryv1.EndpointSlice{endpoints("web", "n3")}
				s.Nodes[2] = node("n3", excluded)
			},
			reason: election.NoEligibleNode},
		{name: "no endpoint anywhere: nobody announces",
			edit:   func(s *Snapshot) { s.EndpointSlices = nil },
			reason: election.NoEndpoints},
		{name: "advertisement restricted by nodeSelectors",
			edit: func(s *Snapshot) {
				s.Nodes[1] = node("n2", labelled("edge", "true"))
				s.L2Advertisements = []v1beta1.L2Advertisement{l2adv("edge", v1beta1.L2AdvertisementSpec{
					NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"edge": "true"}}}})}
			},
			candidates: []string{"n2"}},
		{name: "no advertisement selects the pool",
			edit: func(s *Snapshot) {
				s.L2Advertisements = []v1beta1.L2Advertisement{l2adv("other", v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"other"}})}
			},
			reason: election.NoMatchingAdvertisement},
		{name: "the pool is the controller's answer: selected by the name on the Service, whatever the pool model",
			edit: func(s *Snapshot) {
				// The pool object exists (perhaps with a spec now invalid,
				// kept by the controller on its last valid one): only its
				// name and labels matter here.
				s.Pools = []v1beta1.IPAddressPool{pool("web", map[string]string{"tier": "front"})}
				s.L2Advertisements = []v1beta1.L2Advertisement{l2adv("front", v1beta1.L2AdvertisementSpec{
					IPAddressPoolSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "front"}}}})}
			},
			candidates: []string{"n1", "n2", "n3"}},
		{name: "an address of another pool is announced only by that pool's advertisements",
			edit: func(s *Snapshot) {
				s.Services[0] = service("web", []string{ip4}, fromPool("db"))
				s.L2Advertisements = []v1beta1.L2Advertisement{l2adv("web-only", v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"web"}})}
			},
			reason: election.NoMatchingAdvertisement},
		{name: "a Service the controller has not allocated is not announced",
			edit:   func(s *Snapshot) { s.Services[0] = service("web", []string{ip4}, notAllocated) },
			absent: true},
		{name: "an invalid advertisement does not apply",
			edit: func(s *Snapshot) {
				s.L2Advertisements = []v1beta1.L2Advertisement{l2adv("bad", v1beta1.L2AdvertisementSpec{Interfaces: []string{"not/an/interface"}})}
			},
			reason: election.NoMatchingAdvertisement},
		{name: "IPv6 address on the IPv6 subnet",
			edit:       func(s *Snapshot) { s.Services[0] = service("web", []string{ip6}) },
			ip:         ip6,
			candidates: []string{"n1", "n2", "n3"}},
		{name: "the current owner keeps the address while it is a candidate",
			edit: func(s *Snapshot) {
				s.Claims = map[netip.Addr][]speakerlist.Claim{netip.MustParseAddr(ip4): {{Node: preferred[2], Epoch: 1}}}
			},
			candidates: []string{"n1", "n2", "n3"}, winner: preferred[2]},
		{name: "the earliest claim wins when two nodes claim the address",
			edit: func(s *Snapshot) {
				s.Claims = map[netip.Addr][]speakerlist.Claim{netip.MustParseAddr(ip4): {{Node: preferred[1], Epoch: 5}, {Node: preferred[2], Epoch: 3}}}
			},
			candidates: []string{"n1", "n2", "n3"}, winner: preferred[2]},
		{name: "a claim by a node that is no longer a candidate is ignored",
			edit: func(s *Snapshot) {
				s.Claims = map[netip.Addr][]speakerlist.Claim{netip.MustParseAddr(ip4): {{Node: preferred[0], Epoch: 1}, {Node: preferred[1], Epoch: 2}}}
				for i := range s.Nodes {
					if s.Nodes[i].Name == preferred[0] {
						s.Nodes[i] = node(preferred[0], cordoned)
					}
				}
			},
			candidates: sorted(preferred[1], preferred[2]), winner: preferred[1]},
		{name: "return-to-preferred overrides the current owner",
			edit: func(s *Snapshot) {
				s.Services[0].Annotations[v1beta1.AnnotationReturnToPreferred] = "true"
				s.Claims = map[netip.Addr][]speakerlist.Claim{netip.MustParseAddr(ip4): {{Node: preferred[2], Epoch: 1}}}
			},
			candidates: []string{"n1", "n2", "n3"}, winner: preferred[0]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := base()
			if tc.edit != nil {
				tc.edit(&snap)
			}
			ip := tc.ip
			if ip == "" {
				ip = ip4
			}
			st := Compute(snap)
			a := st.Lookup(netip.MustParseAddr(ip))
			if tc.absent {
				if a != nil {
					t.Fatalf("address %s is in the state: %+v", ip, a.Election)
				}
				return
			}
			if a == nil {
				t.Fatalf("address %s is not in the state", ip)
			}
			r := a.Election
			if got, want := strings.Join(sorted(r.Candidates...), ","), strings.Join(tc.candidates, ","); got != want {
				t.Errorf("candidates = %q, want %q (%s)", got, want, r.Message)
			}
			switch {
			case tc.candidates == nil:
				if r.Winner != "" || r.Reason != tc.reason {
					t.Errorf("winner %q reason %q, want none and %q (%s)", r.Winner, r.Reason, tc.reason, r.Message)
				}
			case tc.winner != "":
				if r.Winner != tc.winner {
					t.Errorf("winner = %q, want %q", r.Winner, tc.winner)
				}
			default:
				if want := election.Order(a.IP, tc.candidates)[0]; r.Winner != want {
					t.Errorf("winner = %q, want the hash order's first candidate %q", r.Winner, want)
				}
			}
			if r.Winner != "" {
				won := st.Won(r.Winner)
				if _, ok := won[a.IP]; !ok || len(won) != 1 {
					t.Errorf("Won(%s) = %v, want just %s", r.Winner, won, a.IP)
				}
			}
		})
	}
}

func sorted(s ...string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestComputeSharedAddress: Services sharing an address are one address
// with both Services, elected once.
func TestComputeSharedAddress(t *testing.T) {
	snap := base()
	snap.Services = append(snap.Services, service("web-udp", []string{ip4}), service("api", []string{"198.18.0.101", ip6}))
	snap.EndpointSlices = append(snap.EndpointSlices, endpoints("api", "n2"))
	st := Compute(snap)
	if len(st.Addresses) != 3 {
		t.Fatalf("%d addresses, want 3", len(st.Addresses))
	}
	for i := 1; i < len(st.Addresses); i++ {
		if !st.Addresses[i-1].IP.Less(st.Addresses[i].IP) {
			t.Errorf("addresses not sorted: %s before %s", st.Addresses[i-1].IP, st.Addresses[i].IP)
		}
	}
	shared := st.Lookup(netip.MustParseAddr(ip4))
	if len(shared.Services) != 2 || shared.Services[0].Name != "web" || shared.Services[1].Name != "web-udp" {
		t.Errorf("shared address's Services = %v", shared.Services)
	}
}

func TestNextEpoch(t *testing.T) {
	if got := NextEpoch(nil); got != 1 {
		t.Errorf("NextEpoch(nil) = %d, want 1", got)
	}
	// A node whose wall clock is far behind still claims after every claim
	// it has seen.
	if got := NextEpoch([]speakerlist.Claim{{Node: "a", Epoch: 7}, {Node: "b", Epoch: 1_700_000_000_000_000_000}}); got != 1_700_000_000_000_000_001 {
		t.Errorf("NextEpoch = %d", got)
	}
}

// TestNotLayer2Message: an address of a pool that no L2Advertisement
// selects gets no election, and a message that names the pool and the fix,
// the same value for every address of the pool.
func TestNotLayer2Message(t *testing.T) {
	snap := base()
	snap.L2Advertisements = nil
	snap.Services = append(snap.Services, service("api", []string{"198.18.0.101"}))
	st := Compute(snap)
	for _, ip := range []string{ip4, "198.18.0.101"} {
		a := st.Lookup(netip.MustParseAddr(ip))
		if a == nil {
			t.Fatalf("%s missing from the state", ip)
		}
		r := a.Election
		if r.Reason != election.NoMatchingAdvertisement || r.Winner != "" || len(r.Candidates) != 0 || len(r.Excluded) != 0 {
			t.Errorf("%s: %+v, want NoMatchingAdvertisement and no election", ip, r)
		}
		if want := "no L2Advertisement selects pool web; create one that lists it in spec.ipAddressPools"; r.Message != want {
			t.Errorf("%s: message %q, want %q", ip, r.Message, want)
		}
	}
}
