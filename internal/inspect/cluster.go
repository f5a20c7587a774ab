// Package inspect answers an operator's questions about a cluster's load
// balancing from the objects the apiserver holds: which pools fill up and
// who announces what (Status), why a Service is pending or how it is served
// (Explain), and which addresses a node's drain would move (Drain). It is
// the pure core of `kubectl pharos`: no client, no I/O, so every reason it
// gives is a table test.
//
// It computes the speakers' state with internal/speaker's Compute, the
// function the speakers themselves run, from the same objects. Two things
// only the speakers know: which nodes run a live speaker, and which
// interfaces are up. Cluster.SpeakerNodes gives the first when speaker
// pods are visible; the second is taken from the speakers' own report, the
// Service's Announced condition.
package inspect

import (
	"net/netip"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/speaker"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// Cluster is what the apiserver holds, as listed by the plugin.
type Cluster struct {
	Services          []corev1.Service
	EndpointSlices    []discoveryv1.EndpointSlice
	Nodes             []corev1.Node
	Namespaces        []corev1.Namespace
	Pools             []v1beta1.IPAddressPool
	L2Advertisements  []v1beta1.L2Advertisement
	BGPPeers          []v1beta1.BGPPeer
	BGPAdvertisements []v1beta1.BGPAdvertisement
	Communities       []v1beta1.Community
	BFDProfiles       []v1beta1.BFDProfile
	BGPNodeStatuses   []v1beta1.BGPNodeStatus
	// SpeakerNodes are the nodes with a Ready speaker pod. nil means
	// unknown (no speaker pods found: the speakers run outside pods, or
	// elsewhere): every node is then taken to run a live speaker.
	SpeakerNodes map[string]bool
	// LoadBalancerClass is the class the controller handles (its
	// --lb-class); "" handles Services without one.
	LoadBalancerClass string
}

// anyInterface stands for "an interface that holds the address": the
// speakers report their interfaces over memberlist only, so the plugin
// lets every node have one, and names the real one from the Announced
// condition.
const anyInterface = "(an interface)"

// snapshot builds the speakers' snapshot from the cluster. Claims (who
// holds an address now) come from the Announced conditions, so that an
// owner kept after a failover is kept here too.
func (c *Cluster) snapshot() speaker.Snapshot {
	snap := speaker.Snapshot{
		Nodes:             c.Nodes,
		Pools:             c.Pools,
		L2Advertisements:  c.L2Advertisements,
		BGPPeers:          c.BGPPeers,
		BGPAdvertisements: c.BGPAdvertisements,
		Communities:       c.Communities,
		BFDProfiles:       c.BFDProfiles,
		Members:           map[string]speakerlist.Meta{},
		Claims:            map[netip.Addr][]speakerlist.Claim{},
	}
	for i := range c.Services {
		snap.Services = append(snap.Services, &c.Services[i])
	}
	for i := range c.EndpointSlices {
		snap.EndpointSlices = append(snap.EndpointSlices, &c.EndpointSlices[i])
	}
	up := []string{anyInterface + "=0.0.0.0/0", anyInterface + "=::/0"}
	for i := range c.L2Advertisements {
		for _, name := range c.L2Advertisements[i].Spec.Interfaces {
			up = append(up, name+"=")
		}
	}
	for i := range c.Nodes {
		if c.SpeakerNodes == nil || c.SpeakerNodes[c.Nodes[i].Name] {
			snap.Members[c.Nodes[i].Name] = speakerlist.Meta{InterfacesUp: up}
		}
	}
	for i := range c.Services {
		for ip, owner := range L2Owners(&c.Services[i]) {
			snap.Claims[ip] = []speakerlist.Claim{{Node: owner.Node, Epoch: 1}}
		}
	}
	return snap
}

// state computes the speakers' state.
func (c *Cluster) state() *speaker.State { return speaker.Compute(c.snapshot()) }

// Owner is the node announcing an address by layer 2, and its interfaces,
// as the Announced condition reports it.
type Owner struct {
	Node       string
	Interfaces string
}

// l2Announced matches the layer-2 part of the Announced condition, as
// internal/l2announce words it: "IP from node N on IFACES (ARP|NDP)".
var l2Announced = regexp.MustCompile(`(?:^|; )(\S+) from node (\S+) on (\S*) \((?:ARP|NDP)\)`)

// L2Owners reads the layer-2 owners of the Service's addresses from its
// Announced condition.
func L2Owners(svc *corev1.Service) map[netip.Addr]Owner {
	cond := meta.FindStatusCondition(svc.Status.Conditions, v1beta1.ConditionAnnounced)
	if cond == nil {
		return nil
	}
	out := map[netip.Addr]Owner{}
	for _, m := range l2Announced.FindAllStringSubmatch(cond.Message, -1) {
		if ip, err := netip.ParseAddr(m[1]); err == nil {
			out[ip] = Owner{Node: m[2], Interfaces: m[3]}
		}
	}
	return out
}

// handled reports whether the controller handles the Service.
func (c *Cluster) handled(svc *corev1.Service) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if c.LoadBalancerClass == "" {
		return svc.Spec.LoadBalancerClass == nil
	}
	return svc.Spec.LoadBalancerClass != nil && *svc.Spec.LoadBalancerClass == c.LoadBalancerClass
}

// service returns the Service namespace/name, or nil.
func (c *Cluster) service(namespace, name string) *corev1.Service {
	for i := range c.Services {
		if c.Services[i].Namespace == namespace && c.Services[i].Name == name {
			return &c.Services[i]
		}
	}
	return nil
}

// node returns the node called name, or nil.
func (c *Cluster) node(name string) *corev1.Node {
	for i := range c.Nodes {
		if c.Nodes[i].Name == name {
			return &c.Nodes[i]
		}
	}
	return nil
}

// condition returns the Service's condition of type t, or nil.
func condition(svc *corev1.Service, t string) *metav1.Condition {
	return meta.FindStatusCondition(svc.Status.Conditions, t)
}

// addresses returns the Service's load-balancer addresses.
func addresses(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(ing.IP); err == nil {
			out = append(out, ip)
		}
	}
	return out
}

// interfaceName is the interface to show for a winner's interfaces: the
// condition's when the winner is the owner it names.
func interfaceName(ifaces []string, owner Owner, winner string) string {
	if owner.Node == winner && owner.Interfaces != "" {
		return owner.Interfaces
	}
	var real []string
	for _, i := range ifaces {
		if i != anyInterface {
			real = append(real, i)
		}
	}
	return strings.Join(real, ",")
}
