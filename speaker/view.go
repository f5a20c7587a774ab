package main

import (
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/controller/allocation"
	"github.com/pharos-lb/pharos/internal/config"
	"github.com/pharos-lb/pharos/internal/election"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// Labels and annotations the speaker reads.
const (
	labelExcludeLB = "node.kubernetes.io/exclude-from-external-load-balancers"
	// AnnotationReturnToPreferred asks that an address move back to its
	// preferred node when that node returns, at the cost of a second move.
	AnnotationReturnToPreferred = "pharos.io/l2-return-to-preferred-node"
)

// ipView is everything about one load-balancer address.
type ipView struct {
	ip       netip.Addr
	pool     *config.Pool
	services []*corev1.Service
	advs     []*config.L2Advertisement
}

// view is the cluster as the speaker sees it, rebuilt on every change.
type view struct {
	ips       map[netip.Addr]*ipView
	nodes     map[string]*corev1.Node
	endpoints map[string]map[string]election.Endpoints // service key -> node -> counts
}

// buildView groups the Services that Pharos assigned by address and
// attaches their pool and the valid L2Advertisements that select it.
func buildView(svcs []corev1.Service, slices []discoveryv1.EndpointSlice, nodes []corev1.Node, pools []v1beta1.IPAddressPool, advs []v1beta1.L2Advertisement) *view {
	v := &view{ips: map[netip.Addr]*ipView{}, nodes: map[string]*corev1.Node{}, endpoints: map[string]map[string]election.Endpoints{}}
	cfg := config.Build(pools, nil).Config
	var parsed []*config.L2Advertisement
	for i := range advs {
		if a, _, errs := config.ParseL2Advertisement(&advs[i], cfg); len(errs) == 0 {
			parsed = append(parsed, a)
		}
	}
	for i := range nodes {
		v.nodes[nodes[i].Name] = &nodes[i]
	}
	for i := range svcs {
		s := &svcs[i]
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer || s.Annotations[allocation.AnnotationAllocatedFromPool] == "" {
			continue
		}
		for _, ing := range s.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(ing.IP)
			if err != nil {
				continue
			}
			iv := v.ips[ip]
			if iv == nil {
				iv = &ipView{ip: ip}
				for _, p := range cfg.Pools {
					if p.Contains(ip) {
						iv.pool = p
					}
				}
				if iv.pool != nil {
					for _, a := range parsed {
						if a.SelectsPool(iv.pool) {
							iv.advs = append(iv.advs, a)
						}
					}
				}
				v.ips[ip] = iv
			}
			iv.services = append(iv.services, s)
		}
	}
	for i := range slices {
		es := &slices[i]
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		key := es.Namespace + "/" + svc
		byNode := v.endpoints[key]
		if byNode == nil {
			byNode = map[string]election.Endpoints{}
			v.endpoints[key] = byNode
		}
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
	return v
}

// sortedIPs returns the view's addresses in order, for stable processing.
func (v *view) sortedIPs() []netip.Addr {
	out := make([]netip.Addr, 0, len(v.ips))
	for ip := range v.ips {
		out = append(out, ip)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// electionInput describes one address for the election.
func (v *view) electionInput(iv *ipView, members map[string]speakerlist.Meta) election.Input {
	in := election.Input{IP: iv.ip}
	for name, node := range v.nodes {
		meta, alive := members[name]
		n := election.Node{
			Name:     name,
			Alive:    alive && !meta.Draining,
			Ready:    nodeReady(node) && !node.Spec.Unschedulable,
			Excluded: hasLabel(node, labelExcludeLB),
		}
		var wanted []string
		for _, a := range iv.advs {
			if a.SelectsNode(node.Labels) {
				n.Selected = true
				wanted = append(wanted, a.Interfaces...)
			}
		}
		n.Interfaces = announcingInterfaces(iv.ip, wanted, meta)
		in.Nodes = append(in.Nodes, n)
	}
	for _, s := range iv.services {
		key := s.Namespace + "/" + s.Name
		in.Services = append(in.Services, election.Service{
			Key:         key,
			LocalPolicy: s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			Endpoints:   v.endpoints[key],
		})
		if s.Annotations[AnnotationReturnToPreferred] == "true" {
			in.ReturnToPreferred = true
		}
	}
	return in
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
	var out []election.Interface
	if len(wanted) > 0 {
		seen := map[string]bool{}
		for _, name := range wanted {
			if !seen[name] {
				seen[name] = true
				out = append(out, election.Interface{Name: name, Up: up[name]})
			}
		}
		return out
	}
	seen := map[string]bool{}
	for _, name := range onLink {
		if !seen[name] {
			seen[name] = true
			out = append(out, election.Interface{Name: name, Up: true})
		}
	}
	return out
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func hasLabel(n *corev1.Node, key string) bool {
	_, ok := n.Labels[key]
	return ok
}
