package config

import (
	"fmt"
	"math/big"
	"net/netip"
	"strings"
)

// Family is an IP address family.
type Family int

const (
	// IPv4 is the IPv4 family.
	IPv4 Family = 4
	// IPv6 is the IPv6 family.
	IPv6 Family = 6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// FamilyOf returns the family of a valid address.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// Range is an inclusive range of addresses of one family.
type Range struct {
	First netip.Addr
	Last  netip.Addr
}

// Family returns the family of the range's addresses.
func (r Range) Family() Family { return FamilyOf(r.First) }

// Contains reports whether a lies in the range.
func (r Range) Contains(a netip.Addr) bool {
	return a.IsValid() && a.BitLen() == r.First.BitLen() && r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// Overlaps reports whether the two ranges share an address.
func (r Range) Overlaps(o Range) bool {
	if r.First.BitLen() != o.First.BitLen() {
		return false
	}
	return r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

// Size returns the number of addresses in the range.
func (r Range) Size() *big.Int {
	n := new(big.Int).Sub(new(big.Int).SetBytes(r.Last.AsSlice()), new(big.Int).SetBytes(r.First.AsSlice()))
	return n.Add(n, big.NewInt(1))
}

// String renders the range as "first-last", or as the address alone when the
// range holds one address.
func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// ParseAddress parses one IP address as written by a user: no zone, and no
// IPv4-mapped IPv6 form, because both would compare unequal to the address a
// client actually uses.
func ParseAddress(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has an IPv6 zone; write the address without %%%s", s, a.Zone())
	}
	if a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write it as %s", s, a.Unmap())
	}
	return a, nil
}

// ParseRange parses one entry of IPAddressPool spec.addresses: a CIDR with no
// host bits set ("198.18.100.0/24") or an inclusive range of two addresses of
// one family ("198.18.100.10-198.18.100.20").
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Range{}, fmt.Errorf("empty address entry; write a CIDR such as 198.18.100.0/24 or a range such as 198.18.100.10-198.18.100.20")
	}
	if strings.Contains(s, "/") {
		if strings.Contains(s, "-") {
			return Range{}, fmt.Errorf("%q mixes a CIDR and a range; write either 198.18.100.0/24 or 198.18.100.10-198.18.100.20", s)
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, fmt.Errorf("%q is not a valid CIDR (for example 198.18.100.0/24 or 2001:db8:100::/64)", s)
		}
		if p.Addr().Is4In6() {
			return Range{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix; write the IPv4 prefix instead", s)
		}
		if p.Masked() != p {
			return Range{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
		}
		return noMapped(s, prefixRange(p))
	}
	parts := strings.Split(s, "-")
	if len(parts) != 2 {
		return Range{}, fmt.Errorf("%q is neither a CIDR nor a range; write 198.18.100.0/24 or 198.18.100.10-198.18.100.20", s)
	}
	first, err := ParseAddress(parts[0])
	if err != nil {
		return Range{}, fmt.Errorf("range %q: start %w", s, err)
	}
	last, err := ParseAddress(parts[1])
	if err != nil {
		return Range{}, fmt.Errorf("range %q: end %w", s, err)
	}
	if first.BitLen() != last.BitLen() {
		return Range{}, fmt.Errorf("range %q mixes IPv4 and IPv6; put each family in an entry of its own", s)
	}
	if last.Less(first) {
		return Range{}, fmt.Errorf("range %q is reversed: its start is after its end; write %s-%s", s, last, first)
	}
	return noMapped(s, Range{First: first, Last: last})
}

// mapped is ::ffff:0:0/96, the IPv4-mapped IPv6 addresses: no client
// reaches a Service at one (it would use the IPv4 address), and Go's
// netip compares them unequal to it.
var mapped = Range{First: netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff}), Last: netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})}

// noMapped refuses an IPv6 range that reaches into the IPv4-mapped block
// (found by fuzzing: "::/80" holds all of it).
func noMapped(s string, r Range) (Range, error) {
	if r.First.Is6() && r.Overlaps(mapped) {
		return Range{}, fmt.Errorf("%q includes IPv4-mapped IPv6 addresses (::ffff:0:0/96), which no client uses; use a prefix outside them, such as 2001:db8:100::/64", s)
	}
	return r, nil
}

// prefixRange returns the first and last address of a masked prefix.
func prefixRange(p netip.Prefix) Range {
	first := p.Addr()
	b := first.AsSlice()
	bits := p.Bits()
	for i := range b {
		// Set every bit past the prefix length.
		lo := i * 8
		switch {
		case lo >= bits:
			b[i] = 0xff
		case lo+8 > bits:
			b[i] |= byte(0xff >> (bits - lo))
		}
	}
	last, _ := netip.AddrFromSlice(b)
	return Range{First: first, Last: last}
}
