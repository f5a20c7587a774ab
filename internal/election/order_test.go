package election

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestOrderGolden pins the hash order. Speakers of different versions must
// elect the same node during a rolling upgrade, so these values must never
// change. (They were checked with `printf 'plab-n1/198.18.0.1' | sha256sum`.)
func TestOrderGolden(t *testing.T) {
	five := []string{"plab-n1", "plab-n2", "plab-n3", "plab-n4", "plab-n5"}
	golden := map[string][]string{
		"198.18.0.1":          {"plab-n4", "plab-n5", "plab-n3", "plab-n1", "plab-n2"},
		"198.19.255.254":      {"plab-n1", "plab-n2", "plab-n3", "plab-n5", "plab-n4"},
		"2001:db8::1":         {"plab-n4", "plab-n3", "plab-n1", "plab-n5", "plab-n2"},
		"2001:db8:ffff::abcd": {"plab-n3", "plab-n1", "plab-n5", "plab-n4", "plab-n2"},
	}
	for a, want := range golden {
		if got := Order(netip.MustParseAddr(a), five); !slices.Equal(got, want) {
			t.Errorf("Order(%s) = %v, want %v", a, got, want)
		}
	}
}

// TestOrderDefinition checks Order against its definition, written out
// independently: ascending hex sha256 of node + "/" + address, then name.
func TestOrderDefinition(t *testing.T) {
	names := []string{"plab-n1", "plab-n2", "plab-n3", "b", "a", "a"}
	for i := range 200 {
		ip := addr4(i * 601)
		if i%2 == 1 {
			ip = addr6(i * 7919)
		}
		want := slices.Clone(names)
		key := func(n string) string {
			s := sha256.Sum256([]byte(n + "/" + ip.String()))
			return hex.EncodeToString(s[:]) + " " + n
		}
		slices.SortFunc(want, func(a, b string) int { return strings.Compare(key(a), key(b)) })
		in := slices.Clone(names)
		if got := Order(ip, in); !slices.Equal(got, want) {
			t.Fatalf("Order(%s) = %v, want %v", ip, got, want)
		}
		if !slices.Equal(in, names) {
			t.Fatalf("Order modified its input: %v", in)
		}
	}
	if Order(ip4, nil) != nil {
		t.Errorf("Order of no names is not nil")
	}
}

// TestOrderCanonicalAddress: an IPv4-mapped address ranks like the IPv4
// address it maps.
func TestOrderCanonicalAddress(t *testing.T) {
	mapped := netip.AddrFrom16(ip4.As16())
	if !slices.Equal(Order(mapped, three), Order(ip4, three)) {
		t.Errorf("Order(%s) differs from Order(%s)", mapped, ip4)
	}
}

// TestDistribution: with 3 nodes and 3,000 addresses each node wins between
// 25% and 42% of them.
func TestDistribution(t *testing.T) {
	for _, family := range []struct {
		name string
		addr func(int) netip.Addr
	}{{"IPv4", addr4}, {"IPv6", addr6}} {
		t.Run(family.name, func(t *testing.T) {
			wins := map[string]int{}
			const n = 3000
			for i := range n {
				r := Elect(Input{IP: family.addr(i * 37), Nodes: healthy(three...), Services: []Service{web}})
				wins[r.Winner]++
			}
			for _, name := range three {
				if share := float64(wins[name]) / n; share < 0.25 || share > 0.42 {
					t.Errorf("%s wins %.1f%% of addresses (%v)", name, 100*share, wins)
				}
			}
			t.Logf("wins: %v", wins)
		})
	}
}

// TestStability: removing a node moves only the addresses that node won,
// even without stickiness; adding a node moves addresses only to it.
func TestStability(t *testing.T) {
	names := []string{"plab-n1", "plab-n2", "plab-n3", "plab-n4", "plab-n5"}
	const n = 1000
	elect := func(i int, nodes []string) string {
		ip := addr4(i * 101)
		if i%2 == 1 {
			ip = addr6(i * 101)
		}
		return Elect(Input{IP: ip, Nodes: healthy(nodes...), Services: []Service{web}}).Winner
	}
	before := make([]string, n)
	for i := range n {
		before[i] = elect(i, names)
	}
	for _, gone := range names {
		rest := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == gone })
		moved := 0
		for i := range n {
			after := elect(i, rest)
			switch {
			case before[i] == gone:
				moved++
			case after != before[i]:
				t.Errorf("removing %s moved address %d from %s to %s", gone, i, before[i], after)
			}
		}
		if moved == 0 {
			t.Errorf("%s won no address", gone)
		}
	}
	added := append(slices.Clone(names), "plab-n6")
	gained := 0
	for i := range n {
		after := elect(i, added)
		switch {
		case after == "plab-n6":
			gained++
		case after != before[i]:
			t.Errorf("adding plab-n6 moved address %d from %s to %s", i, before[i], after)
		}
	}
	if gained == 0 {
		t.Errorf("plab-n6 won no address")
	}
}

