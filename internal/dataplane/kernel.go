package dataplane

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// This file turns a Ruleset into nftables netlink messages, queued on a
// Conn; the caller sends them as one batch with Conn.Flush.
//
// Registers: nftables has four 16-byte registers (1-4) that overlap
// sixteen 4-byte ones (8-23: register 1 is 8-11, register 2 is 12-15).
// A concatenation puts each field in the next 4-byte register after the
// previous field, rounded up, which is also how map keys are laid out:
// every field padded to a multiple of 4 bytes.
const (
	reg1     = unix.NFT_REG_1
	reg2     = unix.NFT_REG_2
	reg32_00 = unix.NFT_REG32_00
)

// elementsPerMessage bounds the elements of one NEWSETELEM message: the
// element list is one netlink attribute, whose length is 16 bits.
const elementsPerMessage = 256

var (
	keyType4 = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	keyType6 = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
)

// addrInfo describes where a family's addresses sit in the IP header.
type addrInfo struct {
	nfproto      byte
	saddr, daddr uint32 // offsets in the network header
	len          uint32
}

func infoOf(f Family) addrInfo {
	if f == IPv6 {
		return addrInfo{nfproto: unix.NFPROTO_IPV6, saddr: 8, daddr: 24, len: 16}
	}
	return addrInfo{nfproto: unix.NFPROTO_IPV4, saddr: 12, daddr: 16, len: 4}
}

// queue queues the messages that delete table (if it exists) and build rs
// in its place.
func queue(c *nftables.Conn, table string, rs *Ruleset, carried map[string]counterValue) error {
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	// Add (a no-op if it exists), delete, add: the batch works whether or
	// not the table exists, and replaces it whole.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)

	for _, ctr := range rs.Counters {
		v := carried[ctr.Name]
		c.AddObj(&nftables.CounterObj{Table: t, Name: ctr.Name, Packets: v.packets, Bytes: v.bytes})
	}
	accept := nftables.ChainPolicyAccept
	chains := make(map[string]*nftables.Chain, len(rs.Chains))
	for _, ch := range rs.Chains {
		nc := &nftables.Chain{Name: ch.Name, Table: t}
		if h := ch.Hook; h != nil {
			nc.Type = nftables.ChainType(h.Type)
			nc.Hooknum = nftables.ChainHookRef(hookNum(h.Hook))
			nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(h.Priority))
			nc.Policy = &accept
		}
		chains[ch.Name] = c.AddChain(nc)
	}
	// Maps after the chains their elements jump to, rules after the
	// chains and maps they name.
	for _, m := range rs.Maps {
		if err := queueMap(c, t, m); err != nil {
			return err
		}
	}
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			exprs, err := ruleExprs(c, t, r)
			if err != nil {
				return fmt.Errorf("dataplane: chain %s: rule %q: %w", ch.Name, r, err)
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: chains[ch.Name], Exprs: exprs})
		}
	}
	return nil
}

func hookNum(name string) nftables.ChainHook {
	switch name {
	case "prerouting":
		return *nftables.ChainHookPrerouting
	case "output":
		return *nftables.ChainHookOutput
	case "postrouting":
		return *nftables.ChainHookPostrouting
	}
	panic("dataplane: unknown hook " + name) // Plan writes only the three above
}

func queueMap(c *nftables.Conn, t *nftables.Table, m Map) error {
	set := &nftables.Set{
		Table:         t,
		Name:          m.Name,
		IsMap:         true,
		Concatenation: true,
		KeyType:       keyType4,
		DataType:      nftables.TypeVerdict,
	}
	if m.Family == IPv6 {
		set.KeyType = keyType6
	}
	if err := c.AddSet(set, nil); err != nil {
		return fmt.Errorf("dataplane: map %s: %w", m.Name, err)
	}
	elems := make([]nftables.SetElement, 0, len(m.Elements))
	for _, e := range m.Elements {
		elems = append(elems, nftables.SetElement{
			Key:         mapKey(e),
			VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: e.Chain},
			Comment:     e.Service,
		})
	}
	for len(elems) > 0 {
		n := min(len(elems), elementsPerMessage)
		if err := c.SetAddElements(set, elems[:n]); err != nil {
			return fmt.Errorf("dataplane: map %s: %w", m.Name, err)
		}
		elems = elems[n:]
	}
	return nil
}

