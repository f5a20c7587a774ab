package allocator

import (
	"math"
	"math/bits"
	"net/netip"

	"github.com/pharos-lb/pharos/internal/config"
)

// ordinal is an unsigned 128-bit position of an address inside a segment.
type ordinal struct{ hi, lo uint64 }

func (a ordinal) cmp(b ordinal) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func (a ordinal) add(b ordinal) ordinal {
	lo, c := bits.Add64(a.lo, b.lo, 0)
	hi, _ := bits.Add64(a.hi, b.hi, c)
	return ordinal{hi, lo}
}

func (a ordinal) sub(b ordinal) ordinal {
	lo, br := bits.Sub64(a.lo, b.lo, 0)
	hi, _ := bits.Sub64(a.hi, b.hi, br)
	return ordinal{hi, lo}
}

func (a ordinal) inc() ordinal { return a.add(ordinal{0, 1}) }
func (a ordinal) dec() ordinal { return a.sub(ordinal{0, 1}) }

// int64Capped converts to int64, saturating at math.MaxInt64.
func (a ordinal) int64Capped() int64 {
	if a.hi != 0 || a.lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(a.lo)
}

// float64 converts to the nearest float64.
func (a ordinal) float64() float64 {
	return float64(a.hi)*0x1p64 + float64(a.lo)
}

func addrOrdinal(a netip.Addr) ordinal {
	b := a.As16()
	var o ordinal
	for i := 0; i < 8; i++ {
		o.hi = o.hi<<8 | uint64(b[i])
		o.lo = o.lo<<8 | uint64(b[i+8])
	}
	return o
}

func ordinalAddr(o ordinal, v4 bool) netip.Addr {
	var b [16]byte
	for i := 7; i >= 0; i-- {
		b[i] = byte(o.hi)
		b[i+8] = byte(o.lo)
		o.hi >>= 8
		o.lo >>= 8
	}
	a := netip.AddrFrom16(b)
	if v4 {
		return a.Unmap()
	}
	return a
}

// segment maps the addresses of one pool range onto the dense positions
// 0..size-1, skipping the addresses that avoidBuggyIPs excludes, so that
// "lowest free address" becomes "lowest free position" in an interval set.
type segment struct {
	rng       config.Range
	skipBuggy bool   // IPv4 only: positions skip x.x.x.0 and x.x.x.255
	base      uint64 // skipBuggy: usable addresses below rng.First
	size      ordinal
	used      intervalSet
}

func newSegment(r config.Range, avoidBuggy bool) *segment {
	s := &segment{rng: r, skipBuggy: avoidBuggy && r.First.Is4()}
	if s.skipBuggy {
		first, last := v4uint(r.First), v4uint(r.Last)
		s.base = usableBelow(first)
		s.size = ordinal{0, usableBelow(last+1) - s.base}
	} else {
		s.size = addrOrdinal(r.Last).sub(addrOrdinal(r.First)).inc()
	}
	return s
}

func v4uint(a netip.Addr) uint64 {
	b := a.As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

// usableBelow counts the IPv4 addresses below x (x may be 2^32) whose last
// octet is neither 0 nor 255.
func usableBelow(x uint64) uint64 {
	r := x & 0xff
	n := (x >> 8) * 254
	if r > 1 {
		n += r - 1
	}
	return n
}

// position returns the position of a in the segment, if a is one of its
// assignable addresses.
func (s *segment) position(a netip.Addr) (ordinal, bool) {
	if !s.rng.Contains(a) {
		return ordinal{}, false
	}
	if s.skipBuggy {
		if config.IsBuggy(a) {
			return ordinal{}, false
		}
		return ordinal{0, usableBelow(v4uint(a)) - s.base}, true
	}
	return addrOrdinal(a).sub(addrOrdinal(s.rng.First)), true
}

// address is the inverse of position.
func (s *segment) address(p ordinal) netip.Addr {
	if s.skipBuggy {
		g := p.lo + s.base
		v := (g/254)<<8 | (g%254 + 1)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return ordinalAddr(addrOrdinal(s.rng.First).add(p), s.rng.First.Is4())
}

// lowestFree returns the lowest unassigned address of the segment.
func (s *segment) lowestFree() (netip.Addr, bool) {
	p, ok := s.used.lowestAbsent(s.size)
	if !ok {
		return netip.Addr{}, false
	}
	return s.address(p), true
}