// TestStickinessKeepsAddressesOnRejoin: with the current owner fed back, a
// node that leaves and comes back takes nothing back.
func TestStickinessKeepsAddressesOnRejoin(t *testing.T) {
	owners := make([]string, 1000)
	for i := range owners {
		owners[i] = Elect(Input{IP: addr4(i), Nodes: []Node{node("plab-n1", dead), node("plab-n2"), node("plab-n3")}, Services: []Service{web}}).Winner
	}
	for i, owner := range owners {
		if r := Elect(Input{IP: addr4(i), Nodes: healthy(three...), Services: []Service{web}, CurrentOwner: owner}); r.Winner != owner {
			t.Fatalf("address %d moved from %s to %s when plab-n1 came back", i, owner, r.Winner)
		}
	}
}

// randomInput builds an input with every kind of node and Service.
func randomInput(rng *rand.Rand) Input {
	in := Input{IP: addr4(rng.IntN(1 << 17))}
	if rng.IntN(2) == 0 {
		in.IP = addr6(rng.IntN(1 << 20))
	}
	names := []string{"plab-n1", "plab-n2", "plab-n3", "plab-n4", "plab-n5", "plab-n6"}
	for range rng.IntN(8) {
		n := Node{
			Name:     names[rng.IntN(len(names))],
			Alive:    rng.IntN(5) > 0,
			Selected: rng.IntN(5) > 0,
			Ready:    rng.IntN(5) > 0,
			Excluded: rng.IntN(6) == 0,
		}
		for _, ifname := range []string{"eth0", "eth1", "bond0"} {
			if rng.IntN(2) == 0 {
				n.Interfaces = append(n.Interfaces, Interface{ifname, rng.IntN(4) > 0})
			}
		}
		in.Nodes = append(in.Nodes, n)
	}
	for s := range rng.IntN(4) {
		svc := Service{Key: fmt.Sprintf("default/s%d", s), LocalPolicy: rng.IntN(2) == 0, Endpoints: eps{}}
		for _, name := range append(names, "") {
			if rng.IntN(3) == 0 {
				svc.Endpoints[name] = Endpoints{Ready: rng.IntN(3), Terminating: rng.IntN(2)}
			}
		}
		in.Services = append(in.Services, svc)
	}
	if rng.IntN(2) == 0 {
		in.CurrentOwner = names[rng.IntN(len(names))]
	}
	in.ReturnToPreferred = rng.IntN(4) == 0
	return in
}

// shuffled returns in with its nodes, Services and interfaces reordered.
func shuffled(rng *rand.Rand, in Input) Input {
	out := in
	out.Nodes = slices.Clone(in.Nodes)
	rng.Shuffle(len(out.Nodes), func(i, j int) { out.Nodes[i], out.Nodes[j] = out.Nodes[j], out.Nodes[i] })
	for i := range out.Nodes {
		ifs := slices.Clone(out.Nodes[i].Interfaces)
		rng.Shuffle(len(ifs), func(a, b int) { ifs[a], ifs[b] = ifs[b], ifs[a] })
		out.Nodes[i].Interfaces = ifs
	}
	out.Services = slices.Clone(in.Services)
	rng.Shuffle(len(out.Services), func(i, j int) { out.Services[i], out.Services[j] = out.Services[j], out.Services[i] })
	return out
}

// TestDeterminism: shuffling the input does not change any part of the
// result.
func TestDeterminism(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		in := randomInput(rng)
		want := Elect(in)
		for range 4 {
			if got := Elect(shuffled(rng, in)); !reflect.DeepEqual(got, want) {
				t.Fatalf("shuffled input changed the result\ninput: %+v\n got: %+v\nwant: %+v", in, got, want)
			}
		}
		checkInvariants(t, in, want)
	}
}
