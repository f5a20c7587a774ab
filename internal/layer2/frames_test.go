package layer2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

var (
	ourMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	peerMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	otherMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0c}
	ourLL     = netip.MustParseAddr("fe80::a")
	peerLL    = netip.MustParseAddr("fe80::b")
	peerIPv4  = netip.MustParseAddr("198.18.250.2")
	peerIPv6  = netip.MustParseAddr("2001:db8:250::2")
	offLink6  = netip.MustParseAddr("2001:db8:999::2")
	ownedSet  = map[netip.Addr]bool{vip4: true, vip6: true}
	ownsTests = func(ip netip.Addr) bool { return ownedSet[ip] }
)

// arpFrom builds an ARP frame sent by a peer.
func arpFrom(op arp.Operation, ethDst, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	return arpFrame(op, ethDst, sha, spa, tha, tpa)
}

// nsFrom builds a Neighbor Solicitation frame sent by a peer.
func nsFrom(t testing.TB, ethDst, ethSrc net.HardwareAddr, src, dst, target netip.Addr, slla net.HardwareAddr) []byte {
	t.Helper()
	ns := &ndp.NeighborSolicitation{TargetAddress: target}
	if slla != nil {
		ns.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: slla}}
	}
	f, err := ndpFrame(ethDst, ethSrc, src, dst, ns)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// fixChecksum recomputes the ICMPv6 checksum of an Ethernet+IPv6+ICMPv6
// frame after a test (or the fuzzer) changed it; frames of other shapes
// are left alone.
func fixChecksum(f []byte) {
	if len(f) < ethHeaderLen+ipv6HeaderLen+4 || f[12] != 0x86 || f[13] != 0xdd {
		return
	}
	h := f[ethHeaderLen:]
	plen := int(binary.BigEndian.Uint16(h[4:6]))
	if plen < 4 || len(h)-ipv6HeaderLen < plen {
		return
	}
	body := h[ipv6HeaderLen : ipv6HeaderLen+plen]
	src := netip.AddrFrom16([16]byte(h[8:24]))
	dst := netip.AddrFrom16([16]byte(h[24:40]))
	body[2], body[3] = 0, 0
	binary.BigEndian.PutUint16(body[2:4], ^icmpv6Sum(src, dst, body))
}

