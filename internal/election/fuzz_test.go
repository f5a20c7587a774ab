package election

import (
	"hash/fnv"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// facts is what the input says about one node name, merged over its entries
// the way the package documents, computed here independently of Elect.
type facts struct {
	alive, selected, ready, excluded, ifUp bool
}

func factsOf(in Input) map[string]*facts {
	m := map[string]*facts{}
	ifDown := map[string]map[string]bool{} // node -> interface -> seen down
	ifSeenUp := map[string]map[string]bool{}
	for _, n := range in.Nodes {
		if n.Name == "" {
			continue
		}
		f, ok := m[n.Name]
		if !ok {
			f = &facts{alive: true, selected: true, ready: true}
			m[n.Name] = f
			ifDown[n.Name], ifSeenUp[n.Name] = map[string]bool{}, map[string]bool{}
		}
		f.alive = f.alive && n.Alive
		f.selected = f.selected && n.Selected
		f.ready = f.ready && n.Ready
		f.excluded = f.excluded || n.Excluded
		for _, i := range n.Interfaces {
			if i.Name == "" {
				continue
			}
			if i.Up {
				ifSeenUp[n.Name][i.Name] = true
			} else {
				ifDown[n.Name][i.Name] = true
			}
		}
	}
	for name, f := range m {
		for i := range ifSeenUp[name] {
			if !ifDown[name][i] {
				f.ifUp = true
			}
		}
	}
	return m
}

func (f *facts) base() bool { return f.alive && f.selected && f.ready && !f.excluded && f.ifUp }

// checkInvariants asserts what must hold for any input.
func checkInvariants(t *testing.T, in Input, r Result) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("input %+v\nresult %+v\n"+format, append([]any{in, r}, args...)...)
	}
	if r.Message == "" {
		fail("empty message")
	}
	var servable, local []*Service
	for i := range in.Services {
		s := &in.Services[i]
		for _, ep := range s.Endpoints {
			if ep.Ready > 0 || ep.Terminating > 0 {
				servable = append(servable, s)
				if s.LocalPolicy {
					local = append(local, s)
				}
				break
			}
		}
	}
	if len(servable) == 0 {
		if r.Reason != NoEndpoints || r.Winner != "" || len(r.Candidates) != 0 {
			fail("no serving endpoint must mean NoEndpoints and no winner")
		}
		return
	}
	fs := factsOf(in)

	// Every node is either a candidate or excluded, once.
	seen := map[string]int{}
	for _, c := range r.Candidates {
		seen[c]++
	}
	for _, e := range r.Excluded {
		seen[e.Node]++
		f := fs[e.Node]
		if f == nil {
			fail("excluded unknown node %q", e.Node)
		}
		// The reported faults are exactly the node rules it fails (plus
		// possibly the endpoint rule).
		want := Fault(0)
		if !f.alive {
			want |= FaultNotAlive
		}
		if !f.selected {
			want |= FaultNotSelected
		}
		if !f.ready {
			want |= FaultNotReady
		}
		if f.excluded {
			want |= FaultExcluded
		}
		if !f.ifUp {
			want |= FaultInterfaceDown
		}
		if e.Faults&^FaultNoLocalEndpoint != want || e.Faults == 0 {
			fail("%s: faults %v, want %v (+ maybe no local endpoint)", e.Node, e.Faults, want)
		}
		if e.Faults&FaultNoLocalEndpoint != 0 && len(local) == 0 {
			fail("%s: no local endpoint, but no Local Service is serving", e.Node)
		}
	}
	for name := range fs {
		if seen[name] != 1 {
			fail("node %s appears %d times among candidates and excluded", name, seen[name])
		}
	}
	if len(seen) != len(fs) {
		fail("unknown nodes in the result")
	}
	if !slices.Equal(r.Candidates, Order(in.IP, r.Candidates)) {
		fail("candidates not in hash order")
	}

	// No candidate fails a rule.
	allLocal := len(local) == len(servable)
	// A node serves a Local Service with a ready local endpoint, or with a
	// terminating one when no node passing the node rules has a ready one.
	readyOnBase := map[*Service]bool{}
	for _, s := range local {
		for name, f := range fs {
			readyOnBase[s] = readyOnBase[s] || (f.base() && s.Endpoints[name].Ready > 0)
		}
	}
	servesAll := func(n string) bool {
		for _, s := range local {
			ep := s.Endpoints[n]
			if ep.Ready <= 0 && (readyOnBase[s] || ep.Terminating <= 0) {
				return false
			}
		}
		return true
	}
	// When some node passing the node rules serves every Local Service,
	// the candidates are exactly those nodes.
	var full []string
	for name, f := range fs {
		if f.base() && servesAll(name) {
			full = append(full, name)
		}
	}
	if len(full) > 0 && !slices.Equal(sorted(full), sorted(r.Candidates)) {
		fail("candidates %v, want the nodes serving every Service %v", r.Candidates, sorted(full))
	}
	// Some candidate exists when a node passing the node rules serves one
	// Service: any node serves a Cluster Service.
	servesOne := func(n string) bool {
		for _, s := range servable {
			ep := s.Endpoints[n]
			if !s.LocalPolicy || ep.Ready > 0 || (!readyOnBase[s] && ep.Terminating > 0) {
				return true
			}
		}
		return false
	}
	someServes := false
	for name, f := range fs {
		someServes = someServes || (f.base() && servesOne(name))
	}
	if someServes != (len(r.Candidates) > 0) {
		fail("a node passing the node rules serves a Service: %v, but candidates are %v", someServes, r.Candidates)
	}
	for _, c := range r.Candidates {
		if !fs[c].base() {
			fail("candidate %s fails a node rule: %+v", c, *fs[c])
		}
		if allLocal {
			holds := false
			for _, s := range local {
				ep := s.Endpoints[c]
				holds = holds || ep.Ready > 0 || ep.Terminating > 0
			}
			if !holds {
				fail("candidate %s holds no local endpoint", c)
			}
		}
	}

	// The winner.
	if len(r.Candidates) == 0 {
		if r.Winner != "" || r.KeptOwner || r.Interfaces != nil {
			fail("a winner without candidates")
		}
		selected, selectedUp := false, false
		for _, f := range fs {
			if f.alive && f.selected {
				selected = true
				selectedUp = selectedUp || f.ifUp
			}
		}
		want := NoEligibleNode
		if !selected {
			want = NoMatchingAdvertisement
		} else if !selectedUp {
			want = InterfaceDown
		}
		if r.Reason != want {
			fail("reason %s, want %s", r.Reason, want)
		}
		return
	}
	want := r.Candidates[0]
	if slices.Contains(r.Candidates, in.CurrentOwner) && !in.ReturnToPreferred {
		want = in.CurrentOwner
	}
	if r.Reason != Elected || r.Winner != want || r.KeptOwner != (want != r.Candidates[0]) {
		fail("winner %q (%s, kept %v), want %q", r.Winner, r.Reason, r.KeptOwner, want)
	}
	if len(r.Interfaces) == 0 {
		fail("the winner has no interface up")
	}
}

