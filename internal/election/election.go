// Package election chooses the node that announces a LoadBalancer address in
// layer-2 mode. It is pure logic with no Kubernetes client: the speaker feeds
// it what it knows about the nodes and the Services on an address, and every
// speaker that is fed the same facts computes the same node.
//
// # Candidates
//
// A node is a candidate for an address when it is
//
//   - alive: a live member of the speakers' memberlist;
//   - selected: chosen by the nodeSelectors of an L2Advertisement that
//     applies to the address;
//   - Ready, and not labelled
//     node.kubernetes.io/exclude-from-external-load-balancers;
//   - up on an announcing interface (one allowed by those advertisements);
//   - for externalTrafficPolicy Local, holding a ready local endpoint (see
//     Services below).
//
// Nobody announces an address on which no Service has a serving endpoint
// (ready, or terminating but still serving), whatever the policy.
//
// # Winner
//
// Candidates are ordered by sha256(node + "/" + address), compared as bytes,
// then by name (see Order). The current owner keeps the address while it is
// a candidate, so a node that comes back does not take the address from a
// healthy owner (a second disconnect for the clients). Otherwise, or when the
// Service asks to return to its preferred node, the first candidate in hash
// order wins.
//
// Because each node's rank comes from its own hash, removing a node moves
// only the addresses that node held, and adding one moves only those it now
// ranks first on (and, with stickiness, none that have a live owner).
//
// The hash is part of the wire contract between speakers: during a rolling
// upgrade old and new speakers must agree, so it must never change. A golden
// test pins it.
//
// # Services sharing an address
//
// The election is per address, never per Service, so Services sharing an
// address always get the same node. Their inputs merge as follows. Each
// Service with a serving endpoint is one Service a node may serve: a Cluster
// Service can be served from any node, a Local Service only from a node
// holding a ready local endpoint of it. The candidates are the nodes that pass
// the node rules and serve the most of these Services (at least one).
//
// The allocator lets a Local Service share an address only with Services of
// the same selector (its backend key), so in practice the endpoints of Local
// Services on an address coincide and the rule is simply "a node holding a
// ready local endpoint". It matters only in the remaining cases: Services
// without a selector, whose endpoints are managed by hand (their backend key
// is empty, like a Cluster Service's), and transitions (a selector changed,
// endpoints not yet updated). Then it prefers the nodes that serve every
// Service, and when no node can, it still announces from the nodes serving as
// many as possible rather than from none: a partial outage instead of a total
// one. A Local Service with no serving endpoint anywhere cannot be served by
// any node, so it does not veto the others.
//
// Terminating endpoints: kube-proxy sends Local traffic to local endpoints
// that are terminating but still serving when a node has no ready one. So, for
// a Local Service none of whose ready endpoints is on a node that passes the
// node rules, a node holding a terminating-but-serving local endpoint counts
// as serving it. A Recreate or StatefulSet roll-out then keeps its address
// announced while the old pod drains, and moves as soon as a ready pod exists.
//
// # Split brain
//
// When memberlist views diverge, several nodes may claim one address.
// ResolveConflict picks the one that keeps it, deterministically.
package election

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Reason says why an address has, or lacks, an announcing node.
type Reason string

const (
	// Elected means a node was elected; Result.Winner names it.
	Elected Reason = "Elected"
	// NoEndpoints means no Service on the address has a serving endpoint,
	// so nobody announces it.
	NoEndpoints Reason = "NoEndpoints"
	// NoMatchingAdvertisement means no alive node is selected by an
	// L2Advertisement that applies to the address.
	NoMatchingAdvertisement Reason = "NoMatchingAdvertisement"
	// InterfaceDown means alive selected nodes exist but none has an
	// announcing interface up.
	InterfaceDown Reason = "InterfaceDown"
	// NoEligibleNode means some alive selected node has an interface up but
	// every node fails some other rule.
	NoEligibleNode Reason = "NoEligibleNode"
)

// Interface is one of a node's announcing interfaces: an interface the
// L2Advertisements selecting the node allow (every usable interface when they
// name none).
type Interface struct {
	Name string
	Up   bool
}

