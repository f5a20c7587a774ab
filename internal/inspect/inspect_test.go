package inspect

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/election"
)

// The fixtures: three Ready nodes, one pool with a layer-2 advertisement,
// and Service default/web with a ready endpoint on n1 and its address
// from the pool.

func node(name string, edit ...func(*corev1.Node)) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	for _, e := range edit {
		e(&n)
	}
	return n
}

func pool(name string, addrs string, edit ...func(*v1beta1.IPAddressPool)) v1beta1.IPAddressPool {
	p := v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:   v1beta1.IPAddressPoolSpec{Addresses: []string{addrs}, AutoAssign: ptr.To(true)},
		Status: v1beta1.IPAddressPoolStatus{AvailableIPv4: 3, AssignedIPv4: 1}}
	for _, e := range edit {
		e(&p)
	}
	return p
}

func service(edit ...func(*corev1.Service)) corev1.Service {
	s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web",
		Annotations: map[string]string{v1beta1.AnnotationAllocatedFromPool: "lan"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"}, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "198.18.0.1"}}},
			Conditions: []metav1.Condition{{Type: v1beta1.ConditionAnnounced, Status: metav1.ConditionTrue, Reason: v1beta1.ReasonAnnounced,
				Message: "198.18.0.1 from node n2 on eth1 (ARP)"}}}}
	for _, e := range edit {
		e(&s)
	}
	return s
}

func pending(reason, msg string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		delete(s.Annotations, v1beta1.AnnotationAllocatedFromPool)
		s.Status = corev1.ServiceStatus{Conditions: []metav1.Condition{{Type: v1beta1.ConditionIPAllocated, Status: metav1.ConditionFalse, Reason: reason, Message: msg}}}
	}
}

func endpoints(nodes ...string) discoveryv1.EndpointSlice {
	es := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}}}
	for _, n := range nodes {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{"198.19.0.9"}, NodeName: ptr.To(n), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	return es
}

func cluster(edit ...func(*Cluster)) *Cluster {
	c := &Cluster{
		Nodes:            []corev1.Node{node("n1"), node("n2"), node("n3")},
		Namespaces:       []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "default"}}},
		Pools:            []v1beta1.IPAddressPool{pool("lan", "198.18.0.0/30")},
		L2Advertisements: []v1beta1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"lan"}}}},
		Services:         []corev1.Service{service()},
		EndpointSlices:   []discoveryv1.EndpointSlice{endpoints("n1")},
	}
	for _, e := range edit {
		e(c)
	}
	return c
}

func withService(edit ...func(*corev1.Service)) func(*Cluster) {
	return func(c *Cluster) { c.Services = []corev1.Service{service(edit...)} }
}

func withNode(i int, edit func(*corev1.Node)) func(*Cluster) {
	return func(c *Cluster) { edit(&c.Nodes[i]) }
}

func local(s *corev1.Service) {
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	s.Status.Conditions[0].Message = "198.18.0.1 from node n1 on eth1 (ARP)"
}

// withBGP replaces the layer-2 advertisement with a BGPAdvertisement of
// pool lan to the peer "router", which every node peers with, and gives
// each node the sessions listed (node -> its session with router; a node
// not listed reports none).
func withBGP(sessions map[string]v1beta1.BGPSessionStatus) func(*Cluster) {
	return func(c *Cluster) {
		c.L2Advertisements = nil
		c.BGPPeers = []v1beta1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "router"},
			Spec: v1beta1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: "198.18.0.254"}}}
		c.BGPAdvertisements = []v1beta1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "uplink"},
			Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"lan"}}}}
		for node, s := range sessions {
			s.Peer, s.PeerAddress = "router", "198.18.0.254"
			c.BGPNodeStatuses = append(c.BGPNodeStatuses, v1beta1.BGPNodeStatus{ObjectMeta: metav1.ObjectMeta{Name: node},
				Status: v1beta1.BGPNodeStatusStatus{Node: node, Sessions: []v1beta1.BGPSessionStatus{s}}})
		}
	}
}

// interfaceDown is the Announced condition the speakers write when no node
// has an announcing interface up (internal/election's message).
func interfaceDown(s *corev1.Service) {
	s.Status.Conditions[0] = metav1.Condition{Type: v1beta1.ConditionAnnounced, Status: metav1.ConditionFalse, Reason: "InterfaceDown",
		Message: "198.18.0.1 not announced: " + election.InterfaceDownMessage + ": n1: interface eth1 down; n2: interface eth1 down; n3: interface eth1 down"}
}