// byteSource reads fuzz bytes, then zeros.
type byteSource []byte

func (b *byteSource) next() byte {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return c
}

// inputFromBytes builds an input: zero bytes give healthy nodes, so the fuzzer
// starts from elections that have a winner.
func inputFromBytes(data []byte) Input {
	src := byteSource(data)
	names := []string{"plab-n1", "plab-n2", "plab-n3", "plab-n4", "plab-n5", "plab-n6"}
	var in Input
	hi, lo := src.next(), src.next()
	if src.next()&1 == 0 {
		in.IP = addr4(int(hi&1)<<16 | int(lo)<<8 | int(src.next()))
	} else {
		in.IP = addr6(int(hi)<<8 | int(lo))
	}
	for range int(src.next()%9) + 1 {
		name := names[src.next()%6]
		if src.next() == 255 {
			name = ""
		}
		flags := src.next()
		n := Node{
			Name:     name,
			Alive:    flags&1 == 0,
			Selected: flags&2 == 0,
			Ready:    flags&4 == 0,
			Excluded: flags&24 == 24,
		}
		ifs := src.next()
		for i, ifname := range []string{"eth0", "eth1", "bond0"} {
			switch ifs >> (2 * i) & 3 {
			case 0:
				if i == 0 {
					n.Interfaces = append(n.Interfaces, Interface{ifname, true})
				}
			case 1:
				n.Interfaces = append(n.Interfaces, Interface{ifname, false})
			default:
				n.Interfaces = append(n.Interfaces, Interface{ifname, true})
			}
		}
		in.Nodes = append(in.Nodes, n)
	}
	for s := range int(src.next() % 4) {
		svc := Service{Key: "default/s" + string(rune('a'+s)), LocalPolicy: src.next()&1 == 1, Endpoints: eps{}}
		for _, name := range append(names, "") {
			if e := src.next(); e != 0 {
				svc.Endpoints[name] = Endpoints{Ready: int(e & 3), Terminating: int(e >> 2 & 3)}
			}
		}
		in.Services = append(in.Services, svc)
	}
	switch o := src.next() % 8; {
	case o < 6:
		in.CurrentOwner = names[o]
	case o == 6:
		in.CurrentOwner = "plab-n9"
	}
	in.ReturnToPreferred = src.next()&1 == 1
	return in
}

// FuzzElect checks the invariants of Elect on inputs built from fuzz bytes:
// the winner is always a candidate and passes every rule, every node is
// accounted for, and the result does not depend on the order of the input.
func FuzzElect(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 10, 0, 5, 3, 0, 0, 0, 1, 0, 0, 2, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 2})
	f.Add([]byte{1, 2, 1, 8, 0, 0, 1, 0, 1, 0, 4, 0, 2, 0, 2, 5, 3, 1, 4, 0, 0, 8, 0, 0, 9, 1, 1, 3, 1})
	f.Add([]byte{0, 0, 0, 3, 0, 0, 5, 1, 0, 0, 2, 0, 0, 21, 2, 1, 0, 0, 0, 0, 0, 0, 4, 1, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := inputFromBytes(data)
		r := Elect(in)
		checkInvariants(t, in, r)
		h := fnv.New64a()
		h.Write(data)
		rng := rand.New(rand.NewPCG(h.Sum64(), 1))
		for range 3 {
			if r2 := Elect(shuffled(rng, in)); !reflect.DeepEqual(r, r2) {
				t.Fatalf("input order changed the result\ninput %+v\n%+v\n%+v", in, r, r2)
			}
		}
	})
}
