package layer2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
)

// This file holds the pure packet logic: given the bytes of one received
// Ethernet frame, decide whether to answer, ignore it or note who claims an
// address, and build the frames we send. Nothing here touches a socket, so
// the fuzz tests can prove without root that no input makes it panic or
// answer for an address we do not own.

// Sizes and constants of the wire formats we read and write.
const (
	ethHeaderLen  = 14
	ipv6HeaderLen = 40
	// minFrameLen is the 802.3 minimum frame size without the FCS. Most
	// drivers pad short frames themselves, but not all (veth does not), so
	// we pad ARP frames (42 bytes) ourselves.
	minFrameLen = 60

	protoICMPv6 = 58
	// ndpHopLimit is the hop limit RFC 4861 requires on every NDP message:
	// a router decrements it, so 255 proves the sender is on our link.
	ndpHopLimit = 255

	icmpTypeNS = 135
	icmpTypeNA = 136

	// packetOutgoing is the kernel's PACKET_OUTGOING packet type.
	packetOutgoing = 4
)

var (
	// zeroMAC is the target hardware address of ARP requests (RFC 5227).
	zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	// allNodes is ff02::1, where unsolicited and DAD-answering Neighbor
	// Advertisements go (RFC 4861 7.2.4, 7.2.6).
	allNodes = netip.MustParseAddr("ff02::1")
)

// verdict classifies a received frame for the counters and the debug log.
type verdict int

const (
	// verdictIgnored: well formed, but not something we answer.
	verdictIgnored verdict = iota
	// verdictMalformed: could not be parsed or broke a validity rule.
	verdictMalformed
	// verdictAnswer: reply holds the frame to send back.
	verdictAnswer
)

// decision is what a received frame means to the Announcer.
type decision struct {
	verdict verdict
	// reason says why a frame was ignored or malformed, for the debug log.
	reason string
	// target is the address the frame asked about, when it asked about one.
	target netip.Addr
	// reply is a complete Ethernet frame to send, for verdictAnswer.
	reply []byte
	// claimIP and claimMAC are set when the frame shows another station
	// using claimIP (an ARP packet's sender, a Neighbor Advertisement's
	// target). Probe uses them to find other owners of an address.
	claimIP  netip.Addr
	claimMAC net.HardwareAddr
}

func ignored(reason string) decision   { return decision{verdict: verdictIgnored, reason: reason} }
func malformed(reason string) decision { return decision{verdict: verdictMalformed, reason: reason} }

// isUnicastMAC reports whether mac is a 6-byte individual address (the I/G
// bit clear, and not all zeros). Replies must only ever go to such an
// address: answering a multicast "sender" would flood the LAN.
func isUnicastMAC(mac net.HardwareAddr) bool {
	return len(mac) == 6 && mac[0]&1 == 0 && !bytes.Equal(mac, zeroMAC)
}

// decideARP decides what to do with one received frame on the ARP socket.
// mac is our interface's address; owns says whether we own an IPv4
// address. We answer only requests, only for owned targets, and only when
// the frame was broadcast or sent to us (a unicast request for another MAC,
// seen in promiscuous mode, is someone else's business).
func decideARP(frame []byte, mac net.HardwareAddr, owns func(netip.Addr) bool) decision {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil {
		return malformed("short Ethernet frame")
	}
	if f.VLAN != nil || f.ServiceVLAN != nil {
		// The kernel strips our interface's own tag; a tagged frame
		// belongs to another broadcast domain.
		return ignored("VLAN-tagged frame")
	}
	if f.EtherType != ethernet.EtherTypeARP {
		return ignored("not ARP")
	}
	if bytes.Equal(f.Source, mac) {
		return ignored("our own frame")
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return malformed("truncated ARP packet")
	}
	if p.HardwareType != 1 || p.ProtocolType != uint16(ethernet.EtherTypeIPv4) ||
		p.HardwareAddrLength != 6 || p.IPLength != 4 {
		return ignored("ARP for another hardware or protocol type")
	}
	if bytes.Equal(p.SenderHardwareAddr, mac) {
		return ignored("our own ARP packet")
	}
	if !isUnicastMAC(p.SenderHardwareAddr) {
		return malformed("ARP sender hardware address is not unicast")
	}

	var d decision
	d.target = p.TargetIP
	// Any ARP packet with a sender address, request or reply, gratuitous
	// or not, shows that station using that address.
	if !p.SenderIP.IsUnspecified() {
		d.claimIP, d.claimMAC = p.SenderIP, p.SenderHardwareAddr
	}
	switch p.Operation {
	case arp.OperationRequest:
	case arp.OperationReply:
		d.verdict, d.reason = verdictIgnored, "ARP reply"
		return d
	default:
		d.verdict, d.reason = verdictMalformed, "unknown ARP operation"
		return d
	}
	if !bytes.Equal(f.Destination, ethernet.Broadcast) && !bytes.Equal(f.Destination, mac) {
		d.verdict, d.reason = verdictIgnored, "ARP request addressed to another station"
		return d
	}
	if !owns(p.TargetIP) {
		d.verdict, d.reason = verdictIgnored, "ARP request for an address we do not own"
		return d
	}
	if p.SenderIP == p.TargetIP {
		// A gratuitous request: another station announcing our address.
		// Replying would not change its mind; Probe reports it instead.
		d.verdict, d.reason = verdictIgnored, "gratuitous ARP from another station"
		return d
	}
	// The reply goes to the requester's hardware address, on both layers.
	// A sender IP of 0.0.0.0 is an RFC 5227 probe: the answer then carries
	// 0.0.0.0 back, which is what the prober expects.
	d.verdict = verdictAnswer
	d.reply = arpFrame(arp.OperationReply, p.SenderHardwareAddr, mac, p.TargetIP, p.SenderHardwareAddr, p.SenderIP)
	return d
}

