package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/bgpannounce"
	"github.com/pharos-lb/pharos/internal/l2announce"
	"github.com/pharos-lb/pharos/internal/layer2"
	"github.com/pharos-lb/pharos/internal/speaker"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// silentInterface is an interface announcer that sends nothing.
type silentInterface struct{}

func (silentInterface) SetOwned([]netip.Addr) {}
func (silentInterface) ProbeAll(context.Context, []netip.Addr, time.Duration) (map[netip.Addr][]net.HardwareAddr, error) {
	return nil, nil
}
func (silentInterface) Stats() layer2.Stats { return layer2.Stats{} }
func (silentInterface) Close() error        { return nil }

// announcedState is node n1's desired state: each address one Service's,
// announced by layer 2 (on eth0 for 198.18.9.0/24, eth1 for
// 198.18.10.0/24) and by BGP to a peer, when withBGP.
func announcedState(withBGP bool, ips ...string) *speaker.State {
	node := "n1"
	snap := speaker.Snapshot{
		Nodes: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: node},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}},
		Pools:            []v1beta1.IPAddressPool{{ObjectMeta: metav1.ObjectMeta{Name: "web"}}},
		L2Advertisements: []v1beta1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Name: "all"}}},
		Members:          map[string]speakerlist.Meta{node: {InterfacesUp: []string{"eth0=198.18.9.0/24", "eth1=198.18.10.0/24"}}},
	}
	if withBGP {
		snap.BGPAdvertisements = []v1beta1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "all"}}}
		// Nothing listens there: the routes are the node's all the same.
		snap.BGPPeers = []v1beta1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "router"}, Spec: v1beta1.BGPPeerSpec{
			MyASN: 64512, PeerASN: 64513, PeerAddress: "127.0.0.2", PeerPort: 1}}}
	}
	for i, ip := range ips {
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
	return speaker.Compute(snap)
}

// TestAnnouncedAddresses: the gauge counts what the announcers announce
// after each change, per protocol and layer-2 interface, and an interface
// that carries nothing any more has no series.
func TestAnnouncedAddresses(t *testing.T) {
	l2 := l2announce.New(l2announce.Options{Node: "n1",
		LookupLink: func(string) (l2announce.Link, error) { return l2announce.Link{Index: 1}, nil },
		Open:       func(context.Context, layer2.Options) (l2announce.Interface, error) { return silentInterface{}, nil }})
	defer l2.Close()
	bgp := bgpannounce.New(bgpannounce.Options{Node: "n1", Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.1")}})
	defer bgp.Close()
	s := &Speaker{node: "n1", l2: l2, bgp: bgp}

	const head = `
# HELP pharos_speaker_announced_addresses Addresses this node announces now, by protocol: layer2 (per interface, the addresses it answers ARP and NDP for) and bgp (interface empty, the addresses its BGP routes carry, to every peer the advertisements name).
# TYPE pharos_speaker_announced_addresses gauge
`
	for _, step := range []struct {
		name string
		st   *speaker.State
		want string
	}{
		{"nothing yet", &speaker.State{}, `pharos_speaker_announced_addresses{interface="",node="n1",protocol="bgp"} 0
`},
		{"three addresses by layer 2 on two interfaces, and by BGP", announcedState(true, "198.18.9.10", "198.18.9.11", "198.18.10.5"), `pharos_speaker_announced_addresses{interface="",node="n1",protocol="bgp"} 3
pharos_speaker_announced_addresses{interface="eth0",node="n1",protocol="layer2"} 2
pharos_speaker_announced_addresses{interface="eth1",node="n1",protocol="layer2"} 1
`},
		{"eth1's address gone, BGP stopped", announcedState(false, "198.18.9.10", "198.18.9.11"), `pharos_speaker_announced_addresses{interface="",node="n1",protocol="bgp"} 0
pharos_speaker_announced_addresses{interface="eth0",node="n1",protocol="layer2"} 2
`},
	} {
		for _, a := range []speaker.Announcer{l2, bgp} {
			a.Apply(step.st)
		}
		if err := testutil.CollectAndCompare(s.announcedAddresses(), strings.NewReader(head+step.want)); err != nil {
			t.Errorf("%s: %v", step.name, err)
		}
	}
}
