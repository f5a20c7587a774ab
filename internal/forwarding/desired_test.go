package forwarding

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/speaker"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

const vip4, vip6 = "198.18.100.10", "2001:db8:96::100:10"

func svc(name string, ips []string, edits ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{v1beta1.AnnotationAllocatedFromPool: "lan"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	for _, e := range edits {
		e(s)
	}
	return s
}

var (
	direct   = func(s *corev1.Service) { s.Annotations[v1beta1.AnnotationForwarding] = v1beta1.ForwardingDirect }
	viaProxy = func(s *corev1.Service) { s.Annotations[v1beta1.AnnotationForwarding] = v1beta1.ForwardingKubeProxy }
	local    = func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }
	nodePort = func(s *corev1.Service) {
		s.Annotations[v1beta1.AnnotationForwarding] = v1beta1.ForwardingNodePort
		s.Spec.Ports[0].NodePort = 30080
	}
	ranges = func(r ...string) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = r }
	}
)

// ep is an endpoint "node=address" with its readiness.
type ep struct {
	node, addr         string
	ready, terminating bool
}

func slice(svcName string, family discoveryv1.AddressType, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	name, proto := "http", corev1.ProtocolTCP
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("%s-%s", svcName, family), Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: family,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
	for _, e := range eps {
		node, ready, term, serving := e.node, e.ready, e.terminating, e.ready || e.terminating
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{e.addr}, NodeName: &node,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &term}})
	}
	return es
}

func nodeObj(name string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

// snapshot: three nodes on the LAN, all members, an L2Advertisement for
// pool lan; web has endpoints on n1 and n2, both families.
func snapshot() speaker.Snapshot {
	members := map[string]speakerlist.Meta{}
	for _, n := range []string{"n1", "n2", "n3"} {
		members[n] = speakerlist.Meta{InterfacesUp: []string{"eth0=198.18.96.0/19", "eth0=2001:db8:96::/64"}}
	}
	return speaker.Snapshot{
		Services: []*corev1.Service{svc("web", []string{vip4, vip6}, direct)},
		EndpointSlices: []*discoveryv1.EndpointSlice{
			slice("web", discoveryv1.AddressTypeIPv4, 8080, ep{"n1", "198.18.33.1", true, false}, ep{"n2", "198.18.34.1", true, false}),
			slice("web", discoveryv1.AddressTypeIPv6, 8080, ep{"n1", "2001:db8:42:1::1", true, false}, ep{"n2", "2001:db8:42:2::1", true, false}),
		},
		Nodes:            []corev1.Node{nodeObj("n1"), nodeObj("n2"), nodeObj("n3")},
		Pools:            []v1beta1.IPAddressPool{{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}},
		L2Advertisements: []v1beta1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}},
		Members:          members,
	}
}

