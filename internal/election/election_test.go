package election

import (
	"fmt"
	"maps"

	"reflect"
	"slices"

	"testing"
)

// TestCandidateRules checks every candidate rule on its own: in each case
// only the named nodes fail, with exactly the named faults.
func TestCandidateRules(t *testing.T) {
	tests := []struct {
		name       string
		nodes      []Node
		services   []Service
		candidates []string
		excluded   map[string]Fault
		interfaces []string // the winner's up interfaces, when it matters
	}{
		{
			name:       "healthy nodes are all candidates",
			nodes:      healthy(three...),
			services:   []Service{web},
			candidates: three,
			excluded:   map[string]Fault{},
		},
		{
			name:       "a node that is not alive in memberlist is not a candidate",
			nodes:      []Node{node("plab-n1", dead), node("plab-n2"), node("plab-n3")},
			services:   []Service{web},
			candidates: []string{"plab-n2", "plab-n3"},
			excluded:   map[string]Fault{"plab-n1": FaultNotAlive},
		},
		{
			name:       "a node no L2Advertisement selects is not a candidate",
			nodes:      []Node{node("plab-n1"), node("plab-n2", unselected), node("plab-n3")},
			services:   []Service{web},
			candidates: []string{"plab-n1", "plab-n3"},
			excluded:   map[string]Fault{"plab-n2": FaultNotSelected},
		},
		{
			name:       "a node that is not Ready is not a candidate",
			nodes:      []Node{node("plab-n1"), node("plab-n2"), node("plab-n3", notReady)},
			services:   []Service{web},
			candidates: []string{"plab-n1", "plab-n2"},
			excluded:   map[string]Fault{"plab-n3": FaultNotReady},
		},
		{
			name:       "a node labelled exclude-from-external-load-balancers is not a candidate",
			nodes:      []Node{node("plab-n1", excluded), node("plab-n2"), node("plab-n3")},
			services:   []Service{web},
			candidates: []string{"plab-n2", "plab-n3"},
			excluded:   map[string]Fault{"plab-n1": FaultExcluded},
		},
		{
			name:       "a node whose announcing interface is down is not a candidate",
			nodes:      []Node{node("plab-n1", ifaces(down("eth1"))), node("plab-n2"), node("plab-n3")},
			services:   []Service{web},
			candidates: []string{"plab-n2", "plab-n3"},
			excluded:   map[string]Fault{"plab-n1": FaultInterfaceDown},
		},
		{
			name:       "a node with no announcing interface is not a candidate",
			nodes:      []Node{node("plab-n1"), node("plab-n2", ifaces()), node("plab-n3")},
			services:   []Service{web},
			candidates: []string{"plab-n1", "plab-n3"},
			excluded:   map[string]Fault{"plab-n2": FaultInterfaceDown},
		},
		{
			name:       "one announcing interface up is enough, and the result names the up ones",
			nodes:      []Node{node("plab-n1", ifaces(down("eth1"), up("eth2"), up("bond0")))},
			services:   []Service{web},
			candidates: []string{"plab-n1"},
			excluded:   map[string]Fault{},
			interfaces: []string{"bond0", "eth2"},
		},
		{
			name:       "Local: only nodes holding a ready local endpoint are candidates",
			nodes:      healthy(three...),
			services:   []Service{local("default/web", ready("plab-n1", "plab-n3"))},
			candidates: []string{"plab-n1", "plab-n3"},
			excluded:   map[string]Fault{"plab-n2": FaultNoLocalEndpoint},
		},
		{
			name:       "Local: a zero count is no endpoint",
			nodes:      healthy(three...),
			services:   []Service{local("default/web", eps{"plab-n1": {Ready: 1}, "plab-n2": {}})},
			candidates: []string{"plab-n1"},
			excluded:   map[string]Fault{"plab-n2": FaultNoLocalEndpoint, "plab-n3": FaultNoLocalEndpoint},
		},
		{
			name:       "Cluster: where the endpoints run does not matter",
			nodes:      healthy(three...),
			services:   []Service{cluster("default/web", eps{"": {Ready: 1}})},
			candidates: three,
			excluded:   map[string]Fault{},
		},
		{
			name:       "a terminating but serving endpoint is serving: the address is announced",
			nodes:      healthy(three...),
			services:   []Service{cluster("default/web", eps{"plab-n2": {Terminating: 1}})},
			candidates: three,
			excluded:   map[string]Fault{},
		},
		{
			name:  "Local: a terminating endpoint does not count while a candidate node holds a ready one",
			nodes: healthy(three...),
			services: []Service{local("default/web", eps{
				"plab-n1": {Terminating: 1},
				"plab-n2": {Ready: 1},
			})},
			candidates: []string{"plab-n2"},
			excluded:   map[string]Fault{"plab-n1": FaultNoLocalEndpoint, "plab-n3": FaultNoLocalEndpoint},
		},
		{
			name:  "Local: terminating but serving endpoints count when no candidate node holds a ready one",
			nodes: []Node{node("plab-n1"), node("plab-n2", notReady), node("plab-n3")},
			services: []Service{local("default/web", eps{
				"plab-n1": {Terminating: 2},
				"plab-n2": {Ready: 1}, // on a node that is not Ready
			})},
			candidates: []string{"plab-n1"},
			excluded:   map[string]Fault{"plab-n2": FaultNotReady, "plab-n3": FaultNoLocalEndpoint},
		},
		{
			name:       "a node failing several rules lists them all",
			nodes:      []Node{node("plab-n1", dead, notReady, excluded, ifaces(down("eth0"))), node("plab-n2")},
			services:   []Service{local("default/web", ready("plab-n2"))},
			candidates: []string{"plab-n2"},
			excluded: map[string]Fault{
				"plab-n1": FaultNotAlive | FaultNotReady | FaultExcluded | FaultInterfaceDown | FaultNoLocalEndpoint,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Elect(Input{IP: ip4, Nodes: tc.nodes, Services: tc.services})
			if got := sorted(r.Candidates); !slices.Equal(got, sorted(tc.candidates)) {
				t.Errorf("candidates = %v, want %v", got, sorted(tc.candidates))
			}
			if got := faultsOf(r); !maps.Equal(got, tc.excluded) {
				t.Errorf("excluded = %v, want %v", got, tc.excluded)
			}
			if r.Reason != Elected || r.Winner != r.Candidates[0] {
				t.Errorf("winner %q (%s), want %q: %s", r.Winner, r.Reason, r.Candidates[0], r.Message)
			}
			if tc.interfaces != nil && !slices.Equal(r.Interfaces, tc.interfaces) {
				t.Errorf("interfaces = %v, want %v", r.Interfaces, tc.interfaces)
			}
		})
	}
}