func TestDecideARP(t *testing.T) {
	req := func(ethDst net.HardwareAddr, spa, tpa netip.Addr) []byte {
		return arpFrom(arp.OperationRequest, ethDst, peerMAC, spa, zeroMAC, tpa)
	}
	tagged := req(ethernet.Broadcast, peerIPv4, vip4)
	tagged = append(append(append([]byte{}, tagged[:12]...), 0x81, 0x00, 0x00, 0x05), tagged[12:]...)
	multicastSender := arpFrom(arp.OperationRequest, ethernet.Broadcast, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}, peerIPv4, zeroMAC, vip4)
	badOp := req(ethernet.Broadcast, peerIPv4, vip4)
	badOp[ethHeaderLen+7] = 9
	ipv6Type := req(ethernet.Broadcast, peerIPv4, vip4)
	ipv6Type[ethHeaderLen+2], ipv6Type[ethHeaderLen+3] = 0x86, 0xdd
	fromUs := arpFrom(arp.OperationRequest, ethernet.Broadcast, ourMAC, vip4, zeroMAC, vip4)

	tests := []struct {
		name      string
		frame     []byte
		verdict   verdict
		replyTo   netip.Addr // the reply's target IP, when answered
		claimIP   netip.Addr
		claimMAC  net.HardwareAddr
		reasonHas string
	}{
		{name: "broadcast request for owned", frame: req(ethernet.Broadcast, peerIPv4, vip4), verdict: verdictAnswer, replyTo: peerIPv4, claimIP: peerIPv4, claimMAC: peerMAC},
		{name: "unicast request for owned (NUD)", frame: req(ourMAC, peerIPv4, vip4), verdict: verdictAnswer, replyTo: peerIPv4, claimIP: peerIPv4, claimMAC: peerMAC},
		{name: "RFC 5227 probe for owned", frame: req(ethernet.Broadcast, netip.IPv4Unspecified(), vip4), verdict: verdictAnswer, replyTo: netip.IPv4Unspecified()},
		{name: "request for unowned", frame: req(ethernet.Broadcast, peerIPv4, vip4Other), verdict: verdictIgnored, claimIP: peerIPv4, claimMAC: peerMAC},
		{name: "request unicast to another station", frame: req(otherMAC, peerIPv4, vip4), verdict: verdictIgnored, claimIP: peerIPv4, claimMAC: peerMAC},
		{name: "gratuitous request from another owner", frame: req(ethernet.Broadcast, vip4, vip4), verdict: verdictIgnored, claimIP: vip4, claimMAC: peerMAC},
		{name: "reply from another owner", frame: arpFrom(arp.OperationReply, ourMAC, peerMAC, vip4, ourMAC, peerIPv4), verdict: verdictIgnored, claimIP: vip4, claimMAC: peerMAC},
		{name: "our own frame", frame: fromUs, verdict: verdictIgnored, reasonHas: "own"},
		{name: "VLAN tagged", frame: tagged, verdict: verdictIgnored},
		{name: "multicast sender", frame: multicastSender, verdict: verdictMalformed},
		{name: "unknown operation", frame: badOp, verdict: verdictMalformed, claimIP: peerIPv4, claimMAC: peerMAC},
		{name: "not IPv4 ARP", frame: ipv6Type, verdict: verdictIgnored},
		{name: "truncated ARP", frame: req(ethernet.Broadcast, peerIPv4, vip4)[:ethHeaderLen+20], verdict: verdictMalformed},
		{name: "runt", frame: []byte{1, 2, 3}, verdict: verdictMalformed},
		{name: "empty", frame: nil, verdict: verdictMalformed},
		{name: "IPv6 frame", frame: nsFrom(t, ethernet.Broadcast, peerMAC, peerLL, vip6, vip6, nil), verdict: verdictIgnored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decideARP(tt.frame, ourMAC, ownsTests)
			if d.verdict != tt.verdict {
				t.Fatalf("verdict %d (%s), want %d", d.verdict, d.reason, tt.verdict)
			}
			if d.claimIP != tt.claimIP || !bytes.Equal(d.claimMAC, tt.claimMAC) {
				t.Errorf("claim %s at %v, want %s at %v", d.claimIP, d.claimMAC, tt.claimIP, tt.claimMAC)
			}
			if tt.reasonHas != "" && !bytes.Contains([]byte(d.reason), []byte(tt.reasonHas)) {
				t.Errorf("reason %q, want it to mention %q", d.reason, tt.reasonHas)
			}
			if tt.verdict != verdictAnswer {
				if d.reply != nil {
					t.Errorf("reply sent for a frame that is not answered")
				}
				return
			}
			checkARPReply(t, d.reply, vip4, peerMAC, tt.replyTo)
		})
	}
}

// checkARPReply checks that reply is our answer for ip to requester
// (mac, to).
func checkARPReply(t *testing.T, reply []byte, ip netip.Addr, mac net.HardwareAddr, to netip.Addr) {
	t.Helper()
	if len(reply) < minFrameLen {
		t.Errorf("reply of %d bytes, shorter than an Ethernet frame", len(reply))
	}
	var f ethernet.Frame
	var p arp.Packet
	if err := f.UnmarshalBinary(reply); err != nil {
		t.Fatal(err)
	}
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		t.Fatal(err)
	}
	if f.EtherType != ethernet.EtherTypeARP || !bytes.Equal(f.Source, ourMAC) || !bytes.Equal(f.Destination, mac) {
		t.Errorf("reply frame %v -> %v type %v, want %v -> %v ARP", f.Source, f.Destination, f.EtherType, ourMAC, mac)
	}
	if p.Operation != arp.OperationReply || p.HardwareType != 1 || p.ProtocolType != 0x0800 ||
		!bytes.Equal(p.SenderHardwareAddr, ourMAC) || p.SenderIP != ip ||
		!bytes.Equal(p.TargetHardwareAddr, mac) || p.TargetIP != to {
		t.Errorf("reply %+v, want %v is-at %v, to %v/%v", p, ip, ourMAC, mac, to)
	}
}