// TestExplainNamesTheCauseAndTheFix: each way a Service can be pending or
// not announced, and what explain says about it.
func TestExplainNamesTheCauseAndTheFix(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster *Cluster
		// summary is in the first line; want are in some finding (text or
		// fix) of the section named.
		summary string
		section string
		want    []string
	}{{
		name:    "healthy: the owner from the condition, its interface, the standby",
		cluster: cluster(),
		summary: "served: 198.18.0.1 from node n2 on eth1 (ARP)",
		section: "Layer 2 election for 198.18.0.1",
		want:    []string{"n2: announces it on eth1", "candidate, standby"},
	}, {
		name:    "no pool at all",
		cluster: cluster(func(c *Cluster) { c.Pools = nil }, withService(pending("NoMatchingPool", "no IPAddressPool matches"))),
		summary: "pending: NoMatchingPool: no IPAddressPool matches",
		section: "Pools",
		want:    []string{"no IPAddressPool exists", "create an IPAddressPool"},
	}, {
		name: "exhausted pool",
		cluster: cluster(func(c *Cluster) { c.Pools[0].Status = v1beta1.IPAddressPoolStatus{AssignedIPv4: 4} },
			withService(pending("PoolExhausted", "pool lan has no free IPv4 address"))),
		summary: "pending: PoolExhausted",
		section: "Pools",
		want:    []string{"lan: exhausted: no IPv4 address free", "add addresses to spec.addresses"},
	}, {
		name:    "pool not auto-assigned",
		cluster: cluster(func(c *Cluster) { c.Pools[0].Spec.AutoAssign = ptr.To(false) }, withService(pending("NoMatchingPool", "x"))),
		section: "Pools",
		want:    []string{"autoAssign is false", "pharos.io/address-pool: lan"},
	}, {
		name: "serviceAllocation selects another namespace",
		cluster: cluster(func(c *Cluster) {
			c.Pools[0].Spec.ServiceAllocation = &v1beta1.ServiceAllocation{Namespaces: []string{"prod"}}
		}, withService(pending("NoMatchingPool", "x"))),
		section: "Pools",
		want:    []string{"serviceAllocation does not select this Service (namespace default"},
	}, {
		name:    "family the pool lacks",
		cluster: cluster(withService(pending("NoMatchingPool", "x"), func(s *corev1.Service) { s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol} })),
		section: "Pools",
		want:    []string{"holds no IPv6 addresses", "add a IPv6 range"},
	}, {
		name: "requested address outside the pool",
		cluster: cluster(withService(pending("RequestedIPUnavailable", "x"), func(s *corev1.Service) {
			s.Annotations = map[string]string{"metallb.universe.tf/loadBalancerIPs": "198.18.9.9"}
		})),
		section: "Pools",
		want:    []string{"does not contain the requested address 198.18.9.9"},
	}, {
		name:    "requested pool that does not exist",
		cluster: cluster(withService(pending("NoMatchingPool", "x"), func(s *corev1.Service) { s.Annotations = map[string]string{v1beta1.AnnotationAddressPool: "gold"} })),
		section: "Pools",
		want:    []string{"asks for pool gold", "which does not exist"},
	}, {
		name: "invalid pool",
		cluster: cluster(func(c *Cluster) {
			c.Pools[0].Status.Conditions = []metav1.Condition{{Type: v1beta1.ConditionValid, Status: metav1.ConditionFalse, Reason: "Invalid", Message: "spec.addresses[0]: overlaps pool old"}}
		}, withService(pending("NoMatchingPool", "x"))),
		section: "Pools",
		want:    []string{"invalid, so unused: spec.addresses[0]: overlaps pool old"},
	}, {
		name:    "node excluded by label",
		cluster: cluster(withNode(2, func(n *corev1.Node) { n.Labels[v1beta1.LabelExcludeFromLB] = "" })),
		section: "Layer 2 election for 198.18.0.1",
		want:    []string{"n3: not a candidate: labelled node.kubernetes.io/exclude-from-external-load-balancers", "kubectl label node n3 node.kubernetes.io/exclude-from-external-load-balancers-"},
	}, {
		name:    "cordoned node",
		cluster: cluster(withNode(2, func(n *corev1.Node) { n.Spec.Unschedulable = true })),
		section: "Layer 2 election for 198.18.0.1",
		want:    []string{"n3: not a candidate: cordoned", "kubectl uncordon n3"},
	}, {
		name:    "node not Ready",
		cluster: cluster(withNode(2, func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionUnknown })),
		section: "Layer 2 election for 198.18.0.1",
		want:    []string{"n3: not a candidate: not Ready"},
	}, {
		name: "network unavailable",
		cluster: cluster(withNode(2, func(n *corev1.Node) {
			n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue})
		})),
		section: "Layer 2 election for 198.18.0.1",
		want:    []string{"n3: not a candidate: NetworkUnavailable is True", "pod network"},
	}, {
		name:    "no speaker on a node",
		cluster: cluster(func(c *Cluster) { c.SpeakerNodes = map[string]bool{"n1": true, "n2": true} }),
		section: "Layer 2 election for 198.18.0.1",
		want:    []string{"n3: not a candidate: no live speaker", "speaker pod on n3"},
	}, {
		name: "node not selected by the advertisement",
		cluster: cluster(func(c *Cluster) {
			c.L2Advertisements[0].Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"kubernetes.io/hostname": "n2"}}}
		}),
		section: "Layer 2 election for 198.18.0.1",
		want:    []string{"n1: not a candidate: no L2Advertisement for pool lan selects the node", "spec.nodeSelectors"},
	}, {
		name:    "Local Service: nodes without an endpoint",
		cluster: cluster(withService(local)),
		section: "Layer 2 election for 198.18.0.1",
		want:    []string{"n1: announces it on eth1", "n2: not a candidate: no ready local endpoint of default/web", "externalTrafficPolicy Cluster"},
	}, {
		name: "Local Service without any endpoint",
		cluster: cluster(withService(local, func(s *corev1.Service) {
			s.Status.Conditions[0] = metav1.Condition{Type: v1beta1.ConditionAnnounced, Status: metav1.ConditionFalse, Reason: "NoEndpoints", Message: "198.18.0.1 not announced: no endpoints"}
		}), func(c *Cluster) { c.EndpointSlices = nil }),
		summary: "assigned but not served: no ready endpoint",
		section: "Service",
		want:    []string{"no ready endpoint", "readiness probes"},
	}, {
		name:    "sharing conflict",
		cluster: cluster(withService(pending("SharingConflict", "port TCP/80 is already used by Service default/a"))),
		summary: "pending: SharingConflict: port TCP/80 is already used by Service default/a; fix: give the Services sharing an address",
		section: "Allocation",
		want:    []string{"SharingConflict: port TCP/80", "pharos.io/allow-shared-ip key and non-clashing ports"},
	}, {
		name:    "invalid request",
		cluster: cluster(withService(pending("InvalidRequest", `annotation pharos.io/loadBalancerIPs: "198.18.0.x" is not an IP address`))),
		summary: "pending: InvalidRequest",
		section: "Allocation",
		want:    []string{`InvalidRequest: annotation pharos.io/loadBalancerIPs: "198.18.0.x" is not an IP address`, "correct the Service's pharos.io annotations"},
	}, {
		name:    "K3s ServiceLB handles it too",
		cluster: cluster(withService(pending(v1beta1.ReasonServiceLBConflict, "K3s ServiceLB (DaemonSet kube-system/svclb-web) also handles this Service"))),
		summary: "pending: ServiceLBConflict",
		section: "Allocation",
		want:    []string{"ServiceLBConflict: K3s ServiceLB", "--disable=servicelb", "loadBalancerClass"},
	}, {
		name:    "requested address unavailable",
		cluster: cluster(withService(pending("RequestedIPUnavailable", "198.18.0.2 is used by Service default/db"))),
		section: "Allocation",
		want:    []string{"RequestedIPUnavailable: 198.18.0.2 is used by Service default/db", "request a free address"},
	}, {
		name:    "internal error",
		cluster: cluster(withService(pending(v1beta1.ReasonInternalError, "unexpected allocator error"))),
		summary: "pending: InternalError: unexpected allocator error; fix: a bug in the controller",
		section: "Allocation",
		want:    []string{"controller's log", "restarting the controller"},
	}, {
		name:    "every interface down, as the speakers report",
		cluster: cluster(withService(interfaceDown)),
		summary: "assigned but not served: False InterfaceDown: 198.18.0.1 not announced",
		section: "Layer 2 election for 198.18.0.1",
		want: []string{"n1: not a candidate: announcing interface down", "n2: not a candidate: announcing interface down", "n3: not a candidate: announcing interface down",
			"ip link set IFACE up on n1", "spec.interfaces", "no node announces it (InterfaceDown)"},
	}, {
		name: "BGP: session Established",
		cluster: cluster(withBGP(map[string]v1beta1.BGPSessionStatus{
			"n1": {State: "Established", PrefixesSent: 3}, "n2": {State: "Established", PrefixesSent: 3}, "n3": {State: "Established", PrefixesSent: 3}})),
		section: "BGP for 198.18.0.1",
		want:    []string{"advertised by BGPAdvertisement uplink", "n1 → router: session Established with 198.18.0.254, 3 prefix(es) sent | \n"},
	}, {
		name:    "BGP: session not established",
		cluster: cluster(withBGP(map[string]v1beta1.BGPSessionStatus{"n1": {State: "Active", LastError: "dial tcp 198.18.0.254:179: connection refused"}})),
		section: "BGP for 198.18.0.1",
		want:    []string{"n1 → router: session Active with 198.18.0.254: dial tcp 198.18.0.254:179: connection refused", "check the router's neighbor configuration for this node (address, ASN, password)"},
	}, {
		name:    "BGP: BFD down",
		cluster: cluster(withBGP(map[string]v1beta1.BGPSessionStatus{"n1": {State: "Established", PrefixesSent: 1, BFDState: "Down"}})),
		section: "BGP for 198.18.0.1",
		want:    []string{"n1 → router: session Established with 198.18.0.254, 1 prefix(es) sent, BFD Down", "check BFD on the router"},
	}, {
		name:    "BGP: no session reported",
		cluster: cluster(withBGP(nil)),
		section: "BGP for 198.18.0.1",
		want:    []string{"n2 → router: no session reported in BGPNodeStatus n2", "kubectl get bgpnodestatus n2 -o yaml"},
	}, {
		name:    "pool without advertisement",
		cluster: cluster(func(c *Cluster) { c.L2Advertisements = nil }),
		section: "Announcement of 198.18.0.1",
		want:    []string{"no L2Advertisement or BGPAdvertisement selects pool lan", "create an L2Advertisement or a BGPAdvertisement"},
	}, {
		name:    "not a LoadBalancer",
		cluster: cluster(withService(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP })),
		summary: "not served: type is ClusterIP",
		section: "Service",
		want:    []string{"set spec.type: LoadBalancer"},
	}, {
		name:    "another load balancer's class",
		cluster: cluster(withService(func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("other.io/lb") })),
		summary: "not served by Pharos: spec.loadBalancerClass is other.io/lb",
		section: "Service",
	}, {
		name: "controller never saw it",
		cluster: cluster(withService(func(s *corev1.Service) {
			delete(s.Annotations, v1beta1.AnnotationAllocatedFromPool)
			s.Status = corev1.ServiceStatus{}
		})),
		section: "Allocation",
		want:    []string{"no IPAllocated condition", "controller runs and has a leader"},
	}, {
		name: "invalid forwarding annotation",
		cluster: cluster(withService(func(s *corev1.Service) {
			s.Annotations[v1beta1.AnnotationForwarding] = "fast"
		})),
		section: "Forwarding",
		want:    []string{`pharos.io/forwarding is "fast"`, "correct or remove the annotation"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Explain(tc.cluster, "default", "web")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(e.Summary, tc.summary) {
				t.Errorf("summary %q, want it to contain %q", e.Summary, tc.summary)
			}
			var text string
			found := false
			for _, s := range e.Sections {
				if s.Title != tc.section {
					continue
				}
				found = true
				for _, f := range s.Findings {
					text += f.Subject + ": " + f.Text + " | " + f.Fix + "\n"
				}
			}
			if !found {
				t.Fatalf("no section %q in:\n%s", tc.section, e)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("section %q lacks %q:\n%s", tc.section, w, text)
				}
			}
		})
	}
	if _, err := Explain(cluster(), "default", "nope"); err == nil {
		t.Error("explain of a missing Service: no error")
	}
}