// Node is what the speakers know about one node, for one address.
//
// Names must be unique. An entry with an empty name is ignored. Entries that
// repeat a name are merged into one node that passes a rule only if every
// entry passes it: Alive, Selected and Ready are and-ed, Excluded is or-ed,
// and an interface is up only if no entry reports it down.
type Node struct {
	// Name is the Kubernetes node name, which is also its memberlist name.
	Name string
	// Alive says the node is a live memberlist member.
	Alive bool
	// Selected says an L2Advertisement applying to the address selects the
	// node.
	Selected bool
	// Ready says the node's Ready condition is True.
	Ready bool
	// Excluded says the node carries the label
	// node.kubernetes.io/exclude-from-external-load-balancers.
	Excluded bool
	// Interfaces are the node's announcing interfaces. A node with none up
	// is not a candidate.
	Interfaces []Interface
}

// Endpoints counts a Service's endpoints on one node.
type Endpoints struct {
	// Ready counts ready endpoints.
	Ready int
	// Terminating counts endpoints that are terminating but still serving
	// (ready false, serving true). Terminating endpoints that no longer
	// serve are not counted.
	Terminating int
}

// Service is one Service using the address.
type Service struct {
	// Key names the Service, namespace/name, for messages.
	Key string
	// LocalPolicy says the Service has externalTrafficPolicy Local.
	LocalPolicy bool
	// Endpoints counts the Service's endpoints by node name. Endpoints with
	// no node name are counted under "": they make the Service serving, but
	// do not make any node a candidate for Local policy.
	Endpoints map[string]Endpoints
}

// Input is everything the election of one address depends on. Every speaker
// must be given the same Input to compute the same winner; the order of
// Nodes, Services and Interfaces does not matter.
type Input struct {
	// IP is the address being elected for.
	IP netip.Addr
	// Nodes are all nodes known to the speaker, candidates or not; the
	// others appear in the result's explanation.
	Nodes []Node
	// Services are the Services using the address.
	Services []Service
	// CurrentOwner is the node announcing the address now, or "".
	CurrentOwner string
	// ReturnToPreferred makes the first candidate in hash order win even
	// over a current owner that is still a candidate.
	ReturnToPreferred bool
}

// Fault is a set of candidate rules a node fails.
type Fault uint8

const (
	// FaultNotAlive means not a live memberlist member.
	FaultNotAlive Fault = 1 << iota
	// FaultNotSelected means no applicable L2Advertisement selects the node.
	FaultNotSelected
	// FaultNotReady means the node is not Ready.
	FaultNotReady
	// FaultExcluded means the node is labelled
	// node.kubernetes.io/exclude-from-external-load-balancers.
	FaultExcluded
	// FaultInterfaceDown means no announcing interface is up.
	FaultInterfaceDown
	// FaultNoLocalEndpoint means the node serves fewer of the address's Services
	// than the candidates do (for a single Local Service: it holds no ready
	// local endpoint).
	FaultNoLocalEndpoint
)

var faultNames = [...]string{"not alive", "not selected", "not Ready", "excluded", "interface down", "no ready local endpoint"}