func TestDecideNDP(t *testing.T) {
	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	otherSNM, _ := ndp.SolicitedNodeMulticast(vip6Other)
	snmMAC := multicastMAC(snm)
	multicastNS := func() []byte { return nsFrom(t, snmMAC, peerMAC, peerLL, snm, vip6, peerMAC) }
	mutate := func(f []byte, fix bool, change func(f []byte)) []byte {
		change(f)
		if fix {
			fixChecksum(f)
		}
		return f
	}
	na := func(target netip.Addr, tlla net.HardwareAddr) []byte {
		m := &ndp.NeighborAdvertisement{Solicited: true, TargetAddress: target}
		if tlla != nil {
			m.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: tlla}}
		}
		f, err := ndpFrame(ourMAC, peerMAC, peerLL, ourLL, m)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	padded := append(multicastNS(), make([]byte, 20)...)
	udp := mutate(multicastNS(), false, func(f []byte) { f[ethHeaderLen+6] = 17 })

	tests := []struct {
		name     string
		frame    []byte
		verdict  verdict
		ethDst   net.HardwareAddr // of the answer
		ipDst    netip.Addr       // of the answer
		solicit  bool             // the answer's S flag
		claimIP  netip.Addr
		claimMAC net.HardwareAddr
	}{
		{name: "multicast NS for owned", frame: multicastNS(), verdict: verdictAnswer, ethDst: peerMAC, ipDst: peerLL, solicit: true},
		{name: "NS with Ethernet padding", frame: padded, verdict: verdictAnswer, ethDst: peerMAC, ipDst: peerLL, solicit: true},
		{name: "NS from a global address", frame: nsFrom(t, snmMAC, peerMAC, peerIPv6, snm, vip6, peerMAC), verdict: verdictAnswer, ethDst: peerMAC, ipDst: peerIPv6, solicit: true},
		{name: "NS from off-link prefix", frame: nsFrom(t, snmMAC, peerMAC, offLink6, snm, vip6, otherMAC), verdict: verdictAnswer, ethDst: otherMAC, ipDst: offLink6, solicit: true},
		{name: "unicast NUD without SLLA", frame: nsFrom(t, ourMAC, peerMAC, peerLL, vip6, vip6, nil), verdict: verdictAnswer, ethDst: peerMAC, ipDst: peerLL, solicit: true},
		{name: "DAD", frame: nsFrom(t, snmMAC, peerMAC, netip.IPv6Unspecified(), snm, vip6, nil), verdict: verdictAnswer, ethDst: multicastMAC(allNodes), ipDst: allNodes},
		{name: "DAD with SLLA", frame: nsFrom(t, snmMAC, peerMAC, netip.IPv6Unspecified(), snm, vip6, peerMAC), verdict: verdictMalformed},
		{name: "DAD to the target", frame: nsFrom(t, ourMAC, peerMAC, netip.IPv6Unspecified(), vip6, vip6, nil), verdict: verdictMalformed},
		{name: "NS for unowned", frame: nsFrom(t, multicastMAC(otherSNM), peerMAC, peerLL, otherSNM, vip6Other, peerMAC), verdict: verdictIgnored},
		{name: "NS to another group", frame: nsFrom(t, multicastMAC(otherSNM), peerMAC, peerLL, otherSNM, vip6, peerMAC), verdict: verdictIgnored},
		{name: "NS to all nodes", frame: nsFrom(t, multicastMAC(allNodes), peerMAC, peerLL, allNodes, vip6, peerMAC), verdict: verdictIgnored},
		{name: "unicast NS to another station", frame: nsFrom(t, otherMAC, peerMAC, peerLL, vip6, vip6, peerMAC), verdict: verdictIgnored},
		{name: "multicast SLLA", frame: nsFrom(t, snmMAC, snmMAC, peerLL, snm, vip6, snmMAC), verdict: verdictMalformed},
		{name: "multicast source", frame: nsFrom(t, snmMAC, peerMAC, allNodes, snm, vip6, peerMAC), verdict: verdictMalformed},
		{name: "multicast target", frame: nsFrom(t, snmMAC, peerMAC, peerLL, snm, snm, peerMAC), verdict: verdictMalformed},
		{name: "hop limit 254", frame: mutate(multicastNS(), false, func(f []byte) { f[ethHeaderLen+7] = 254 }), verdict: verdictMalformed},
		{name: "bad checksum", frame: mutate(multicastNS(), false, func(f []byte) { f[len(f)-1] ^= 1 }), verdict: verdictMalformed},
		{name: "code 1", frame: mutate(multicastNS(), true, func(f []byte) { f[ethHeaderLen+ipv6HeaderLen+1] = 1 }), verdict: verdictMalformed},
		{name: "IP version 4", frame: mutate(multicastNS(), false, func(f []byte) { f[ethHeaderLen] = 0x45 }), verdict: verdictMalformed},
		{name: "payload length too long", frame: mutate(multicastNS(), false, func(f []byte) { f[ethHeaderLen+5] += 8 }), verdict: verdictMalformed},
		{name: "bad option length", frame: mutate(multicastNS(), true, func(f []byte) { f[len(f)-7] = 2 }), verdict: verdictMalformed},
		{name: "truncated", frame: multicastNS()[:ethHeaderLen+30], verdict: verdictMalformed},
		{name: "UDP", frame: udp, verdict: verdictIgnored},
		{name: "our own frame", frame: nsFrom(t, snmMAC, ourMAC, ourLL, snm, vip6, ourMAC), verdict: verdictIgnored},
		{name: "router solicitation", frame: mutate(nsFrom(t, snmMAC, peerMAC, peerLL, snm, vip6, nil), true, func(f []byte) { f[ethHeaderLen+ipv6HeaderLen] = 133 }), verdict: verdictIgnored},
		{name: "NA with TLLA", frame: na(vip6, otherMAC), verdict: verdictIgnored, claimIP: vip6, claimMAC: otherMAC},
		{name: "NA without TLLA", frame: na(vip6, nil), verdict: verdictIgnored, claimIP: vip6, claimMAC: peerMAC},
		{name: "NA carrying our MAC", frame: na(vip6, ourMAC), verdict: verdictIgnored},
		{name: "ARP frame", frame: arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, peerIPv4, zeroMAC, vip4), verdict: verdictIgnored},
		{name: "runt", frame: []byte{0x33, 0x33}, verdict: verdictMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decideNDP(tt.frame, ourMAC, ownsTests)
			if d.verdict != tt.verdict {
				t.Fatalf("verdict %d (%s), want %d", d.verdict, d.reason, tt.verdict)
			}
			if d.claimIP != tt.claimIP || !bytes.Equal(d.claimMAC, tt.claimMAC) {
				t.Errorf("claim %s at %v, want %s at %v", d.claimIP, d.claimMAC, tt.claimIP, tt.claimMAC)
			}
			if tt.verdict != verdictAnswer {
				if d.reply != nil {
					t.Errorf("reply sent for a frame that is not answered")
				}
				return
			}
			checkNA(t, d.reply, vip6, tt.ethDst, tt.ipDst, tt.solicit)
		})
	}
}