func TestStatusShowsUsageAndAnnouncer(t *testing.T) {
	c := cluster(func(c *Cluster) {
		c.Services = append(c.Services, service(func(s *corev1.Service) { s.Name = "queued" }, pending("PoolExhausted", "pool lan is full")))
	})
	r := Status(c)
	if len(r.Pools) != 1 || r.Pools[0].InUse != 1 || r.Pools[0].Size() != 4 || r.Pools[0].Bar(4) != "[#---]" {
		t.Errorf("pools: %+v", r.Pools)
	}
	if len(r.Services) != 2 {
		t.Fatalf("services: %+v", r.Services)
	}
	queued, web := r.Services[0], r.Services[1]
	if queued.Health != "PoolExhausted" || queued.Message != "pool lan is full" || len(queued.Addresses) != 0 {
		t.Errorf("pending Service: %+v", queued)
	}
	if web.Health != "Announced" || web.Protocol != "layer2" || strings.Join(web.Nodes, ",") != "n2" || web.Pool != "lan" {
		t.Errorf("served Service: %+v", web)
	}
	if out := r.String(); !strings.Contains(out, "default/web\t198.18.0.1\tlan\tlayer2\tn2\tAnnounced") {
		t.Errorf("table:\n%s", out)
	}
}

func TestDrainMovesWhatTheNodeAnnounces(t *testing.T) {
	// n2 announces (per the condition); draining it moves the address to
	// another node; draining n3 moves nothing.
	r, err := Drain(cluster(), "n2")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Moves) != 1 || r.Moves[0].From[0] != "n2" || len(r.Moves[0].To) != 1 || r.Moves[0].To[0] == "n2" {
		t.Errorf("drain n2: %+v", r.Moves)
	}
	if r, _ := Drain(cluster(), "n3"); len(r.Moves) != 0 {
		t.Errorf("drain n3: %+v", r.Moves)
	}
	// A Local Service whose only endpoint is on the drained node: nobody.
	r, _ = Drain(cluster(withService(local)), "n1")
	if len(r.Moves) != 1 || len(r.Moves[0].To) != 0 || !strings.Contains(r.String(), "NOBODY") {
		t.Errorf("drain of the only Local endpoint's node: %+v", r.Moves)
	}
	if _, err := Drain(cluster(), "n9"); err == nil {
		t.Error("drain of a missing node: no error")
	}
}

