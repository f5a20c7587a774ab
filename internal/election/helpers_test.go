package election

import (
	"net/netip"
	"slices"
)

// Test addresses come from 198.18.0.0/15 and 2001:db8::/32 only.
var ip4 = netip.MustParseAddr("198.18.0.10")

// opt changes a healthy node.
type opt func(*Node)

// node returns a node that passes every node rule, announcing on eth0,
// changed by opts.
func node(name string, opts ...opt) Node {
	n := Node{Name: name, Alive: true, Selected: true, Ready: true, Interfaces: []Interface{{"eth0", true}}}
	for _, o := range opts {
		o(&n)
	}
	return n
}

var (
	dead       opt = func(n *Node) { n.Alive = false }
	unselected opt = func(n *Node) { n.Selected = false }
	notReady   opt = func(n *Node) { n.Ready = false }
	excluded   opt = func(n *Node) { n.Excluded = true }
)

// ifaces replaces the node's announcing interfaces.
func ifaces(list ...Interface) opt {
	return func(n *Node) { n.Interfaces = list }
}

func up(name string) Interface   { return Interface{Name: name, Up: true} }
func down(name string) Interface { return Interface{Name: name, Up: false} }

// healthy returns healthy nodes with these names.
func healthy(names ...string) []Node {
	out := make([]Node, len(names))
	for i, n := range names {
		out[i] = node(n)
	}
	return out
}

// eps is a compact endpoint description: node name to counts.
type eps = map[string]Endpoints

// ready gives one ready endpoint on each node.
func ready(nodes ...string) eps {
	m := eps{}
	for _, n := range nodes {
		m[n] = Endpoints{Ready: 1}
	}
	return m
}

func cluster(key string, e eps) Service { return Service{Key: key, Endpoints: e} }
func local(key string, e eps) Service   { return Service{Key: key, LocalPolicy: true, Endpoints: e} }

// web is a Cluster Service with a ready endpoint somewhere.
var web = cluster("default/web", ready("plab-n1"))

// three is the usual lab.
var three = []string{"plab-n1", "plab-n2", "plab-n3"}

// addr4 returns 198.18.0.0 + i, inside 198.18.0.0/15 for i < 131072.
func addr4(i int) netip.Addr {
	if i < 0 || i >= 1<<17 {
		panic("outside 198.18.0.0/15")
	}
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
}

// addr6 returns 2001:db8::1:0 + i.
func addr6(i int) netip.Addr {
	b := netip.MustParseAddr("2001:db8::1:0").As16()
	b[13], b[14], b[15] = byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom16(b)
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// faultsOf maps excluded nodes to their faults.
func faultsOf(r Result) map[string]Fault {
	m := map[string]Fault{}
	for _, e := range r.Excluded {
		m[e.Node] = e.Faults
	}
	return m
}