// render prints the frontends one per line, as
// "vip proto/port <- backends [local] [preserve] [ranges]".
func render(t *testing.T, st *speaker.State, in Input) (string, []Problem) {
	t.Helper()
	cfg, problems := Desired(st, in)
	var lines []string
	for _, f := range cfg.Frontends {
		var bs []string
		for _, b := range f.Backends {
			s := netip.AddrPortFrom(b.Addr, b.Port).String()
			if b.Local {
				s += "(local)"
			}
			bs = append(bs, s)
		}
		line := fmt.Sprintf("%s %s/%d <- %s", f.VIP, f.Protocol, f.Port, strings.Join(bs, " "))
		switch {
		case f.NodePort != 0:
			line = fmt.Sprintf("%s %s/%d => %s", f.VIP, f.Protocol, f.Port, netip.AddrPortFrom(f.NodeAddr, f.NodePort))
		case len(bs) == 0:
			line += "nobody"
		}
		if f.PreserveClient {
			line += " preserve"
		}
		if len(f.SourceRanges) > 0 {
			line += fmt.Sprintf(" from %v", f.SourceRanges)
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n"), problems
}

// TestDesired is the specification of what a node forwards directly.
// Unless a case names the node, it is the layer-2 winner of the address
// (so it carries it); each want is a function of that node, whose own
// endpoints are marked local.
func TestDesired(t *testing.T) {
	const front4 = "198.18.100.10 tcp/80 <- "
	all4 := func(n string) string { return front4 + backends4(n) }
	none := func(string) string { return "" }
	tests := []struct {
		name     string
		edit     func(*speaker.Snapshot)
		loser    bool // look from a node that does not win the address
		def      string
		dead     []string
		v6       bool // the IPv6 address's frontends (default IPv4's)
		want     func(node string) string
		problems []string
	}{
		{name: "direct, this node wins the address: every ready endpoint, its own ones local", want: all4},
		{name: "kube-proxy mode (the annotation): nothing here",
			edit: func(s *speaker.Snapshot) { viaProxy(s.Services[0]) }, want: none},
		{name: "no annotation, cluster default kube-proxy: nothing",
			edit: func(s *speaker.Snapshot) { delete(s.Services[0].Annotations, v1beta1.AnnotationForwarding) }, want: none},
		{name: "no annotation, cluster default direct: forwarded",
			edit: func(s *speaker.Snapshot) { delete(s.Services[0].Annotations, v1beta1.AnnotationForwarding) },
			def:  v1beta1.ForwardingDirect, want: all4},
		{name: "the annotation overrides a direct default",
			edit: func(s *speaker.Snapshot) { viaProxy(s.Services[0]) }, def: v1beta1.ForwardingDirect, want: none},
		{name: "a node that does not carry the address has no rule for it", loser: true, want: none},
		{name: "Local: only the winner's own endpoints, client address preserved",
			edit: func(s *speaker.Snapshot) { local(s.Services[0]) },
			want: func(n string) string {
				return front4 + map[string]string{"n1": "198.18.33.1:8080(local)", "n2": "198.18.34.1:8080(local)"}[n] + " preserve"
			}},
		{name: "a dead node's endpoints leave at once",
			edit: func(s *speaker.Snapshot) { delete(s.Members, "n2") }, dead: []string{"n2"},
			want: func(n string) string { return front4 + lcl("198.18.33.1:8080", "n1", n) }},
		{name: "no ready endpoint: the serving terminating ones",
			edit: func(s *speaker.Snapshot) {
				s.EndpointSlices[0] = slice("web", discoveryv1.AddressTypeIPv4, 8080, ep{"n1", "198.18.33.1", false, true}, ep{"n2", "198.18.34.1", false, false})
			},
			want: func(n string) string { return front4 + lcl("198.18.33.1:8080", "n1", n) }},
		{name: "source ranges of the address's family are enforced",
			edit: func(s *speaker.Snapshot) { ranges("198.18.200.0/24", "2001:db8:200::/64")(s.Services[0]) },
			want: func(n string) string { return all4(n) + " from [198.18.200.0/24]" }},
		{name: "IPv4 ranges only: the IPv6 address allows nobody",
			edit: func(s *speaker.Snapshot) { ranges("198.18.200.0/24")(s.Services[0]) }, v6: true,
			want: func(string) string { return "2001:db8:96::100:10 tcp/80 <- nobody" }},
		{name: "a source range that is not a CIDR allows nobody, and says so",
			edit: func(s *speaker.Snapshot) { s.Services[0].Annotations[annotationSourceRanges] = "not-a-cidr" },
			want: func(string) string { return front4 + "nobody" }, problems: []string{`"not-a-cidr" are not CIDRs`}},
		{name: "two Services on one address, different ports: one frontend each",
			edit: func(s *speaker.Snapshot) {
				dns := svc("dns", []string{vip4}, direct, func(x *corev1.Service) {
					x.Spec.Ports = []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}
				})
				name, proto, port := "dns", corev1.ProtocolUDP, int32(5353)
				s.Services = append(s.Services, dns)
				s.EndpointSlices = append(s.EndpointSlices, &discoveryv1.EndpointSlice{
					ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "dns-1", Labels: map[string]string{discoveryv1.LabelServiceName: "dns"}},
					AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
					Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"198.18.35.1"}, NodeName: ptr("n3")}}})
			},
			want: func(n string) string {
				return "198.18.100.10 udp/53 <- " + lcl("198.18.35.1:5353", "n3", n) + "\n" + all4(n)
			}},
		{name: "two Services on one address and port: the second is refused, naming the first",
			edit: func(s *speaker.Snapshot) { s.Services = append(s.Services, svc("web2", []string{vip4}, direct)) },
			want: all4, problems: []string{"already forwarded for default/web"}},
		{name: "nodeport: handed to kube-proxy's NodePort on this node's address of the family",
			edit: func(s *speaker.Snapshot) { nodePort(s.Services[0]) },
			want: func(string) string { return "198.18.100.10 tcp/80 => 198.18.96.11:30080" }},
		{name: "nodeport for IPv6: the node's IPv6 address",
			edit: func(s *speaker.Snapshot) { nodePort(s.Services[0]) }, v6: true,
			want: func(string) string { return "2001:db8:96::100:10 tcp/80 => [2001:db8:96::11]:30080" }},
		{name: "nodeport without a NodePort: nothing, and says why",
			edit: func(s *speaker.Snapshot) {
				nodePort(s.Services[0])
				s.Services[0].Spec.Ports[0].NodePort = 0
			},
			want: none, problems: []string{"has no NodePort"}},
		{name: "nodeport keeps the source ranges",
			edit: func(s *speaker.Snapshot) { nodePort(s.Services[0]); ranges("198.18.200.0/24")(s.Services[0]) },
			want: func(string) string { return "198.18.100.10 tcp/80 => 198.18.96.11:30080 from [198.18.200.0/24]" }},
		{name: "the endpoint port is the one named as the Service port",
			edit: func(s *speaker.Snapshot) { s.Services[0].Spec.Ports[0].Name = "other" },
			want: func(string) string { return front4 + "nobody" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapshot()
			if tc.edit != nil {
				tc.edit(&snap)
			}
			def := tc.def
			if def == "" {
				def = v1beta1.ForwardingKubeProxy
			}
			st := speaker.Compute(snap)
			vip, prefix := vip4, "198."
			if tc.v6 {
				vip, prefix = vip6, "2001:"
			}
			node := st.Lookup(netip.MustParseAddr(vip)).Election.Winner
			if node == "" {
				t.Fatalf("nobody wins %s", vip)
			}
			if tc.loser {
				node = other(node)
			}
			in := Input{Node: node, Default: def, NodeAddrs: []netip.Addr{netip.MustParseAddr("198.18.96.11"), netip.MustParseAddr("2001:db8:96::11")}, Dead: func(n string) bool { return slices.Contains(tc.dead, n) }}
			got, problems := render(t, st, in)
			var keep []string
			for _, l := range strings.Split(got, "\n") {
				if strings.HasPrefix(l, prefix) {
					keep = append(keep, l)
				}
			}
			if g, w := strings.Join(keep, "\n"), tc.want(node); g != w {
				t.Errorf("node %s forwards:\n%s\nwant:\n%s", node, g, w)
			}
			if len(problems) != len(tc.problems) {
				t.Fatalf("problems %+v, want %d matching %q", problems, len(tc.problems), tc.problems)
			}
			for i, p := range tc.problems {
				if !strings.Contains(problems[i].Message, p) {
					t.Errorf("problem %q, want it to contain %q", problems[i].Message, p)
				}
			}
		})
	}
}