// TestExclusionFindingWordsEveryFault: each reason the election gives for
// leaving a node out has its own words and fix, and a node with several
// has them all, in one finding, in the same order.
func TestExclusionFindingWordsEveryFault(t *testing.T) {
	c := cluster(withNode(0, func(n *corev1.Node) { n.Spec.Unschedulable = true }),
		withNode(1, func(n *corev1.Node) {
			n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue})
		}))
	st := c.state()
	a := st.Lookup(netip.MustParseAddr("198.18.0.1"))
	for _, tc := range []struct {
		name      string
		x         election.Exclusion
		text, fix string
	}{
		{"no live speaker", election.Exclusion{Node: "n3", Faults: election.FaultNotAlive},
			"not a candidate: no live speaker on the node (or it is draining)", "check the speaker pod on n3 (kubectl -n pharos-system get pods -o wide)"},
		{"not selected", election.Exclusion{Node: "n3", Faults: election.FaultNotSelected},
			"not a candidate: no L2Advertisement for pool lan selects the node", "widen the L2Advertisement's spec.nodeSelectors to include it"},
		{"cordoned", election.Exclusion{Node: "n1", Faults: election.FaultNotReady},
			"not a candidate: cordoned", "kubectl uncordon n1 when maintenance is over"},
		{"network unavailable", election.Exclusion{Node: "n2", Faults: election.FaultNotReady},
			"not a candidate: NetworkUnavailable is True", "fix the node's pod network (CNI)"},
		{"not Ready", election.Exclusion{Node: "n3", Faults: election.FaultNotReady},
			"not a candidate: not Ready", "fix the node or its kubelet (kubectl describe node n3)"},
		{"excluded by label", election.Exclusion{Node: "n3", Faults: election.FaultExcluded},
			"not a candidate: labelled node.kubernetes.io/exclude-from-external-load-balancers",
			"kubectl label node n3 node.kubernetes.io/exclude-from-external-load-balancers- to let it announce"},
		{"interface down", election.Exclusion{Node: "n3", Faults: election.FaultInterfaceDown, DownInterfaces: []string{"eth1", "eth2"}},
			"not a candidate: announcing interface down: eth1, eth2", "bring the interface up, or change the L2Advertisement's spec.interfaces"},
		{"no local endpoint", election.Exclusion{Node: "n3", Faults: election.FaultNoLocalEndpoint, Unserved: []string{"default/web"}},
			"not a candidate: no ready local endpoint of default/web (externalTrafficPolicy Local)", "run a pod of the Service on this node, or use externalTrafficPolicy Cluster"},
		{"several at once", election.Exclusion{Node: "n3", Faults: election.FaultNotAlive | election.FaultExcluded | election.FaultNoLocalEndpoint, Unserved: []string{"default/web"}},
			"not a candidate: no live speaker on the node (or it is draining); labelled node.kubernetes.io/exclude-from-external-load-balancers; no ready local endpoint of default/web (externalTrafficPolicy Local)",
			"check the speaker pod on n3 (kubectl -n pharos-system get pods -o wide); kubectl label node n3 node.kubernetes.io/exclude-from-external-load-balancers- to let it announce; run a pod of the Service on this node, or use externalTrafficPolicy Cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := exclusionFinding(c, a, tc.x)
			if f.OK || f.Subject != tc.x.Node || f.Text != tc.text || f.Fix != tc.fix {
				t.Errorf("finding %+v\nwant text %q\n     fix  %q", f, tc.text, tc.fix)
			}
		})
	}
}