// arpFrame builds an Ethernet frame carrying one Ethernet/IPv4 ARP packet
// sent by us (sender hardware address = our MAC, also the frame's source).
func arpFrame(op arp.Operation, dstMAC, mac net.HardwareAddr, senderIP netip.Addr, targetMAC net.HardwareAddr, targetIP netip.Addr) []byte {
	b := make([]byte, minFrameLen)
	copy(b[0:6], dstMAC)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], uint16(ethernet.EtherTypeARP))
	p := b[ethHeaderLen:]
	binary.BigEndian.PutUint16(p[0:2], 1) // Ethernet
	binary.BigEndian.PutUint16(p[2:4], uint16(ethernet.EtherTypeIPv4))
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], uint16(op))
	copy(p[8:14], mac)
	s4, t4 := senderIP.As4(), targetIP.As4()
	copy(p[14:18], s4[:])
	copy(p[18:24], targetMAC)
	copy(p[24:28], t4[:])
	return b
}

// gratuitousARP returns the announcement burst element for ip: a request
// and a reply, both broadcast with sender = target = ip and our MAC. Both
// kinds are sent because hosts differ in which one updates their cache.
func gratuitousARP(mac net.HardwareAddr, ip netip.Addr) [2][]byte {
	return [2][]byte{
		arpFrame(arp.OperationRequest, ethernet.Broadcast, mac, ip, zeroMAC, ip),
		arpFrame(arp.OperationReply, ethernet.Broadcast, mac, ip, ethernet.Broadcast, ip),
	}
}