// TestStickiness: the current owner keeps the address while it is a
// candidate, even when another node ranks first; it loses it as soon as it
// stops being one, whatever the rule.
func TestStickiness(t *testing.T) {
	order := Order(ip4, three)
	first, owner := order[0], order[2] // the owner ranks last
	with := func(o opt) []Node {
		nodes := healthy(three...)
		for i := range nodes {
			if nodes[i].Name == owner {
				o(&nodes[i])
			}
		}
		return nodes
	}
	all := ready(three...)
	notOwner := ready(order[0], order[1])
	tests := []struct {
		name     string
		nodes    []Node
		services []Service
		owner    string
		winner   string
		kept     bool
	}{
		{"a healthy owner is kept although not first in hash order", healthy(three...), []Service{web}, owner, owner, true},
		{"a Local owner with a ready endpoint is kept", healthy(three...), []Service{local("default/web", all)}, owner, owner, true},
		{"an owner that is first is simply first", healthy(three...), []Service{web}, first, first, false},
		{"no owner: first in hash order", healthy(three...), []Service{web}, "", first, false},
		{"an owner that is not a known node: first in hash order", healthy(three...), []Service{web}, "plab-n9", first, false},
		{"dropped when not alive", with(dead), []Service{web}, owner, first, false},
		{"dropped when not Ready", with(notReady), []Service{web}, owner, first, false},
		{"dropped when excluded", with(excluded), []Service{web}, owner, first, false},
		{"dropped when its interface goes down", with(ifaces(down("eth0"))), []Service{web}, owner, first, false},
		{"dropped when no longer selected", with(unselected), []Service{web}, owner, first, false},
		{"dropped when its last local endpoint goes (Local)", healthy(three...), []Service{local("default/web", notOwner)}, owner, first, false},
		{"dropped when its local endpoint starts terminating and a ready one exists elsewhere (Local)", healthy(three...),
			[]Service{local("default/web", eps{owner: {Terminating: 1}, order[1]: {Ready: 1}})}, owner, order[1], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Elect(Input{IP: ip4, Nodes: tc.nodes, Services: tc.services, CurrentOwner: tc.owner})
			if r.Winner != tc.winner || r.KeptOwner != tc.kept {
				t.Errorf("winner %q kept=%v, want %q kept=%v: %s", r.Winner, r.KeptOwner, tc.winner, tc.kept, r.Message)
			}
		})
	}
}

