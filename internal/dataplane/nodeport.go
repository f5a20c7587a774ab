package dataplane

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Nodeport frontends hand a Service to kube-proxy. kube-proxy owns the
// choice of endpoint (and the Service's traffic policy) at its NodePort,
// but a connection gets one NAT per direction, and the first NAT chain
// that binds it wins: a DNAT of ours to NodeAddr:NodePort would leave
// kube-proxy's NodePort rules unconsulted. So the rewrite is stateless
// and happens before connection tracking: at raw priority the packet's
// destination becomes NodeAddr:NodePort (checksums fixed), and conntrack
// and kube-proxy see an ordinary NodePort connection. NodePortMark on the
// packet tells the mangle chain, after conntrack, to mark the connection;
// at postrouting, after NAT has restored the reply's source to
// NodeAddr:NodePort, the replies of marked connections get VIP:Port back
// as their source. The client only ever sees VIP:Port.

// NodePortMark is the packet and conntrack mark bit of connections that a
// nodeport frontend handed to kube-proxy. It is set with mark | bit, so
// other bits are kept; it lies outside kube-proxy's (0x4000, 0x8000).
const NodePortMark uint32 = 0x00400000

// Priorities of the nodeport chains.
const (
	priorityRaw        int32 = -300     // before conntrack (-200)
	priorityMangle     int32 = -150     // after conntrack, before NAT
	priorityReplySNAT  int32 = 100 + 10 // after NAT restored the reply's source (srcnat)
	chainRawPrerouting       = "np_prerouting"
	chainMangle              = "np_mark"
	chainReplies             = "np_reply"
	mapNodePorts4            = "nodeports4"
	mapNodePorts6            = "nodeports6"
)

// Jump continues in Chain, which returns (an allowed source) or drops.
type Jump struct {
	Chain string
}

// ToNodePort rewrites the packet's destination to To and sets Mark on the
// packet.
type ToNodePort struct {
	Protocol Protocol
	To       netip.AddrPort
	Mark     uint32
}

// MarkConnection sets Mark on the connection of packets that carry it.
type MarkConnection struct {
	Mark uint32
}

// FromNodePort rewrites the source of replies from From (the node's
// address and NodePort) on connections marked Mark to To (the VIP and
// the Service port).
type FromNodePort struct {
	Protocol Protocol
	From, To netip.AddrPort
	Mark     uint32
}

func (Jump) rule()           {}
func (ToNodePort) rule()     {}
func (MarkConnection) rule() {}
func (FromNodePort) rule()   {}

func (r Jump) String() string { return "jump " + r.Chain }

func (r ToNodePort) String() string {
	return fmt.Sprintf("%s daddr set %s %s dport set %d meta mark set meta mark | %#08x", familyOf(r.To.Addr()), r.To.Addr(), r.Protocol, r.To.Port(), r.Mark)
}

func (r MarkConnection) String() string {
	return fmt.Sprintf("meta mark & %#08x != 0 ct mark set ct mark | %#08x", r.Mark, r.Mark)
}

func (r FromNodePort) String() string {
	f := familyOf(r.From.Addr())
	return fmt.Sprintf("ct mark & %#08x != 0 ct direction reply %s saddr %s %s sport %d %s saddr set %s %s sport set %d",
		r.Mark, f, r.From.Addr(), r.Protocol, r.From.Port(), f, r.To.Addr(), r.Protocol, r.To.Port())
}

// l4ChecksumOffset is where the protocol's checksum sits in its header.
func l4ChecksumOffset(p Protocol) uint32 {
	if p == UDP {
		return 6
	}
	return 16 // TCP
}

// rewrite sets an address (at offset in the network header) and a port
// (at portOffset in the transport header), fixing the IPv4 header checksum
// and the transport checksum, which covers both (the address through the
// pseudo-header).
func rewrite(p Protocol, to netip.AddrPort, addrOffset, portOffset uint32) []expr.Any {
	addr := &expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: reg1, Base: expr.PayloadBaseNetworkHeader,
		Offset: addrOffset, Len: uint32(to.Addr().BitLen() / 8), CsumFlags: unix.NFT_PAYLOAD_L4CSUM_PSEUDOHDR}
	if to.Addr().Is4() {
		addr.CsumType, addr.CsumOffset = expr.CsumTypeInet, 10
	}
	return []expr.Any{
		&expr.Immediate{Register: reg1, Data: to.Addr().AsSlice()},
		addr,
		&expr.Immediate{Register: reg1, Data: binaryutil.BigEndian.PutUint16(to.Port())},
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: reg1, Base: expr.PayloadBaseTransportHeader,
			Offset: portOffset, Len: 2, CsumType: expr.CsumTypeInet, CsumOffset: l4ChecksumOffset(p)},
	}
}

// markBitSet is "<key> & bits != 0" for a mark or ct state read by load
// into reg1: true when any of bits is set.
func markBitSet(load expr.Any, bit uint32) []expr.Any {
	return []expr.Any{
		load,
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bit), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}
}

// nodePortExprs turns the nodeport rules into expressions.
func nodePortExprs(r Rule) ([]expr.Any, bool) {
	switch r := r.(type) {
	case Jump:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: r.Chain}}, true

	case ToNodePort:
		in := infoOf(familyOf(r.To.Addr()))
		exprs := rewrite(r.Protocol, r.To, in.daddr, 2)
		return append(exprs,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(^r.Mark), Xor: binaryutil.NativeEndian.PutUint32(r.Mark)},
			&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1, SourceRegister: true},
		), true

	case MarkConnection:
		return append(markBitSet(&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1}, r.Mark), setCtMarkBit(r.Mark)...), true

	case FromNodePort:
		in := infoOf(familyOf(r.From.Addr()))
		exprs := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{in.nfproto}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{byte(r.Protocol)}},
		}
		exprs = append(exprs, markBitSet(&expr.Ct{Key: expr.CtKeyMARK, Register: reg1}, r.Mark)...)
		exprs = append(exprs,
			&expr.Ct{Key: expr.CtKeyDIRECTION, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{1}}, // IP_CT_DIR_REPLY
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: in.saddr, Len: in.len},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: r.From.Addr().AsSlice()},
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(r.From.Port())},
		)
		return append(exprs, rewrite(r.Protocol, r.To, in.saddr, 0)...), true
	}
	return nil, false
}