// decideNDP decides what to do with one received frame on the IPv6 socket
// (whose BPF filter passes only ICMPv6 Neighbor Solicitations and
// Advertisements, but the function checks everything itself). mac is our
// interface's address; owns says whether we own an IPv6 address.
//
// It applies RFC 4861 7.1.1's validity checks: hop limit 255 (so the sender
// is on-link), a correct checksum, code 0, a non-multicast target, and for
// a solicitation from the unspecified address (DAD), a solicited-node
// destination and no source link-layer address option.
func decideNDP(frame []byte, mac net.HardwareAddr, owns func(netip.Addr) bool) decision {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil {
		return malformed("short Ethernet frame")
	}
	if f.VLAN != nil || f.ServiceVLAN != nil {
		return ignored("VLAN-tagged frame")
	}
	if f.EtherType != ethernet.EtherTypeIPv6 {
		return ignored("not IPv6")
	}
	if bytes.Equal(f.Source, mac) {
		return ignored("our own frame")
	}
	h := f.Payload
	if len(h) < ipv6HeaderLen {
		return malformed("truncated IPv6 header")
	}
	if h[0]>>4 != 6 {
		return malformed("IP version is not 6")
	}
	plen := int(binary.BigEndian.Uint16(h[4:6]))
	if len(h)-ipv6HeaderLen < plen {
		return malformed("truncated IPv6 payload")
	}
	if h[6] != protoICMPv6 {
		// NDP messages carry no extension headers in practice; anything
		// else is not NDP.
		return ignored("not ICMPv6")
	}
	src := netip.AddrFrom16([16]byte(h[8:24]))
	dst := netip.AddrFrom16([16]byte(h[24:40]))
	// Drop the Ethernet padding, if any: the IPv6 length is authoritative.
	body := h[ipv6HeaderLen : ipv6HeaderLen+plen]
	if len(body) < 4 {
		return malformed("truncated ICMPv6 header")
	}
	if body[0] != icmpTypeNS && body[0] != icmpTypeNA {
		return ignored("ICMPv6 but not a neighbor solicitation or advertisement")
	}
	if h[7] != ndpHopLimit {
		return malformed("NDP hop limit is not 255")
	}
	if !icmpv6ChecksumOK(src, dst, body) {
		return malformed("bad ICMPv6 checksum")
	}
	if body[1] != 0 {
		return malformed("NDP code is not 0")
	}
	if src.IsMulticast() {
		return malformed("multicast IPv6 source")
	}
	m, err := ndp.ParseMessage(body)
	if err != nil {
		return malformed("unparsable NDP message")
	}

	switch m := m.(type) {
	case *ndp.NeighborAdvertisement:
		d := ignored("neighbor advertisement")
		d.target = m.TargetAddress
		if m.TargetAddress.IsMulticast() {
			return malformed("multicast NA target")
		}
		// The advertiser's address is in the Target link-layer address
		// option; without one (allowed for solicited unicast NAs) the
		// frame's source is the best we have.
		claim := linkLayerOption(m.Options, ndp.Target)
		if claim == nil {
			claim = f.Source
		}
		if isUnicastMAC(claim) && !bytes.Equal(claim, mac) {
			d.claimIP, d.claimMAC = m.TargetAddress, claim
		}
		return d

	case *ndp.NeighborSolicitation:
		target := m.TargetAddress
		if target.IsMulticast() {
			return malformed("multicast NS target")
		}
		snm, err := ndp.SolicitedNodeMulticast(target)
		if err != nil {
			return malformed("NS target is not IPv6")
		}
		srcLLA := linkLayerOption(m.Options, ndp.Source)
		if src.IsUnspecified() {
			if dst != snm {
				return malformed("DAD solicitation not sent to the solicited-node group")
			}
			if srcLLA != nil {
				return malformed("DAD solicitation with a source link-layer address")
			}
		}
		d := ignored("")
		d.target = target
		// A multicast NS goes to the target's solicited-node group, a
		// unicast one (NUD) to the target itself.
		if dst != snm && dst != target {
			d.reason = "NS sent to neither the target nor its solicited-node group"
			return d
		}
		if f.Destination[0]&1 == 0 && !bytes.Equal(f.Destination, mac) {
			d.reason = "NS addressed to another station"
			return d
		}
		if !owns(target) {
			d.reason = "NS for an address we do not own"
			return d
		}

		na := &ndp.NeighborAdvertisement{
			Solicited:     true,
			Override:      true,
			TargetAddress: target,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
		}
		dstIP, dstMAC := src, srcLLA
		if src.IsUnspecified() {
			// DAD: the prober has no address yet, so the answer goes to
			// all nodes and, per RFC 4861 7.2.4, is not "solicited".
			dstIP, dstMAC, na.Solicited = allNodes, multicastMAC(allNodes), false
		} else {
			if !isUnicastMAC(dstMAC) {
				// No usable source link-layer option (NUD probes may
				// omit it): answer the frame's sender.
				dstMAC = f.Source
			}
			if !isUnicastMAC(dstMAC) {
				return malformed("NS from a non-unicast hardware address")
			}
		}
		// The answer comes from the target itself, as a kernel's answer
		// for its own address does (RFC 4861 4.4: an address of the
		// sending interface, which target logically is), not from our
		// link-local address: resolvers may check the source, and
		// ndisc6 (1.0.5) ignores an advertisement for a unicast target
		// from any other address, then reports a time-out.
		reply, err := ndpFrame(dstMAC, mac, target, dstIP, na)
		if err != nil {
			return malformed("cannot build the advertisement")
		}
		d.verdict, d.reply = verdictAnswer, reply
		return d
	}
	return ignored("other NDP message")
}

// linkLayerOption returns the hardware address of the first link-layer
// address option with direction dir, or nil.
func linkLayerOption(opts []ndp.Option, dir ndp.Direction) net.HardwareAddr {
	for _, o := range opts {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == dir {
			return lla.Addr
		}
	}
	return nil
}