// TestReturnToPreferred: the flag makes the first candidate in hash order
// win even over a current owner that is still a candidate.
func TestReturnToPreferred(t *testing.T) {
	order := Order(ip4, three)
	tests := []struct {
		name   string
		nodes  []Node
		owner  string
		winner string
	}{
		{"takes the address back from a healthy owner", healthy(three...), order[2], order[0]},
		{"owner already preferred", healthy(three...), order[0], order[0]},
		{"no owner", healthy(three...), "", order[0]},
		{"the preferred node is not a candidate: the next in hash order, not the owner",
			[]Node{node(order[0], notReady), node(order[1]), node(order[2])}, order[2], order[1]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Elect(Input{IP: ip4, Nodes: tc.nodes, Services: []Service{web}, CurrentOwner: tc.owner, ReturnToPreferred: true})
			if r.Winner != tc.winner || r.KeptOwner {
				t.Errorf("winner %q kept=%v, want %q: %s", r.Winner, r.KeptOwner, tc.winner, r.Message)
			}
		})
	}
}

// TestNoWinner checks each reason for having no winner and its message.
func TestNoWinner(t *testing.T) {
	many := []Node{node("plab-n07", notReady), node("plab-n03", notReady)}
	for i := range 18 {
		many = append(many, node(fmt.Sprintf("plab-n%02d", 10+i), dead, unselected))
	}
	tests := []struct {
		name     string
		nodes    []Node
		services []Service
		reason   Reason
		message  string
	}{
		{
			name:    "no Service on the address",
			nodes:   healthy(three...),
			reason:  NoEndpoints,
			message: "no Service uses the address",
		},
		{
			name:     "no endpoint is serving, even with Cluster policy",
			nodes:    healthy(three...),
			services: []Service{cluster("default/web", nil)},
			reason:   NoEndpoints,
			message:  "no serving endpoint of Service default/web",
		},
		{
			name:  "endpoints that neither are ready nor serve do not count",
			nodes: healthy(three...),
			services: []Service{
				cluster("default/web", eps{"plab-n1": {}}),
				local("default/dns", eps{"plab-n2": {Ready: 0, Terminating: 0}}),
			},
			reason:  NoEndpoints,
			message: "no serving endpoint of Services default/dns, default/web",
		},
		{
			name:     "no nodes at all",
			services: []Service{web},
			reason:   NoMatchingAdvertisement,
			message:  "no alive node is selected by an L2Advertisement: no nodes",
		},
		{
			name:     "no alive node is selected",
			nodes:    []Node{node("plab-n1", unselected), node("plab-n2", dead), node("plab-n3", unselected)},
			services: []Service{web},
			reason:   NoMatchingAdvertisement,
			message:  "no alive node is selected by an L2Advertisement: plab-n1: not selected by an L2Advertisement; plab-n2: not alive; plab-n3: not selected by an L2Advertisement",
		},
		{
			name: "selected nodes exist but none has its interface up",
			nodes: []Node{
				node("plab-n1", ifaces(down("eth1"))),
				node("plab-n2", ifaces(down("eth1"), down("eth2"))),
				node("plab-n3", unselected), // its interface is up, but it does not count
			},
			services: []Service{web},
			reason:   InterfaceDown,
			message:  "no alive selected node has an announcing interface up: plab-n1: interface eth1 down; plab-n2: interfaces eth1, eth2 down; plab-n3: not selected by an L2Advertisement",
		},
		{
			name:     "the issue's example",
			nodes:    []Node{node("plab-n1", notReady), node("plab-n2", ifaces(down("eth1")))},
			services: []Service{web},
			reason:   NoEligibleNode,
			message:  "no eligible node: plab-n1: not Ready; plab-n2: interface eth1 down",
		},
		{
			name:     "Local with endpoints only on ineligible nodes",
			nodes:    []Node{node("plab-n1", excluded), node("plab-n2"), node("plab-n3", ifaces())},
			services: []Service{local("default/web", ready("plab-n1", "plab-n3"))},
			reason:   NoEligibleNode,
			message:  "no eligible node: plab-n1: labelled exclude-from-external-load-balancers; plab-n2: no ready local endpoint of default/web; plab-n3: no announcing interface",
		},
		{
			name:     "Local with endpoints that have no node",
			nodes:    healthy("plab-n1"),
			services: []Service{local("default/web", eps{"": {Ready: 3}})},
			reason:   NoEligibleNode,
			message:  "no eligible node: plab-n1: no ready local endpoint of default/web",
		},
		{
			name:     "many nodes: the closest to eligible are named, the rest counted",
			nodes:    many,
			services: []Service{web},
			reason:   NoEligibleNode,
			message: "no eligible node: plab-n03: not Ready; plab-n07: not Ready; " +
				"plab-n10: not alive, not selected by an L2Advertisement; plab-n11: not alive, not selected by an L2Advertisement; " +
				"plab-n12: not alive, not selected by an L2Advertisement; plab-n13: not alive, not selected by an L2Advertisement; " +
				"plab-n14: not alive, not selected by an L2Advertisement; plab-n15: not alive, not selected by an L2Advertisement; " +
				"and 12 more nodes (12 not alive, 12 not selected)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Elect(Input{IP: ip4, Nodes: tc.nodes, Services: tc.services, CurrentOwner: "plab-n1"})
			if r.Winner != "" || r.Reason != tc.reason || len(r.Candidates) != 0 {
				t.Errorf("winner %q reason %s candidates %v, want no winner, %s", r.Winner, r.Reason, r.Candidates, tc.reason)
			}
			if r.Message != tc.message {
				t.Errorf("message\n got: %s\nwant: %s", r.Message, tc.message)
			}
		})
	}
}

