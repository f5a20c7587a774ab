package inspect

import (
	"fmt"
	"slices"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// DrainReport is `kubectl pharos simulate-drain NODE`: what a drain of the
// node would do to the addresses.
type DrainReport struct {
	Node  string `json:"node"`
	Moves []Move `json:"moves"`
}

// Move is one address the drain affects.
type Move struct {
	Address  string   `json:"address"`
	Services []string `json:"services"`
	// Protocol is layer2 or bgp.
	Protocol string `json:"protocol"`
	// From is the node announcing it now (layer 2), or the nodes
	// advertising it now (BGP).
	From []string `json:"from"`
	// To is where it goes: the new layer-2 owner, or the BGP nodes left.
	// Empty means nobody announces it after the drain: an outage.
	To []string `json:"to"`
}

// Drain computes what cordoning and draining node would move. A drain
// cordons the node (the speakers hand its addresses over as soon as it is
// unschedulable) and evicts its pods, so its endpoints are gone too: a
// Local Service served only from that node loses its address.
func Drain(c *Cluster, node string) (DrainReport, error) {
	if c.node(node) == nil {
		return DrainReport{}, fmt.Errorf("node %s not found", node)
	}
	before := c.state()
	after := *c
	after.Nodes = slices.Clone(c.Nodes)
	for i := range after.Nodes {
		if after.Nodes[i].Name == node {
			n := after.Nodes[i].DeepCopy()
			n.Spec.Unschedulable = true
			after.Nodes[i] = *n
		}
	}
	after.EndpointSlices = make([]discoveryv1.EndpointSlice, 0, len(c.EndpointSlices))
	for i := range c.EndpointSlices {
		es := c.EndpointSlices[i].DeepCopy()
		es.Endpoints = slices.DeleteFunc(es.Endpoints, func(ep discoveryv1.Endpoint) bool { return ep.NodeName != nil && *ep.NodeName == node })
		after.EndpointSlices = append(after.EndpointSlices, *es)
	}
	// The layer-2 owners stay where the conditions say until the drain:
	// claims carry over, and a claim by the drained node no longer counts.
	st := after.state()
	r := DrainReport{Node: node}
	owners := map[string]Owner{}
	for i := range c.Services {
		for ip, o := range L2Owners(&c.Services[i]) {
			owners[ip.String()] = o
		}
	}
	for _, a := range before.Addresses {
		b := st.Lookup(a.IP)
		var svcs []string
		for _, s := range a.Services {
			svcs = append(svcs, s.Namespace+"/"+s.Name)
		}
		from := a.L2Node()
		if o, ok := owners[a.IP.String()]; ok {
			from = o.Node
		}
		if from == node {
			m := Move{Address: a.IP.String(), Services: svcs, Protocol: "layer2", From: []string{from}}
			if to := b.L2Node(); to != "" {
				m.To = []string{to}
			}
			r.Moves = append(r.Moves, m)
		}
		if slices.Contains(a.BGP.Nodes, node) {
			r.Moves = append(r.Moves, Move{Address: a.IP.String(), Services: svcs, Protocol: "bgp", From: a.BGP.Nodes, To: b.BGP.Nodes})
		}
	}
	return r, nil
}

// String renders the report as a table.
func (r DrainReport) String() string {
	var b strings.Builder
	if len(r.Moves) == 0 {
		fmt.Fprintf(&b, "draining %s moves no address: it announces none\n", r.Node)
		return b.String()
	}
	fmt.Fprintf(&b, "ADDRESS\tSERVICES\tPROTOCOL\tFROM\tTO\n")
	for _, m := range r.Moves {
		to := strings.Join(m.To, ",")
		if to == "" {
			to = "NOBODY (outage: no other node can announce it)"
		}
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\n", m.Address, strings.Join(m.Services, ","), m.Protocol, strings.Join(m.From, ","), to)
	}
	return b.String()
}