// multicastMAC maps an IPv6 multicast address to its Ethernet group
// address, 33:33 followed by the address's last 32 bits (RFC 2464 7).
func multicastMAC(ip netip.Addr) net.HardwareAddr {
	b := ip.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// ndpFrame builds a complete Ethernet frame carrying the NDP message m
// from src to dst, with hop limit 255 and the ICMPv6 checksum filled in.
//
// We build frames ourselves instead of writing through the kernel's ICMPv6
// socket because the kernel would route the answer and resolve the
// destination's MAC itself: slower, and wrong for a solicitor outside our
// interface's prefixes (the answer would leave through the default route).
func ndpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, m ndp.Message) ([]byte, error) {
	body, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		return nil, err
	}
	b := make([]byte, ethHeaderLen+ipv6HeaderLen+len(body))
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], uint16(ethernet.EtherTypeIPv6))
	h := b[ethHeaderLen:]
	h[0] = 6 << 4
	binary.BigEndian.PutUint16(h[4:6], uint16(len(body)))
	h[6], h[7] = protoICMPv6, ndpHopLimit
	s, d := src.As16(), dst.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	copy(h[ipv6HeaderLen:], body)
	return b, nil
}

// unsolicitedNA returns the frame announcing that ip is now at mac: a
// Neighbor Advertisement to all nodes with Override set, so that neighbors
// replace whatever they had cached (RFC 4861 7.2.6). Like our answers, and
// like a kernel's announcement of its own address, it comes from ip.
func unsolicitedNA(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: ip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	return ndpFrame(multicastMAC(allNodes), mac, ip, allNodes, na)
}

// probeNS returns a Neighbor Solicitation for ip, multicast to its
// solicited-node group, from our link-local address and MAC.
func probeNS(mac net.HardwareAddr, linkLocal, ip netip.Addr) ([]byte, error) {
	snm, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return nil, err
	}
	ns := &ndp.NeighborSolicitation{
		TargetAddress: ip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}},
	}
	return ndpFrame(multicastMAC(snm), mac, linkLocal, snm, ns)
}

// icmpv6ChecksumOK verifies an ICMPv6 message's checksum over the IPv6
// pseudo-header (RFC 8200 8.1). The kernel checks it for ICMPv6 sockets,
// but frames from a packet socket reach us unchecked.
func icmpv6ChecksumOK(src, dst netip.Addr, body []byte) bool {
	return icmpv6Sum(src, dst, body) == 0xffff
}

// icmpv6Sum returns the folded one's complement sum of the pseudo-header
// and body; a message with a correct checksum sums to 0xffff.
func icmpv6Sum(src, dst netip.Addr, body []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(body)))
	l[7] = protoICMPv6
	add(l[:])
	add(body)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// maxFilterAddrs is the most addresses of one family (owned and probed
// together) that the socket filters list, one instruction each, well
// within the kernel's 4,096 instructions. With more, the permissive
// filters (arpFilter, ndpFilter) pass every ARP or NDP frame and the
// decision functions sort them out.
const maxFilterAddrs = 3000

// acceptFrame is what a filter returns to pass a whole frame.
const acceptFrame = 0xffff

// arpOwnedFilter is the BPF program of the ARP socket while we own owned
// and probe probing (their IPv4 addresses; the others are skipped): only
// ARP requests for an owned address, and ARP packets of any operation
// sent by a probed address, reach us. Everything else is dropped in the
// kernel, before it is queued to our socket, so that a flood of requests
// for other addresses costs us nothing and cannot push a request for an
// owned address out of the socket's queue. The filter passes every frame
// that decideARP would answer or take as a claim for a probed address;
// the decision functions still check everything themselves.
func arpOwnedFilter(owned, probing []netip.Addr) ([]bpf.RawInstruction, error) {
	m, ok := arpMatch(owned, probing)
	if !ok {
		return arpFilter()
	}
	return bpf.Assemble(append(dropOutgoing(), m...))
}

// arpMatch is arpOwnedFilter's program after the outgoing check, which
// golang.org/x/net/bpf's VM can run (it lacks the packet type), or false
// with more than maxFilterAddrs addresses.
func arpMatch(owned, probing []netip.Addr) ([]bpf.Instruction, bool) {
	targets, senders := ipv4Words(owned), ipv4Words(probing)
	if len(targets)+len(senders) > maxFilterAddrs {
		return nil, false
	}
	const (
		offOp     = ethHeaderLen + 6
		offSender = ethHeaderLen + 14
		offTarget = ethHeaderLen + 24
	)
	requests := append([]bpf.Instruction{bpf.LoadAbsolute{Off: offTarget, Size: 4}}, matchAny(targets)...)
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offOp, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(arp.OperationRequest), SkipTrue: 1},
		bpf.Jump{Skip: uint32(len(requests))},
	}
	prog = append(prog, requests...)
	// Requests for other addresses, and replies, fall through to here.
	prog = append(prog, bpf.LoadAbsolute{Off: offSender, Size: 4})
	prog = append(prog, matchAny(senders)...)
	return append(prog, bpf.RetConstant{Val: 0}), true
}

