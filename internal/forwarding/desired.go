// Package forwarding is the speaker's node-local forwarding path: for the
// Services whose forwarding mode is direct (v1beta1.ForwardingOf), the
// node that receives an address (the layer-2 winner, or a node that
// advertises it by BGP) DNATs it straight to the Service's ready
// endpoints, through an nftables table of its own (internal/dataplane).
//
// Desired, in this file, is pure: from the speaker's desired state it
// computes the table's contents for one node. Forwarding (forwarding.go)
// is the announcer that writes them and keeps them written.
package forwarding

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/dataplane"
	"github.com/pharos-lb/pharos/internal/speaker"
)

// Input is what Desired needs besides the state.
type Input struct {
	// Node is this node's name.
	Node string
	// Default is the cluster's forwarding mode (the --forwarding flag).
	Default string
	// NodeAddrs are this node's InternalIPs: nodeport forwarding hands an
	// address to kube-proxy's NodePort on the one of its family.
	NodeAddrs []netip.Addr
	// Dead says whether a node is known to be down: its speaker was a
	// member of the cluster and no longer is. Its endpoints leave the path
	// at once, rather than when Kubernetes marks them unready (about 50 s
	// after a crash). Nil: none is.
	Dead func(node string) bool
}

// Problem is a Service that this node cannot forward as asked, and why.
type Problem struct {
	Service string
	Message string
}

// Carries reports whether node receives the address's traffic: it wins the
// layer-2 election, or advertises the address by BGP.
func Carries(a *speaker.Address, node string) bool {
	return (node != "" && a.L2Node() == node) || slices.Contains(a.BGP.Nodes, node)
}

// Desired returns the table's contents for in.Node: a frontend for every
// port of every direct-mode Service on an address the node carries, with
// the ready endpoints of the address's family as backends (only the local
// ones for externalTrafficPolicy Local, which keeps the client's address),
// and the Services it cannot forward.
func Desired(st *speaker.State, in Input) (dataplane.Config, []Problem) {
	var cfg dataplane.Config
	var problems []Problem
	taken := map[string]string{} // vip/proto/port -> Service
	for _, a := range st.Addresses {
		if !Carries(a, in.Node) {
			continue
		}
		for _, svc := range a.Services {
			key := svc.Namespace + "/" + svc.Name
			mode, _ := v1beta1.ForwardingOf(svc.Annotations, in.Default)
			if mode != v1beta1.ForwardingDirect && mode != v1beta1.ForwardingNodePort {
				continue
			}
			var nodeAddr netip.Addr
			if mode == v1beta1.ForwardingNodePort {
				for _, n := range in.NodeAddrs {
					if n.Is4() == a.IP.Is4() {
						nodeAddr = n
						break
					}
				}
				if !nodeAddr.IsValid() {
					problems = append(problems, Problem{key, fmt.Sprintf("node %s has no InternalIP of the family of %s for kube-proxy's NodePort; use direct forwarding", in.Node, a.IP)})
					continue
				}
			}
			ranges, bad := sourceRanges(svc)
			if bad != "" {
				problems = append(problems, Problem{key, bad})
			}
			// The ranges of the address's family. Ranges of the other
			// family only (or only invalid ones) allow nobody here, so
			// the frontend has no backend and refuses every connection.
			restricted := len(ranges) > 0 || bad != ""
			ranges = slices.DeleteFunc(slices.Clone(ranges), func(p netip.Prefix) bool { return p.Addr().Is4() != a.IP.Is4() })
			refuseAll := restricted && len(ranges) == 0
			local := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
			for _, p := range svc.Spec.Ports {
				proto, ok := protocols[p.Protocol]
				if !ok {
					problems = append(problems, Problem{key, fmt.Sprintf("port %d: protocol %q cannot be forwarded (TCP, UDP and SCTP can)", p.Port, p.Protocol)})
					continue
				}
				id := fmt.Sprintf("%s/%s/%d", a.IP, proto, p.Port)
				if other, dup := taken[id]; dup {
					problems = append(problems, Problem{key, fmt.Sprintf("%s port %d on %s is already forwarded for %s", p.Protocol, p.Port, a.IP, other)})
					continue
				}
				taken[id] = key
				if mode == v1beta1.ForwardingNodePort {
					switch {
					case p.NodePort == 0:
						problems = append(problems, Problem{key, fmt.Sprintf("port %d has no NodePort (allocateLoadBalancerNodePorts: false?), which nodeport forwarding hands it to; allocate one or use direct forwarding", p.Port)})
					case proto == dataplane.SCTP:
						problems = append(problems, Problem{key, fmt.Sprintf("SCTP port %d cannot be handed to a NodePort; use direct forwarding", p.Port)})
					default:
						fe := dataplane.Frontend{Service: key, VIP: a.IP, Protocol: proto, Port: uint16(p.Port),
							SourceRanges: ranges, NodePort: uint16(p.NodePort), NodeAddr: nodeAddr}
						if refuseAll {
							// Nobody may come in: no hand-over, and
							// the source filter drops every packet.
							fe.SourceRanges = []netip.Prefix{netip.PrefixFrom(a.IP, a.IP.BitLen())}
						}
						cfg.Frontends = append(cfg.Frontends, fe)
					}
					continue
				}
				cfg.Frontends = append(cfg.Frontends, dataplane.Frontend{
					Service: key, VIP: a.IP, Protocol: proto, Port: uint16(p.Port),
					SourceRanges: ranges, PreserveClient: local,
				})
				if !refuseAll {
					cfg.Frontends[len(cfg.Frontends)-1].Backends = backends(st.EndpointSlices(svc), a.IP, p, in, local)
				}
			}
		}
	}
	// A Service's problem is worded once, not once per address.
	slices.SortStableFunc(problems, func(x, y Problem) int { return strings.Compare(x.Service+x.Message, y.Service+y.Message) })
	return cfg, slices.Compact(problems)
}