// mapKey lays out daddr . l4proto . dport, each padded to 4 bytes.
func mapKey(e MapElement) []byte {
	k := e.VIP.AsSlice()
	k = append(k, byte(e.Protocol), 0, 0, 0)
	k = binary.BigEndian.AppendUint16(k, e.Port)
	return append(k, 0, 0)
}

func ruleExprs(c *nftables.Conn, t *nftables.Table, r Rule) ([]expr.Any, error) {
	if exprs, ok := nodePortExprs(r); ok {
		return exprs, nil
	}
	switch r := r.(type) {
	case Dispatch:
		in := infoOf(r.Family)
		// The 4-byte registers after the address: 1 for v4, 4 for v6.
		next := uint32(reg32_00) + in.len/4
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{in.nfproto}},
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: in.daddr, Len: in.len},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: next},
			&expr.Payload{DestRegister: next + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: reg1, SetName: r.Map, DestRegister: 0, IsDestRegSet: true},
		}, nil

	case AllowSource:
		in := infoOf(familyOf(r.Prefix.Addr()))
		mask := make([]byte, in.len)
		for i := 0; i < r.Prefix.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		return []expr.Any{
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: in.saddr, Len: in.len},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: in.len, Mask: mask, Xor: make([]byte, in.len)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: r.Prefix.Addr().AsSlice()},
			&expr.Verdict{Kind: expr.VerdictReturn},
		}, nil

	case Refuse:
		exprs := []expr.Any{&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: r.Counter}}
		if r.Reject {
			return append(exprs, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}), nil
		}
		return append(exprs, &expr.Verdict{Kind: expr.VerdictDrop}), nil

	case Spread:
		in := infoOf(r.Family)
		// A constant anonymous map from hash value to goto; it lives and
		// dies with the rule.
		set := &nftables.Set{
			Table:        t,
			Anonymous:    true,
			Constant:     true,
			IsMap:        true,
			KeyType:      nftables.TypeInteger,
			DataType:     nftables.TypeVerdict,
			KeyByteOrder: binaryutil.NativeEndian,
		}
		elems := make([]nftables.SetElement, len(r.Chains))
		for i, ch := range r.Chains {
			elems[i] = nftables.SetElement{
				// The hash result is a host-order integer.
				Key:         binaryutil.NativeEndian.PutUint32(uint32(i)),
				VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: ch},
			}
		}
		if err := c.AddSet(set, elems); err != nil {
			return nil, err
		}
		// saddr from register 2 on, sport in the 4-byte register after
		// it; the hash covers both, padding included (zeroed by the
		// load), and lands in register 1.
		sport := uint32(reg32_00) + 4 + in.len/4
		return []expr.Any{
			&expr.Payload{DestRegister: reg2, Base: expr.PayloadBaseNetworkHeader, Offset: in.saddr, Len: in.len},
			&expr.Payload{DestRegister: sport, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			// The seed must be sent: without one the kernel picks a
			// random seed per rule, and nodes would disagree.
			&expr.Hash{SourceRegister: reg2, DestRegister: reg1, Length: in.len + 4, Modulus: uint32(len(r.Chains)), Seed: r.Seed, Type: expr.HashTypeJenkins},
			&expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID, DestRegister: 0, IsDestRegSet: true},
		}, nil

	case DNAT:
		var exprs []expr.Any
		if r.Mark {
			exprs = append(exprs, setCtMarkBit(MasqueradeMark)...)
		}
		fam := familyOf(r.To.Addr())
		return append(exprs,
			&expr.Immediate{Register: reg1, Data: r.To.Addr().AsSlice()},
			&expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(r.To.Port())},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(infoOf(fam).nfproto),
				RegAddrMin: reg1, RegProtoMin: reg2, Specified: true},
		), nil

	case TrackConnections:
		return markBitSet(&expr.Ct{Key: expr.CtKeySTATE, Register: reg1}, ctStateNew|ctStateRelated), nil

	case Masquerade:
		return append(markBitSet(&expr.Ct{Key: expr.CtKeyMARK, Register: reg1}, r.Mark), &expr.Masq{}), nil
	}
	return nil, fmt.Errorf("unknown rule type %T", r)
}

// Connection states as ct state matches them (the kernel's
// NF_CT_STATE_BIT of each ctinfo).
const (
	ctStateRelated = 1 << 2
	ctStateNew     = 1 << 3
)

// setCtMarkBit is ct mark set ct mark | bit: the mark is a host-order
// integer, and the other bits are kept.
func setCtMarkBit(bit uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^bit), Xor: binaryutil.NativeEndian.PutUint32(bit)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg1, SourceRegister: true},
	}
}