// TestWinnerMessage checks the explanation given with a winner.
func TestWinnerMessage(t *testing.T) {
	order := Order(ip4, three)
	tests := []struct {
		owner     string
		preferred bool
		want      string
	}{
		{"", false, order[0] + " is first in hash order of 3 candidates"},
		{order[0], false, order[0] + " is the current owner and first in hash order of 3 candidates"},
		{order[1], false, order[1] + " keeps the address as current owner (" + order[0] + " is first in hash order of 3 candidates)"},
		{order[1], true, order[0] + " is first in hash order of 3 candidates; it takes the address back from " + order[1] + " (return to preferred node)"},
		{"plab-n9", false, order[0] + " is first in hash order of 3 candidates; current owner plab-n9 is not a candidate"},
	}
	for _, tc := range tests {
		r := Elect(Input{IP: ip4, Nodes: healthy(three...), Services: []Service{web}, CurrentOwner: tc.owner, ReturnToPreferred: tc.preferred})
		if r.Message != tc.want {
			t.Errorf("owner %q preferred %v:\n got: %s\nwant: %s", tc.owner, tc.preferred, r.Message, tc.want)
		}
	}
	one := Elect(Input{IP: ip4, Nodes: healthy("plab-n1"), Services: []Service{web}, CurrentOwner: "plab-n1"})
	if want := "plab-n1 is the current owner and the only candidate"; one.Message != want {
		t.Errorf("got %q, want %q", one.Message, want)
	}
}