var protocols = map[corev1.Protocol]dataplane.Protocol{
	corev1.ProtocolTCP: dataplane.TCP, corev1.ProtocolUDP: dataplane.UDP, corev1.ProtocolSCTP: dataplane.SCTP,
	"": dataplane.TCP, // the API's default
}

// annotationSourceRanges is the older way to set loadBalancerSourceRanges,
// which kube-proxy also honours when the field is empty.
const annotationSourceRanges = "service.beta.kubernetes.io/load-balancer-source-ranges"

// sourceRanges returns the Service's allowed sources, and words the
// entries that are not CIDRs (the apiserver validates the field, not the
// annotation). Only an entry that parses is enforced; if none does, the
// caller forwards the Service to nobody rather than to everybody.
func sourceRanges(svc *corev1.Service) ([]netip.Prefix, string) {
	raw := svc.Spec.LoadBalancerSourceRanges
	if len(raw) == 0 {
		if v := svc.Annotations[annotationSourceRanges]; v != "" {
			raw = strings.Split(v, ",")
		}
	}
	var out []netip.Prefix
	var bad []string
	for _, r := range raw {
		p, err := netip.ParsePrefix(strings.TrimSpace(r))
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q", r))
			continue
		}
		out = append(out, p.Masked())
	}
	if len(bad) == 0 {
		return out, ""
	}
	return out, fmt.Sprintf("source ranges %s are not CIDRs (as 198.18.0.0/16) and allow nobody", strings.Join(bad, ", "))
}

// backends returns the endpoints for one Service port on vip: ready ones
// of vip's family, or if none is ready the serving terminating ones (as
// kube-proxy does), never one on a dead node; only local ones with Local
// policy.
func backends(slices []*discoveryv1.EndpointSlice, vip netip.Addr, sp corev1.ServicePort, in Input, localOnly bool) []dataplane.Backend {
	family := discoveryv1.AddressTypeIPv4
	if vip.Is6() {
		family = discoveryv1.AddressTypeIPv6
	}
	var ready, terminating []dataplane.Backend
	for _, es := range slices {
		if es.AddressType != family {
			continue
		}
		port, ok := slicePort(es, sp)
		if !ok {
			continue
		}
		for _, ep := range es.Endpoints {
			node := ""
			if ep.NodeName != nil {
				node = *ep.NodeName
			}
			isLocal := node == in.Node
			if (localOnly && !isLocal) || (node != "" && in.Dead != nil && in.Dead(node)) || len(ep.Addresses) == 0 {
				continue
			}
			addr, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				continue
			}
			b := dataplane.Backend{Addr: addr, Port: port, Local: isLocal}
			c := ep.Conditions
			switch {
			case c.Ready == nil || *c.Ready:
				ready = append(ready, b)
			case c.Serving != nil && *c.Serving && c.Terminating != nil && *c.Terminating:
				terminating = append(terminating, b)
			}
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return terminating
}

// slicePort finds the EndpointSlice's port for a Service port: the one of
// the same name and protocol.
func slicePort(es *discoveryv1.EndpointSlice, sp corev1.ServicePort) (uint16, bool) {
	proto := sp.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, p := range es.Ports {
		name, pp := "", corev1.ProtocolTCP
		if p.Name != nil {
			name = *p.Name
		}
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if name == sp.Name && pp == proto && p.Port != nil && *p.Port > 0 && *p.Port < 65536 {
			return uint16(*p.Port), true
		}
	}
	return 0, false
}
