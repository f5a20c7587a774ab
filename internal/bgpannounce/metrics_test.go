package bgpannounce

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/speaker"
)

// freePort returns a TCP port on loopback that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startRouter runs a GoBGP router (AS 64513) on loopback that waits for
// this node (AS 64512) to connect, and returns its port.
func startRouter(t *testing.T) int {
	t.Helper()
	port := freePort(t)
	r := server.NewBgpServer()
	go r.Serve()
	t.Cleanup(r.Stop)
	ctx := context.Background()
	if err := r.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 64513, RouterId: "198.18.0.254",
		ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 64512},
		Transport: &api.Transport{PassiveMode: true},
	}}); err != nil {
		t.Fatal(err)
	}
	return port
}

// bgpSnapshot is one node, n1, advertising 198.18.77.10 and .11 (one
// Service each) to the given peers by a BGPAdvertisement of every pool,
// with a BFD profile "fast".
func bgpSnapshot(peers ...v1beta1.BGPPeer) speaker.Snapshot {
	node := "n1"
	snap := speaker.Snapshot{
		Nodes: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: node},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}},
		Pools:             []v1beta1.IPAddressPool{{ObjectMeta: metav1.ObjectMeta{Name: "web"}}},
		BGPAdvertisements: []v1beta1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "all"}}},
		BGPPeers:          peers,
		BFDProfiles:       []v1beta1.BFDProfile{{ObjectMeta: metav1.ObjectMeta{Name: "fast"}}},
	}
	for i, ip := range []string{"198.18.77.10", "198.18.77.11"} {
		name := fmt.Sprint("web-", i)
		snap.Services = append(snap.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{v1beta1.AnnotationAllocatedFromPool: "web"}},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
			Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ip}}}},
		})
		snap.EndpointSlices = append(snap.EndpointSlices, &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"198.19.0.1"}, NodeName: &node}},
		})
	}
	return snap
}

func bgpPeer(name string, port int, bfd string) v1beta1.BGPPeer {
	return v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.BGPPeerSpec{
		MyASN: 64512, PeerASN: 64513, PeerAddress: "127.0.0.1", PeerPort: uint16(port), BFDProfile: bfd,
		ConnectTime: &metav1.Duration{Duration: time.Second}}}
}

// TestSessionMetrics: a session with a router is up, in state established,
// with the node's two addresses advertised; a peer that never answers is
// down, in one state that is not established, and, having a BFD profile,
// has a BFD series, down; a removed peer's series are gone.
func TestSessionMetrics(t *testing.T) {
	router := startRouter(t)
	b := New(Options{Node: "n1", Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	defer b.Close()
	// Two peers on one address would be refused: the silent one is on
	// 127.0.0.2, where nothing listens.
	silent := bgpPeer("silent", freePort(t), "fast")
	silent.Spec.PeerAddress = "127.0.0.2"
	b.Apply(speaker.Compute(bgpSnapshot(bgpPeer("router", router, ""), silent)))

	established := `
# HELP pharos_bgp_advertised_prefixes Prefixes this node advertises to the BGPPeer now (GoBGP's count of advertised routes).
# TYPE pharos_bgp_advertised_prefixes gauge
pharos_bgp_advertised_prefixes{peer="router"} 2
pharos_bgp_advertised_prefixes{peer="silent"} 0
# HELP pharos_bgp_session_up 1 if this node's BGP session with the BGPPeer (named by peer) is Established, else 0.
# TYPE pharos_bgp_session_up gauge
pharos_bgp_session_up{peer="router"} 1
pharos_bgp_session_up{peer="silent"} 0
# HELP pharos_bgp_bfd_up 1 if the BFD session watching this node's BGP session with the BGPPeer is Up, else 0; only for BGPPeers with a bfdProfile.
# TYPE pharos_bgp_bfd_up gauge
pharos_bgp_bfd_up{peer="silent"} 0
`
	names := []string{"pharos_bgp_advertised_prefixes", "pharos_bgp_session_up", "pharos_bgp_bfd_up"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := testutil.CollectAndCompare(b.Collector(), strings.NewReader(established), names...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := b.Addresses(); got != 2 {
		t.Errorf("Addresses() = %d, want 2", got)
	}

	// The state series: exactly one 1 per peer, established for the router.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(b.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	ones := map[string][]string{}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() != "pharos_bgp_session_state" {
			continue
		}
		for _, m := range mf.GetMetric() {
			series++
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if m.GetGauge().GetValue() == 1 {
				ones[l["peer"]] = append(ones[l["peer"]], l["state"])
			}
		}
	}
	if series != 12 || len(ones["router"]) != 1 || ones["router"][0] != "established" ||
		len(ones["silent"]) != 1 || ones["silent"][0] == "established" {
		t.Errorf("pharos_bgp_session_state: %d series, states at 1 %v; want 6 per peer, router established, silent in one other state", series, ones)
	}

	// The silent peer removed: its series go.
	b.Apply(speaker.Compute(bgpSnapshot(bgpPeer("router", router, ""))))
	gone := `
# HELP pharos_bgp_session_up 1 if this node's BGP session with the BGPPeer (named by peer) is Established, else 0.
# TYPE pharos_bgp_session_up gauge
pharos_bgp_session_up{peer="router"} 1
`
	if err := testutil.CollectAndCompare(b.Collector(), strings.NewReader(gone), "pharos_bgp_session_up", "pharos_bgp_bfd_up"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(b.Collector(), "pharos_bgp_session_state"); n != 6 {
		t.Errorf("%d pharos_bgp_session_state series after the silent peer went, want the router's 6", n)
	}
}