// String lists the faults, for example "not alive, not Ready".
func (f Fault) String() string {
	var parts []string
	for i, name := range faultNames {
		if f&(1<<i) != 0 {
			parts = append(parts, name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (f Fault) count() int {
	n := 0
	for ; f != 0; f &= f - 1 {
		n++
	}
	return n
}

// Exclusion says why a node is not a candidate.
type Exclusion struct {
	Node   string
	Faults Fault
	// DownInterfaces are the announcing interfaces reported down, sorted;
	// set with FaultInterfaceDown.
	DownInterfaces []string
	// Unserved are the Local Services the node holds no usable endpoint of,
	// sorted; set with FaultNoLocalEndpoint.
	Unserved []string
}

// String words the exclusion, for example
// "plab-n2: not Ready, interface eth1 down".
func (e Exclusion) String() string {
	var parts []string
	if e.Faults&FaultNotAlive != 0 {
		parts = append(parts, "not alive")
	}
	if e.Faults&FaultNotSelected != 0 {
		parts = append(parts, "not selected by an L2Advertisement")
	}
	if e.Faults&FaultNotReady != 0 {
		parts = append(parts, "not Ready")
	}
	if e.Faults&FaultExcluded != 0 {
		parts = append(parts, "labelled exclude-from-external-load-balancers")
	}
	if e.Faults&FaultInterfaceDown != 0 {
		switch len(e.DownInterfaces) {
		case 0:
			parts = append(parts, "no announcing interface")
		case 1:
			parts = append(parts, "interface "+e.DownInterfaces[0]+" down")
		default:
			parts = append(parts, "interfaces "+joinLimited(e.DownInterfaces, 3)+" down")
		}
	}
	if e.Faults&FaultNoLocalEndpoint != 0 {
		s := "no ready local endpoint"
		if len(e.Unserved) > 0 {
			s += " of " + joinLimited(e.Unserved, 2)
		}
		parts = append(parts, s)
	}
	return e.Node + ": " + strings.Join(parts, ", ")
}

// Result is the outcome of one election.
type Result struct {
	// Winner is the elected node, or "" when Reason is not Elected.
	Winner string
	// Reason is Elected, or why there is no winner.
	Reason Reason
	// Message explains the result for people: the winner and why, or the
	// nodes and why each was excluded. It does not name the address; a
	// caller reporting on a dual-stack Service names it.
	Message string
	// KeptOwner says the winner is the current owner, kept although another
	// candidate ranks before it.
	KeptOwner bool
	// Interfaces are the winner's announcing interfaces that are up, sorted.
	Interfaces []string
	// Candidates are all candidates in hash order. The winner is the first
	// unless the current owner was kept.
	Candidates []string
	// Excluded lists every node that is not a candidate, sorted by name.
	Excluded []Exclusion
}

// maxListed bounds the nodes and Services named in a message.
const maxListed = 8

// nodeInfo is a merged Node.
type nodeInfo struct {
	name   string
	faults Fault
	// ifs are the interfaces of all the node's entries; sorted lists are
	// made from them only for the winner and excluded nodes.
	ifs    []Interface
	serves int
}

// Elect elects the node that announces in.IP. It is a pure function of its
// input and does not depend on the order of its slices.
//
// It runs the phases described in the package documentation, each a
// function below: the node rules (mergeNodes), the Services that are
// served (appendServing, countServed), the candidates (markCandidates,
// exclusions) and the winner (noCandidate or electWinner).
func Elect(in Input) Result {
	nodes := mergeNodes(in.Nodes)
	// Declared here, not returned by a callee, so that the compiler may
	// keep its few elements on the stack.
	var serving []*Service
	serving = appendServing(serving, in.Services)
	if len(serving) == 0 {
		return noEndpoints(in.Services)
	}
	fallback := make([]bool, len(serving))
	countServed(nodes, serving, fallback)
	candidates, excluded := markCandidates(nodes)
	res := Result{
		Candidates: Order(in.IP, candidates),
		Excluded:   exclusions(nodes, serving, fallback, excluded),
	}
	if len(res.Candidates) == 0 {
		return noCandidate(nodes, res)
	}
	return electWinner(in, nodes, res)
}

// appendServing appends to dst the Services with a serving endpoint
// (ready, or terminating but serving) somewhere, in input order. Only they
// count: without one, nobody announces.
func appendServing(dst []*Service, services []Service) []*Service {
	for i := range services {
		s := &services[i]
		for _, ep := range s.Endpoints {
			if ep.Ready > 0 || ep.Terminating > 0 {
				dst = append(dst, s)
				break
			}
		}
	}
	return dst
}

// noEndpoints is the result when no Service on the address has a serving
// endpoint; it names the Services, sorted and without repeats, so that the
// message does not depend on the input order.
func noEndpoints(services []Service) Result {
	keys := make([]string, 0, len(services))
	for _, s := range services {
		keys = append(keys, s.Key)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	msg := "no Service uses the address"
	switch len(keys) {
	case 0:
	case 1:
		msg = "no serving endpoint of Service " + keys[0]
	default:
		msg = "no serving endpoint of Services " + joinLimited(keys, maxListed)
	}
	return Result{Reason: NoEndpoints, Message: msg}
}

// serves reports whether node can serve s: any node serves a Cluster
// Service; a Local one only a node holding a ready local endpoint, or, when
// fallback is set, a terminating-but-serving one.
func serves(s *Service, fallback bool, node string) bool {
	ep := s.Endpoints[node]
	return !s.LocalPolicy || ep.Ready > 0 || (fallback && ep.Terminating > 0)
}

// countServed sets how many of the serving Services each node serves, and
// fallback[k], whether the terminating endpoints of serving[k] count (see
// serves). They count for a Local Service only when no node that passes
// the node rules holds a ready endpoint of it, so that traffic follows
// kube-proxy, which uses terminating local endpoints only when a node has
// no ready one. It must run before markCandidates adds
// FaultNoLocalEndpoint: only the node rules' faults are looked at here.
// The caller makes fallback, len(serving) long, so that it can stay off
// the heap.
func countServed(nodes []nodeInfo, serving []*Service, fallback []bool) {
	for k, s := range serving {
		if !s.LocalPolicy {
			for i := range nodes {
				nodes[i].serves++
			}
			continue
		}
		fallback[k] = true
		for i := range nodes {
			if nodes[i].faults == 0 && s.Endpoints[nodes[i].name].Ready > 0 {
				fallback[k] = false
				break
			}
		}
		for i := range nodes {
			if serves(s, fallback[k], nodes[i].name) {
				nodes[i].serves++
			}
		}
	}
}

// markCandidates marks FaultNoLocalEndpoint on the nodes that serve fewer
// Services than the best node passing the node rules (and at least one),
// and returns the names of the nodes left without a fault, in the order of
// nodes, and how many nodes have one.
func markCandidates(nodes []nodeInfo) (candidates []string, excluded int) {
	target := 1
	for i := range nodes {
		if nodes[i].faults == 0 {
			target = max(target, nodes[i].serves)
		}
	}
	candidates = make([]string, 0, len(nodes))
	for i := range nodes {
		n := &nodes[i]
		if n.serves < target {
			n.faults |= FaultNoLocalEndpoint
		}
		if n.faults == 0 {
			candidates = append(candidates, n.name)
		} else {
			excluded++
		}
	}
	return candidates, excluded
}

// exclusions describes the excluded nodes, in the order of nodes (by
// name); nil when there are none. excluded is their number, for the
// capacity.
func exclusions(nodes []nodeInfo, serving []*Service, fallback []bool, excluded int) []Exclusion {
	if excluded == 0 {
		return nil
	}
	out := make([]Exclusion, 0, excluded)
	for i := range nodes {
		n := &nodes[i]
		if n.faults == 0 {
			continue
		}
		e := Exclusion{Node: n.name, Faults: n.faults}
		if n.faults&FaultInterfaceDown != 0 {
			e.DownInterfaces = interfaceNames(n.ifs, false)
		}
		if n.faults&FaultNoLocalEndpoint != 0 {
			for k, s := range serving {
				if !serves(s, fallback[k], n.name) {
					e.Unserved = append(e.Unserved, s.Key)
				}
			}
			slices.Sort(e.Unserved)
			e.Unserved = slices.Compact(e.Unserved)
		}
		out = append(out, e)
	}
	return out
}

// InterfaceDownMessage starts the message of a result whose reason is
// InterfaceDown, which the speakers put in the Announced condition:
// kubectl pharos reads it there, since only the speakers know which
// interfaces are up.
const InterfaceDownMessage = "no alive selected node has an announcing interface up"

// noCandidate completes res, which has no candidate, with the reason: the
// first rule in the order alive and selected, then interface up, that no
// node passes, else NoEligibleNode; and a message explaining every node.
func noCandidate(nodes []nodeInfo, res Result) Result {
	res.Reason = NoEligibleNode
	selected, selectedUp := false, false
	for i := range nodes {
		n := &nodes[i]
		if n.faults&(FaultNotAlive|FaultNotSelected) == 0 {
			selected = true
			if n.faults&FaultInterfaceDown == 0 {
				selectedUp = true
			}
		}
	}
	var prefix string
	switch {
	case !selected:
		res.Reason = NoMatchingAdvertisement
		prefix = "no alive node is selected by an L2Advertisement"
	case !selectedUp:
		res.Reason = InterfaceDown
		prefix = InterfaceDownMessage
	default:
		prefix = "no eligible node"
	}
	res.Message = prefix + ": " + explain(res.Excluded)
	return res
}

// electWinner completes res, which has candidates, with the winner: the
// current owner while it is a candidate, so that a returning node does not
// cost the clients a second move, unless the Service asks to return to the
// preferred node; else the first candidate in hash order.
func electWinner(in Input, nodes []nodeInfo, res Result) Result {
	res.Reason = Elected
	first := res.Candidates[0]
	res.Winner = first
	ownerCandidate := in.CurrentOwner != "" && slices.Contains(res.Candidates, in.CurrentOwner)
	rank := "first in hash order of " + plural(len(res.Candidates), "candidate")
	if len(res.Candidates) == 1 {
		rank = "the only candidate"
	}
	switch {
	case ownerCandidate && in.CurrentOwner == first:
		res.Message = first + " is the current owner and " + rank
	case ownerCandidate && !in.ReturnToPreferred:
		res.Winner = in.CurrentOwner
		res.KeptOwner = true
		res.Message = fmt.Sprintf("%s keeps the address as current owner (%s is %s)", in.CurrentOwner, first, rank)
	case ownerCandidate:
		res.Message = fmt.Sprintf("%s is %s; it takes the address back from %s (return to preferred node)", first, rank, in.CurrentOwner)
	case in.CurrentOwner != "":
		res.Message = fmt.Sprintf("%s is %s; current owner %s is not a candidate", first, rank, in.CurrentOwner)
	default:
		res.Message = first + " is " + rank
	}
	for i := range nodes {
		if nodes[i].name == res.Winner {
			res.Interfaces = interfaceNames(nodes[i].ifs, true)
		}
	}
	return res
}

// mergeNodes returns the nodes sorted by name, merged by name, with their
// node-rule faults set.
func mergeNodes(in []Node) []nodeInfo {
	sorted := make([]*Node, 0, len(in))
	for i := range in {
		if in[i].Name != "" {
			sorted = append(sorted, &in[i])
		}
	}
	slices.SortFunc(sorted, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
	out := make([]nodeInfo, 0, len(sorted))
	for i := 0; i < len(sorted); {
		j := i
		var faults Fault
		ifs := sorted[i].Interfaces
		for ; j < len(sorted) && sorted[j].Name == sorted[i].Name; j++ {
			n := sorted[j]
			if !n.Alive {
				faults |= FaultNotAlive
			}
			if !n.Selected {
				faults |= FaultNotSelected
			}
			if !n.Ready {
				faults |= FaultNotReady
			}
			if n.Excluded {
				faults |= FaultExcluded
			}
			if j > i {
				ifs = append(slices.Clip(ifs), n.Interfaces...)
			}
		}
		if !anyUp(ifs) {
			faults |= FaultInterfaceDown
		}
		out = append(out, nodeInfo{name: sorted[i].Name, faults: faults, ifs: ifs})
		i = j
	}
	return out
}

// anyUp reports whether some named interface is up and never reported down.
func anyUp(ifs []Interface) bool {
	for i, f := range ifs {
		if !f.Up || f.Name == "" {
			continue
		}
		down := false
		for _, g := range ifs[:i] {
			down = down || (g.Name == f.Name && !g.Up)
		}
		for _, g := range ifs[i+1:] {
			down = down || (g.Name == f.Name && !g.Up)
		}
		if !down {
			return true
		}
	}
	return false
}

// interfaceNames returns the sorted names of the interfaces that are up
// (never reported down), or of those reported down.
func interfaceNames(ifs []Interface, up bool) []string {
	var names []string
	for _, f := range ifs {
		if f.Name == "" {
			continue
		}
		// Up only if no entry reports it down.
		isUp := true
		for _, g := range ifs {
			isUp = isUp && (g.Name != f.Name || g.Up)
		}
		if isUp == up {
			names = append(names, f.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// explain words the exclusions for a message. The nodes closest to being
// candidates (fewest faults) come first; past maxListed the rest are counted
// by fault.
func explain(ex []Exclusion) string {
	if len(ex) == 0 {
		return "no nodes"
	}
	ex = slices.Clone(ex)
	slices.SortFunc(ex, func(a, b Exclusion) int {
		if c := a.Faults.count() - b.Faults.count(); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	var b strings.Builder
	for i, e := range ex {
		if i == maxListed {
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.String())
	}
	if rest := ex[min(len(ex), maxListed):]; len(rest) > 0 {
		var counts [len(faultNames)]int
		for _, e := range rest {
			for i := range faultNames {
				if e.Faults&(1<<i) != 0 {
					counts[i]++
				}
			}
		}
		var parts []string
		for i, c := range counts {
			if c > 0 {
				parts = append(parts, strconv.Itoa(c)+" "+faultNames[i])
			}
		}
		fmt.Fprintf(&b, "; and %s (%s)", plural(len(rest), "more node"), strings.Join(parts, ", "))
	}
	return b.String()
}

// Order returns the names in the election's preference order for ip:
// ascending sha256(name + "/" + ip), compared as bytes, then by name. The
// address is written in its canonical form (IPv4-mapped IPv6 addresses as
// IPv4, without zone). The input slice is not modified.
func Order(ip netip.Addr, names []string) []string {
	if len(names) == 0 {
		return nil
	}
	type ranked struct {
		name string
		sum  [sha256.Size]byte
	}
	suffix := "/" + ip.Unmap().WithZone("").String()
	r := make([]ranked, len(names))
	buf := make([]byte, 0, 64)
	for i, name := range names {
		buf = append(append(buf[:0], name...), suffix...)
		r[i] = ranked{name: name, sum: sha256.Sum256(buf)}
	}
	slices.SortFunc(r, func(a, b ranked) int {
		if c := bytes.Compare(a.sum[:], b.sum[:]); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	out := make([]string, len(r))
	for i := range r {
		out[i] = r[i].name
	}
	return out
}

// Claim is one node's claim to own an address.
type Claim struct {
	// Node is the claiming node.
	Node string
	// Epoch is when the claim began, on a counter every node compares the
	// same way (for example a Lamport clock carried in gossip); smaller is
	// earlier.
	Epoch uint64
}

// ResolveConflict picks which of several nodes claiming ip keeps it after a
// split brain heals: winner (the current election winner) if it is among the
// claimants, else the earliest claim, ties broken by hash order (Order). A
// node that claims more than once counts with its earliest claim; claims with
// an empty node name are ignored. It returns "" when there is no claim. With
// no winner ("") the earliest claim keeps the address until the election
// withdraws it.
func ResolveConflict(ip netip.Addr, winner string, claims []Claim) string {
	earliest := map[string]uint64{}
	for _, c := range claims {
		if c.Node == "" {
			continue
		}
		if e, ok := earliest[c.Node]; !ok || c.Epoch < e {
			earliest[c.Node] = c.Epoch
		}
	}
	if winner != "" {
		if _, ok := earliest[winner]; ok {
			return winner
		}
	}
	var best []string
	var bestEpoch uint64
	for name, e := range earliest {
		switch {
		case len(best) == 0 || e < bestEpoch:
			best, bestEpoch = append(best[:0], name), e
		case e == bestEpoch:
			best = append(best, name)
		}
	}
	if len(best) == 0 {
		return ""
	}
	return Order(ip, best)[0]
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// joinLimited joins up to limit strings with ", ", then "and N more".
func joinLimited(s []string, limit int) string {
	if len(s) <= limit {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:limit], ", ") + " and " + strconv.Itoa(len(s)-limit) + " more"
}