// checkNA checks that frame is our advertisement of ip, sent from ip itself
// to ethDst and ipDst, with the Solicited flag solicited.
func checkNA(t *testing.T, frame []byte, ip netip.Addr, ethDst net.HardwareAddr, ipDst netip.Addr, solicited bool) {
	t.Helper()
	if !bytes.Equal(frame[0:6], ethDst) || !bytes.Equal(frame[6:12], ourMAC) {
		t.Errorf("NA frame %v -> %v, want %v -> %v", net.HardwareAddr(frame[6:12]), net.HardwareAddr(frame[0:6]), ourMAC, ethDst)
	}
	h := frame[ethHeaderLen:]
	src := netip.AddrFrom16([16]byte(h[8:24]))
	dst := netip.AddrFrom16([16]byte(h[24:40]))
	if h[0]>>4 != 6 || h[6] != protoICMPv6 || h[7] != 255 || src != ip || dst != ipDst {
		t.Errorf("NA IPv6 header version %d next %d hop limit %d %s -> %s, want 6 58 255 %s -> %s",
			h[0]>>4, h[6], h[7], src, dst, ip, ipDst)
	}
	body := h[ipv6HeaderLen:]
	if int(binary.BigEndian.Uint16(h[4:6])) != len(body) {
		t.Errorf("payload length %d, frame carries %d", binary.BigEndian.Uint16(h[4:6]), len(body))
	}
	if !icmpv6ChecksumOK(src, dst, body) {
		t.Error("bad ICMPv6 checksum")
	}
	m, err := ndp.ParseMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		t.Fatalf("answer is a %T", m)
	}
	if na.TargetAddress != ip || na.Solicited != solicited || !na.Override || na.Router {
		t.Errorf("NA target %s S=%v O=%v R=%v, want %s S=%v O=true R=false", na.TargetAddress, na.Solicited, na.Override, na.Router, ip, solicited)
	}
	if lla := linkLayerOption(na.Options, ndp.Target); !bytes.Equal(lla, ourMAC) {
		t.Errorf("NA target link-layer address %v, want %v", lla, ourMAC)
	}
}