// ndpOwnedFilter is the BPF program of the IPv6 socket while we own owned
// and probe probing (their IPv6 addresses; the others are skipped): only
// Neighbor Solicitations for an owned address and Neighbor Advertisements
// for a probed one reach us, as far as the target's last 32 bits tell
// (one comparison per address; decideNDP checks the whole target).
func ndpOwnedFilter(owned, probing []netip.Addr) ([]bpf.RawInstruction, error) {
	m, ok := ndpMatch(owned, probing)
	if !ok {
		return ndpFilter()
	}
	return bpf.Assemble(append(dropOutgoing(), m...))
}

// ndpMatch is ndpOwnedFilter's program after the outgoing check, or false
// with more than maxFilterAddrs addresses.
func ndpMatch(owned, probing []netip.Addr) ([]bpf.Instruction, bool) {
	solicited, advertised := ipv6LowWords(owned), ipv6LowWords(probing)
	if len(solicited)+len(advertised) > maxFilterAddrs {
		return nil, false
	}
	const (
		offNextHeader = ethHeaderLen + 6
		offICMPType   = ethHeaderLen + ipv6HeaderLen
		// The target's last 32 bits, after type, code, checksum and 4
		// bytes of flags or reserved, in both messages.
		offTargetLow = offICMPType + 8 + 12
	)
	ns := append([]bpf.Instruction{bpf.LoadAbsolute{Off: offTargetLow, Size: 4}}, matchAny(solicited)...)
	ns = append(ns, bpf.RetConstant{Val: 0})
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offNextHeader, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoICMPv6, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.LoadAbsolute{Off: offICMPType, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpTypeNS, SkipTrue: 1},
		bpf.Jump{Skip: uint32(len(ns))},
	}
	prog = append(prog, ns...)
	// Not a solicitation: an advertisement for a probed address, or
	// nothing.
	prog = append(prog,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpTypeNA, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.LoadAbsolute{Off: offTargetLow, Size: 4})
	prog = append(prog, matchAny(advertised)...)
	return append(prog, bpf.RetConstant{Val: 0}), true
}

// dropOutgoing starts every filter: frames we send ourselves are dropped.
// A socket bound to one protocol does not see outgoing frames today, but
// the filter keeps that true whatever the kernel does.
func dropOutgoing() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: packetOutgoing, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
	}
}

// matchAny passes the frame if register A equals one of vals and falls
// through otherwise. Conditional jumps reach at most 255 instructions, so
// the comparisons come in blocks, each followed by its own accept.
func matchAny(vals []uint32) []bpf.Instruction {
	const block = 200
	var out []bpf.Instruction
	for len(vals) > 0 {
		n := min(len(vals), block)
		for i, v := range vals[:n] {
			// Skip the rest of the block and its jump, to the accept.
			out = append(out, bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: uint8(n - i)})
		}
		out = append(out, bpf.Jump{Skip: 1}, bpf.RetConstant{Val: acceptFrame})
		vals = vals[n:]
	}
	return out
}

// ipv4Words returns the IPv4 addresses among ips as big-endian words,
// sorted and without duplicates.
func ipv4Words(ips []netip.Addr) []uint32 {
	var out []uint32
	for _, ip := range ips {
		if ip = ip.Unmap(); ip.Is4() {
			b := ip.As4()
			out = append(out, binary.BigEndian.Uint32(b[:]))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ipv6LowWords returns the last 32 bits of the IPv6 addresses among ips,
// sorted and without duplicates.
func ipv6LowWords(ips []netip.Addr) []uint32 {
	var out []uint32
	for _, ip := range ips {
		if ip.Is6() && !ip.Is4In6() {
			b := ip.As16()
			out = append(out, binary.BigEndian.Uint32(b[12:]))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// arpFilter is the BPF program of the ARP socket: everything but frames we
// send ourselves. A socket bound to one protocol does not see outgoing
// frames today, but the filter keeps that true whatever the kernel does.
func arpFilter() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	})
}

// ndpFilter is the BPF program of the IPv6 socket: only incoming ICMPv6
// Neighbor Solicitations and Advertisements without extension headers, so
// that the node's IPv6 traffic is not copied to us.
func ndpFilter() ([]bpf.RawInstruction, error) {
	const (
		offNextHeader = ethHeaderLen + 6
		offICMPType   = ethHeaderLen + ipv6HeaderLen
	)
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipTrue: 5},
		bpf.LoadAbsolute{Off: offNextHeader, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 3},
		bpf.LoadAbsolute{Off: offICMPType, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpTypeNS, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpTypeNA, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 0xffff},
	})
}