// TestDesiredBGP: a node that advertises the address by BGP forwards it.
func TestDesiredBGP(t *testing.T) {
	snap := snapshot()
	snap.L2Advertisements = nil
	snap.BGPPeers = []v1beta1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "router"}, Spec: v1beta1.BGPPeerSpec{MyASN: 64512, PeerASN: 64512, PeerAddress: "198.18.96.1"}}}
	snap.BGPAdvertisements = []v1beta1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"lan"}}}}
	st := speaker.Compute(snap)
	for _, n := range []string{"n1", "n2", "n3"} {
		got, _ := render(t, st, Input{Node: n, Default: v1beta1.ForwardingKubeProxy})
		if !strings.Contains(got, "198.18.100.10 tcp/80 <- ") || !strings.Contains(got, "2001:db8:96::100:10 tcp/80 <- ") {
			t.Errorf("BGP node %s forwards:\n%s\nwant both addresses", n, got)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// backends4 is the IPv4 backends as node n sees them.
func backends4(n string) string {
	return lcl("198.18.33.1:8080", "n1", n) + " " + lcl("198.18.34.1:8080", "n2", n)
}

// lcl marks a backend on node epNode local when seen from node n.
func lcl(b, epNode, n string) string {
	if epNode == n {
		return b + "(local)"
	}
	return b
}

func other(n string) string {
	for _, o := range []string{"n1", "n2", "n3"} {
		if o != n {
			return o
		}
	}
	return ""
}