// TestSharedIP: Services sharing an address are elected together.
func TestSharedIP(t *testing.T) {
	tests := []struct {
		name       string
		services   []Service
		candidates []string
	}{
		{
			name:       "Cluster Services: all nodes",
			services:   []Service{cluster("default/dns-tcp", ready("plab-n1")), cluster("default/dns-udp", ready("plab-n2"))},
			candidates: three,
		},
		{
			name: "Local Services with the same selector: the nodes holding their endpoints",
			services: []Service{
				local("default/dns-tcp", ready("plab-n1", "plab-n2")),
				local("default/dns-udp", ready("plab-n1", "plab-n2")),
			},
			candidates: []string{"plab-n1", "plab-n2"},
		},
		{
			name: "Local Services whose endpoints differ in transition: nodes serving both",
			services: []Service{
				local("default/dns-tcp", ready("plab-n1", "plab-n2")),
				local("default/dns-udp", ready("plab-n2", "plab-n3")),
			},
			candidates: []string{"plab-n2"},
		},
		{
			name: "Local Services that no node serves together: the nodes serving the most",
			services: []Service{
				local("default/a", ready("plab-n1")),
				local("default/b", ready("plab-n2")),
				local("default/c", ready("plab-n2")),
			},
			candidates: []string{"plab-n2"},
		},
		{
			name: "a Local Service with no endpoint does not veto the others",
			services: []Service{
				local("default/dns-tcp", ready("plab-n3")),
				local("default/dns-udp", nil),
			},
			candidates: []string{"plab-n3"},
		},
		{
			name: "Local and Cluster mixed (a Local Service without selector): the Local endpoints decide",
			services: []Service{
				cluster("default/a", ready("plab-n1")),
				local("default/b", ready("plab-n3")),
			},
			candidates: []string{"plab-n3"},
		},
		{
			name: "a Cluster Service still gets announced when the Local one cannot be served",
			services: []Service{
				cluster("default/a", ready("plab-n1")),
				local("default/b", eps{"": {Ready: 1}}),
			},
			candidates: three,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Elect(Input{IP: ip4, Nodes: healthy(three...), Services: tc.services})
			if got := sorted(r.Candidates); !slices.Equal(got, sorted(tc.candidates)) {
				t.Errorf("candidates = %v, want %v (%s)", got, sorted(tc.candidates), r.Message)
			}
			// Listing the Services in any order elects the same node.
			rev := slices.Clone(tc.services)
			slices.Reverse(rev)
			if r2 := Elect(Input{IP: ip4, Nodes: healthy(three...), Services: rev}); !reflect.DeepEqual(r, r2) {
				t.Errorf("order of Services matters:\n%+v\n%+v", r, r2)
			}
		})
	}
	t.Run("the unserved Service is named", func(t *testing.T) {
		r := Elect(Input{IP: ip4, Nodes: healthy(three...), Services: []Service{
			local("default/a", ready("plab-n1", "plab-n2")),
			local("default/b", ready("plab-n2")),
		}})
		want := "plab-n1: no ready local endpoint of default/b"
		for _, e := range r.Excluded {
			if e.Node == "plab-n1" && e.String() != want {
				t.Errorf("got %q, want %q", e.String(), want)
			}
		}
	})
}

// TestDuplicateNodes: entries repeating a name merge into one node that
// passes a rule only if every entry passes it, in whatever order they come.
func TestDuplicateNodes(t *testing.T) {
	tests := []struct {
		name       string
		nodes      []Node
		faults     Fault
		interfaces []string
	}{
		{"identical entries are one node", []Node{node("plab-n1"), node("plab-n1")}, 0, []string{"eth0"}},
		{"a failing entry wins", []Node{node("plab-n1"), node("plab-n1", notReady)}, FaultNotReady, nil},
		{"an interface down in one entry is down", []Node{node("plab-n1", ifaces(up("eth0"), up("eth1"))), node("plab-n1", ifaces(down("eth0")))}, 0, []string{"eth1"}},
		{"interfaces are unioned", []Node{node("plab-n1"), node("plab-n1", ifaces(up("eth1")))}, 0, []string{"eth0", "eth1"}},
		{"an empty name is no node", []Node{node("plab-n1"), node("", dead)}, 0, []string{"eth0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rev := slices.Clone(tc.nodes)
			slices.Reverse(rev)
			for _, nodes := range [][]Node{tc.nodes, rev} {
				r := Elect(Input{IP: ip4, Nodes: nodes, Services: []Service{web}})
				if got := faultsOf(r); got["plab-n1"] != tc.faults || len(got)+len(r.Candidates) != 1 {
					t.Errorf("faults %v, candidates %v; want plab-n1 once with faults %v", got, r.Candidates, tc.faults)
				}
				if tc.faults == 0 && !slices.Equal(r.Interfaces, tc.interfaces) {
					t.Errorf("interfaces %v, want %v", r.Interfaces, tc.interfaces)
				}
			}
		})
	}
}
