package layer2

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
)

// passes runs a filter's program (after the outgoing check, which the VM
// cannot run) on frame.
func passes(t testing.TB, prog []bpf.Instruction, frame []byte) bool {
	t.Helper()
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("filter does not load: %v", err)
	}
	n, err := vm.Run(frame)
	if err != nil {
		t.Fatalf("filter run: %v", err)
	}
	return n > 0
}

func TestARPOwnedFilter(t *testing.T) {
	prog, ok := arpMatch([]netip.Addr{vip4, vip6}, []netip.Addr{peerIPv4})
	if !ok {
		t.Fatal("no filter for two addresses")
	}
	other := netip.MustParseAddr("198.18.250.7")
	for _, tt := range []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"request for owned", arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, other, zeroMAC, vip4), true},
		{"probe for owned", arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, netip.IPv4Unspecified(), zeroMAC, vip4), true},
		{"request for unowned", arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, other, zeroMAC, vip4Other), false},
		{"request for unowned from a probed sender", arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, peerIPv4, zeroMAC, vip4Other), true},
		{"reply from a probed sender", arpFrom(arp.OperationReply, ourMAC, peerMAC, peerIPv4, ourMAC, vip4), true},
		{"reply from another sender", arpFrom(arp.OperationReply, ourMAC, peerMAC, other, ourMAC, vip4), false},
		{"truncated request for owned", arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, other, zeroMAC, vip4)[:40], false},
	} {
		if got := passes(t, prog, tt.frame); got != tt.want {
			t.Errorf("%s: passes %v, want %v", tt.name, got, tt.want)
		}
	}
	// Nothing owned or probed: nothing passes.
	none, _ := arpMatch(nil, nil)
	if passes(t, none, arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, other, zeroMAC, vip4)) {
		t.Error("a filter for nothing passes a request")
	}
	if r, err := arpOwnedFilter([]netip.Addr{vip4}, nil); err != nil || len(r) == 0 {
		t.Errorf("ARP filter: %d instructions, %v", len(r), err)
	}
}

func TestNDPOwnedFilter(t *testing.T) {
	prog, ok := ndpMatch([]netip.Addr{vip4, vip6}, []netip.Addr{peerIPv6})
	if !ok {
		t.Fatal("no filter for two addresses")
	}
	ns := func(target netip.Addr) []byte {
		snm, _ := ndp.SolicitedNodeMulticast(target)
		return nsFrom(t, multicastMAC(snm), peerMAC, peerLL, snm, target, peerMAC)
	}
	na := func(target netip.Addr) []byte {
		f, err := ndpFrame(ourMAC, peerMAC, target, ourLL, &ndp.NeighborAdvertisement{TargetAddress: target})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	udp := ns(vip6)
	udp[ethHeaderLen+6] = 17
	for _, tt := range []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"NS for owned", ns(vip6), true},
		{"NS for unowned", ns(vip6Other), false},
		{"NA for a probed address", na(peerIPv6), true},
		{"NA for another address", na(vip6Other), false},
		{"NS for a probed address", ns(peerIPv6), false},
		{"not ICMPv6", udp, false},
	} {
		if got := passes(t, prog, tt.frame); got != tt.want {
			t.Errorf("%s: passes %v, want %v", tt.name, got, tt.want)
		}
	}
	if r, err := ndpOwnedFilter([]netip.Addr{vip6}, nil); err != nil || len(r) == 0 {
		t.Errorf("NDP filter: %d instructions, %v", len(r), err)
	}
}

// TestFilterManyAddresses: comparisons come in blocks (conditional jumps
// reach 255 instructions); every owned address passes, up to the limit,
// and beyond it the permissive filter is used.
func TestFilterManyAddresses(t *testing.T) {
	base := netip.MustParseAddr("198.18.0.0").As4()
	addr := func(i int) netip.Addr {
		b := base
		binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])+uint32(i))
		return netip.AddrFrom4(b)
	}
	var owned []netip.Addr
	for i := range maxFilterAddrs {
		owned = append(owned, addr(2*i))
	}
	prog, ok := arpMatch(owned, nil)
	if !ok {
		t.Fatalf("no filter for %d addresses", len(owned))
	}
	if len(prog) > 4096-len(dropOutgoing()) {
		t.Fatalf("%d instructions: over the kernel's limit", len(prog))
	}
	for i := range 2 * maxFilterAddrs {
		req := arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, peerIPv4, zeroMAC, addr(i))
		if got := passes(t, prog, req); got != (i%2 == 0) {
			t.Fatalf("request for %s: passes %v", addr(i), got)
		}
	}
	if _, err := arpOwnedFilter(owned, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := arpMatch(append(owned, addr(-1)), nil); ok {
		t.Errorf("a filter for %d addresses", len(owned)+1)
	}
	permissive, _ := arpFilter()
	if r, err := arpOwnedFilter(append(owned, addr(-1)), nil); err != nil || len(r) != len(permissive) {
		t.Errorf("beyond the limit: %d instructions (%v), want the permissive filter's %d", len(r), err, len(permissive))
	}
}
