package layer2

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
)

// The fuzzers feed arbitrary frames to the pure decision functions and
// check that nothing panics, the input is left untouched (Run reuses its
// buffer), and every answer is one we may send: from our MAC, to a unicast
// requester, for an address we own.

// fuzzOwns returns the ownership function of a fuzz run: everything (so
// the fuzzer reaches the answering paths easily) or the test VIPs only.
func fuzzOwns(ownAll bool) func(netip.Addr) bool {
	if ownAll {
		return func(netip.Addr) bool { return true }
	}
	return ownsTests
}

func FuzzDecideARP(f *testing.F) {
	seeds := [][]byte{
		arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, peerIPv4, zeroMAC, vip4),
		arpFrom(arp.OperationRequest, ourMAC, peerMAC, peerIPv4, zeroMAC, vip4),
		arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, netip.IPv4Unspecified(), zeroMAC, vip4),
		arpFrom(arp.OperationReply, ourMAC, peerMAC, vip4, ourMAC, peerIPv4),
		arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, vip4, zeroMAC, vip4),
		arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, peerIPv4, zeroMAC, vip4)[:30],
		{},
	}
	for _, s := range seeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, frame []byte, ownAll bool) {
		owns := fuzzOwns(ownAll)
		in := slices.Clone(frame)
		d := decideARP(frame, ourMAC, owns)
		if !bytes.Equal(in, frame) {
			t.Fatal("decideARP changed its input")
		}
		checkClaim(t, d)
		checkFilter(t, arpMatch, frame, d)
		if d.verdict != verdictAnswer {
			if d.reply != nil {
				t.Fatalf("reply built for verdict %d", d.verdict)
			}
			return
		}
		var ef ethernet.Frame
		var p arp.Packet
		if err := ef.UnmarshalBinary(d.reply); err != nil {
			t.Fatal(err)
		}
		if err := p.UnmarshalBinary(ef.Payload); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ef.Source, ourMAC) || !bytes.Equal(p.SenderHardwareAddr, ourMAC) {
			t.Fatalf("answer not from our MAC: %v / %v", ef.Source, p.SenderHardwareAddr)
		}
		if !isUnicastMAC(ef.Destination) || !bytes.Equal(ef.Destination, p.TargetHardwareAddr) {
			t.Fatalf("answer to %v (ARP target %v), not to one unicast requester", ef.Destination, p.TargetHardwareAddr)
		}
		if p.Operation != arp.OperationReply || !p.SenderIP.Is4() || !owns(p.SenderIP) {
			t.Fatalf("answer %v for %s, which is not owned", p.Operation, p.SenderIP)
		}
	})
}