func TestAnnouncementFrames(t *testing.T) {
	g := gratuitousARP(ourMAC, vip4)
	for i, op := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
		var f ethernet.Frame
		var p arp.Packet
		if err := f.UnmarshalBinary(g[i]); err != nil {
			t.Fatal(err)
		}
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.Destination, ethernet.Broadcast) || p.Operation != op ||
			!bytes.Equal(p.SenderHardwareAddr, ourMAC) || p.SenderIP != vip4 || p.TargetIP != vip4 {
			t.Errorf("gratuitous %v: %+v to %v", op, p, f.Destination)
		}
	}

	na, err := unsolicitedNA(ourMAC, vip6)
	if err != nil {
		t.Fatal(err)
	}
	checkNA(t, na, vip6, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, allNodes, false)

	ns, err := probeNS(ourMAC, ourLL, vip6)
	if err != nil {
		t.Fatal(err)
	}
	// Our probe, seen by another announcer that owns vip6, is answered.
	peerOwns := func(ip netip.Addr) bool { return ip == vip6 }
	d := decideNDP(ns, peerMAC, peerOwns)
	if d.verdict != verdictAnswer || !bytes.Equal(d.reply[0:6], ourMAC) {
		t.Fatalf("probe NS not answered by an owner: %+v", d)
	}
	// And its answer is a claim by that peer when it comes back to us.
	back := decideNDP(d.reply, ourMAC, ownsTests)
	if back.claimIP != vip6 || !bytes.Equal(back.claimMAC, peerMAC) {
		t.Errorf("answer to our probe: claim %s at %v, want %s at %v", back.claimIP, back.claimMAC, vip6, peerMAC)
	}
}

func TestChecksum(t *testing.T) {
	f := nsFrom(t, ourMAC, peerMAC, peerLL, vip6, vip6, peerMAC)
	src, dst := peerLL, vip6
	body := f[ethHeaderLen+ipv6HeaderLen:]
	if !icmpv6ChecksumOK(src, dst, body) {
		t.Fatal("checksum of ndp.MarshalMessageChecksum not accepted")
	}
	for i := range body {
		if i == 2 || i == 3 {
			continue
		}
		body[i] ^= 0x10
		if icmpv6ChecksumOK(src, dst, body) {
			t.Errorf("checksum accepted with byte %d changed", i)
		}
		body[i] ^= 0x10
	}
	if icmpv6ChecksumOK(peerIPv6, dst, body) {
		t.Error("checksum accepted from another source address")
	}
	// Odd lengths are padded with a zero byte.
	if icmpv6Sum(src, dst, []byte{1}) != icmpv6Sum(src, dst, []byte{1, 0})-1 {
		// The length in the pseudo-header differs by one, nothing else.
		t.Error("odd-length sum is not zero padded")
	}
}

func TestFiltersAssemble(t *testing.T) {
	if r, err := arpFilter(); err != nil || len(r) == 0 {
		t.Errorf("ARP filter: %d instructions, %v", len(r), err)
	}
	if r, err := ndpFilter(); err != nil || len(r) == 0 {
		t.Errorf("NDP filter: %d instructions, %v", len(r), err)
	}
}

// sameMACs reports whether two MAC lists are equal, in order.
func sameMACs(a, b []net.HardwareAddr) bool {
	return slices.EqualFunc(a, b, func(x, y net.HardwareAddr) bool { return bytes.Equal(x, y) })
}