func FuzzDecideNDP(f *testing.F) {
	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	na, _ := ndpFrame(ourMAC, peerMAC, peerLL, ourLL, &ndp.NeighborAdvertisement{
		Solicited: true, TargetAddress: vip6,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: peerMAC}},
	})
	seeds := [][]byte{
		nsFrom(f, multicastMAC(snm), peerMAC, peerLL, snm, vip6, peerMAC),
		nsFrom(f, ourMAC, peerMAC, peerLL, vip6, vip6, nil),
		nsFrom(f, multicastMAC(snm), peerMAC, netip.IPv6Unspecified(), snm, vip6, nil),
		nsFrom(f, multicastMAC(snm), peerMAC, offLink6, snm, vip6, otherMAC),
		na,
		arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, peerIPv4, zeroMAC, vip4),
		{},
	}
	for _, s := range seeds {
		for _, fix := range []bool{false, true} {
			f.Add(s, fix, false)
			f.Add(s, fix, true)
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte, fix, ownAll bool) {
		if fix {
			// The fuzzer cannot guess checksums; repair them so that its
			// mutations reach the parsing behind the checksum check.
			fixChecksum(frame)
		}
		owns := fuzzOwns(ownAll)
		in := slices.Clone(frame)
		d := decideNDP(frame, ourMAC, owns)
		if !bytes.Equal(in, frame) {
			t.Fatal("decideNDP changed its input")
		}
		checkClaim(t, d)
		checkFilter(t, ndpMatch, frame, d)
		if d.verdict != verdictAnswer {
			if d.reply != nil {
				t.Fatalf("reply built for verdict %d", d.verdict)
			}
			return
		}
		r := d.reply
		if len(r) < ethHeaderLen+ipv6HeaderLen+24 {
			t.Fatalf("answer of %d bytes", len(r))
		}
		dstMAC := r[0:6]
		if !bytes.Equal(r[6:12], ourMAC) {
			t.Fatalf("answer not from our MAC: % x", r[6:12])
		}
		h := r[ethHeaderLen:]
		src := netip.AddrFrom16([16]byte(h[8:24]))
		dst := netip.AddrFrom16([16]byte(h[24:40]))
		body := h[ipv6HeaderLen:]
		if h[7] != ndpHopLimit || int(binary.BigEndian.Uint16(h[4:6])) != len(body) {
			t.Fatalf("answer's IPv6 header is wrong: % x", h[:ipv6HeaderLen])
		}
		switch {
		case dst == allNodes:
			if !bytes.Equal(dstMAC, multicastMAC(allNodes)) {
				t.Fatalf("answer to all nodes sent to %v", dstMAC)
			}
		case dst.IsMulticast() || dst.IsUnspecified() || !isUnicastMAC(dstMAC):
			t.Fatalf("answer to %s at %v, not to one unicast solicitor", dst, dstMAC)
		}
		if !icmpv6ChecksumOK(src, dst, body) {
			t.Fatal("answer's checksum is wrong")
		}
		m, err := ndp.ParseMessage(body)
		if err != nil {
			t.Fatal(err)
		}
		a, ok := m.(*ndp.NeighborAdvertisement)
		if !ok {
			t.Fatalf("answer is a %T", m)
		}
		if !a.Override || a.TargetAddress.IsMulticast() || !owns(a.TargetAddress) {
			t.Fatalf("answer for %s (override %v), which is not owned", a.TargetAddress, a.Override)
		}
		if src != a.TargetAddress {
			t.Fatalf("answer for %s sent from %s, not from the target", a.TargetAddress, src)
		}
		if lla := linkLayerOption(a.Options, ndp.Target); !bytes.Equal(lla, ourMAC) {
			t.Fatalf("answer's target link-layer address is %v", lla)
		}
	})
}

// checkClaim checks the probe evidence a decision carries.
func checkClaim(t *testing.T, d decision) {
	t.Helper()
	if d.verdict < verdictIgnored || d.verdict > verdictAnswer {
		t.Fatalf("unknown verdict %d", d.verdict)
	}
	if d.claimIP.IsValid() != (d.claimMAC != nil) {
		t.Fatalf("half a claim: %s at %v", d.claimIP, d.claimMAC)
	}
	if d.claimIP.IsValid() && (!isUnicastMAC(d.claimMAC) || bytes.Equal(d.claimMAC, ourMAC)) {
		t.Fatalf("claim by %v, not another station's unicast address", d.claimMAC)
	}
}

// checkFilter checks that the socket's kernel filter passes every frame
// the decision acts on: one it answers passes the filter for its target,
// one that claims an address passes the filter of a probe of that
// address.
func checkFilter(t *testing.T, match func(owned, probing []netip.Addr) ([]bpf.Instruction, bool), frame []byte, d decision) {
	t.Helper()
	if d.verdict == verdictAnswer {
		prog, _ := match([]netip.Addr{d.target}, nil)
		if !passes(t, prog, frame) {
			t.Fatalf("the filter for %s drops a frame we answer", d.target)
		}
	}
	if d.claimIP.IsValid() {
		prog, _ := match(nil, []netip.Addr{d.claimIP})
		if !passes(t, prog, frame) {
			t.Fatalf("the filter of a probe of %s drops a frame claiming it", d.claimIP)
		}
	}
}
