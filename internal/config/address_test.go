package config

import (
	"math/big"
	"net/netip"
	"strings"
	"testing"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func rng(first, last string) Range { return Range{First: addr(first), Last: addr(last)} }

// pow2 returns 2^n.
func pow2(n uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), n) }

// TestParseRange is the specification of an entry of spec.addresses.
func TestParseRange(t *testing.T) {
	valid := []struct {
		name  string
		in    string
		first string
		last  string
	}{
		// IPv4 CIDRs.
		{"IPv4 /24", "198.18.100.0/24", "198.18.100.0", "198.18.100.255"},
		{"IPv4 /32 is one address", "198.18.100.7/32", "198.18.100.7", "198.18.100.7"},
		{"IPv4 /31", "198.18.100.6/31", "198.18.100.6", "198.18.100.7"},
		{"IPv4 /20 ends inside an octet", "10.0.0.0/20", "10.0.0.0", "10.0.15.255"},
		{"IPv4 /9", "10.0.0.0/9", "10.0.0.0", "10.127.255.255"},
		{"IPv4 /0 is every IPv4 address", "0.0.0.0/0", "0.0.0.0", "255.255.255.255"},
		{"IPv4 CIDR with surrounding spaces", "  198.18.100.0/24\t", "198.18.100.0", "198.18.100.255"},

		// IPv6 CIDRs.
		{"IPv6 /64", "2001:db8:100::/64", "2001:db8:100::", "2001:db8:100:0:ffff:ffff:ffff:ffff"},
		{"IPv6 /128 is one address", "2001:db8::1/128", "2001:db8::1", "2001:db8::1"},
		{"IPv6 /120", "2001:db8::100/120", "2001:db8::100", "2001:db8::1ff"},
		{"IPv6 /61 ends inside a byte", "2001:db8::/61", "2001:db8::", "2001:db8:0:7:ffff:ffff:ffff:ffff"},
		{"IPv6 /1: the upper half of IPv6", "8000::/1", "8000::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"IPv6 CIDR in upper case", "2001:DB8:100::/64", "2001:db8:100::", "2001:db8:100:0:ffff:ffff:ffff:ffff"},

		// Ranges.
		{"IPv4 range", "198.18.100.10-198.18.100.20", "198.18.100.10", "198.18.100.20"},
		{"IPv4 range with spaces around the dash", "198.18.100.10 - 198.18.100.20", "198.18.100.10", "198.18.100.20"},
		{"IPv4 range with a space before the dash", "198.18.100.10 -198.18.100.20", "198.18.100.10", "198.18.100.20"},
		{"IPv4 range with a space after the dash", "198.18.100.10- 198.18.100.20", "198.18.100.10", "198.18.100.20"},
		{"IPv4 range with surrounding spaces", " 198.18.100.10-198.18.100.20 ", "198.18.100.10", "198.18.100.20"},
		{"IPv4 range across octets", "198.18.100.250-198.18.101.5", "198.18.100.250", "198.18.101.5"},
		{"IPv4 single-address range", "198.18.100.10-198.18.100.10", "198.18.100.10", "198.18.100.10"},
		{"IPv6 range", "2001:db8::10-2001:db8::20", "2001:db8::10", "2001:db8::20"},
		{"IPv6 range with spaces", "2001:db8::10 - 2001:db8::20", "2001:db8::10", "2001:db8::20"},
		{"IPv6 single-address range", "2001:db8::10-2001:db8::10", "2001:db8::10", "2001:db8::10"},
		{"IPv6 range written with embedded IPv4 (not mapped)", "64:ff9b::198.18.100.1-64:ff9b::198.18.100.2", "64:ff9b::c612:6401", "64:ff9b::c612:6402"},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRange(tc.in)
			if err != nil {
				t.Fatalf("ParseRange(%q) = error %q, want %s-%s", tc.in, err, tc.first, tc.last)
			}
			want := rng(tc.first, tc.last)
			if got != want {
				t.Fatalf("ParseRange(%q) = %v..%v, want %v..%v", tc.in, got.First, got.Last, want.First, want.Last)
			}
		})
	}

	invalid := []struct {
		name string
		in   string
		// want are substrings the error must contain: what is wrong and
		// how to fix it.
		want []string
	}{
		{"empty", "", []string{"empty address entry", "198.18.100.0/24"}},
		{"blank", "   ", []string{"empty address entry"}},
		{"garbage", "banana", []string{`"banana" is neither a CIDR nor a range`, "198.18.100.10-198.18.100.20"}},
		{"bare address is not an entry", "198.18.100.10", []string{"neither a CIDR nor a range"}},
		{"three addresses", "198.18.100.1-198.18.100.2-198.18.100.3", []string{"neither a CIDR nor a range"}},

		{"reversed IPv4 range", "198.18.100.20-198.18.100.10", []string{"reversed", "write 198.18.100.10-198.18.100.20"}},
		{"reversed IPv6 range", "2001:db8::20-2001:db8::10", []string{"reversed", "write 2001:db8::10-2001:db8::20"}},
		{"IPv4 then IPv6", "198.18.100.1-2001:db8::1", []string{"mixes IPv4 and IPv6", "entry of its own"}},
		{"IPv6 then IPv4", "2001:db8::1-198.18.100.1", []string{"mixes IPv4 and IPv6"}},
		{"missing end", "198.18.100.10-", []string{"end", "is not an IP address"}},
		{"missing start", "-198.18.100.10", []string{"start", "is not an IP address"}},
		{"bad octet", "198.18.100.256-198.18.101.1", []string{"start", `"198.18.100.256" is not an IP address`}},

		{"IPv4 CIDR with host bits", "198.18.100.7/24", []string{"host bits", "did you mean 198.18.100.0/24"}},
		{"IPv4 CIDR with host bits below a byte", "10.0.17.0/20", []string{"did you mean 10.0.16.0/20"}},
		{"IPv6 CIDR with host bits", "2001:db8:100::1/64", []string{"host bits", "did you mean 2001:db8:100::/64"}},
		{"IPv4 prefix too long", "198.18.100.0/33", []string{"not a valid CIDR", "198.18.100.0/24"}},
		{"IPv6 prefix too long", "2001:db8::/129", []string{"not a valid CIDR"}},
		{"missing prefix length", "198.18.100.0/", []string{"not a valid CIDR"}},
		{"CIDR and range together", "198.18.100.0/24-198.18.101.0/24", []string{"mixes a CIDR and a range"}},

		{"zone in range start", "fe80::1%eth0-fe80::2", []string{"start", "zone", "without %eth0"}},
		{"zone in range end", "fe80::1-fe80::2%eth0", []string{"end", "zone", "without %eth0"}},
		{"zone in CIDR", "fe80::%eth0/64", []string{"not a valid CIDR"}},
		{"IPv4-mapped range", "::ffff:198.18.100.1-::ffff:198.18.100.2", []string{"IPv4-mapped", "write it as 198.18.100.1"}},
		{"IPv4-mapped range end", "198.18.100.1-::ffff:198.18.100.2", []string{"end", "IPv4-mapped", "write it as 198.18.100.2"}},
		{"IPv4-mapped CIDR", "::ffff:198.18.100.0/120", []string{"IPv4-mapped IPv6 prefix", "IPv4 prefix"}},
		// Found by fuzzing: "::/80" held all of ::ffff:0:0/96.
		{"IPv6 CIDR holding the IPv4-mapped block", "::/80", []string{"includes IPv4-mapped IPv6 addresses", "2001:db8:100::/64"}},
		{"IPv6 /0", "::/0", []string{"includes IPv4-mapped IPv6 addresses"}},
		{"IPv6 range across the IPv4-mapped block", "::1-::1:0:0:1", []string{"includes IPv4-mapped IPv6 addresses"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRange(tc.in)
			if err == nil {
				t.Fatalf("ParseRange(%q) = %v, want an error", tc.in, got)
			}
			if got != (Range{}) {
				t.Errorf("ParseRange(%q) returned %v with its error, want the zero Range", tc.in, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseRange(%q) error %q does not contain %q", tc.in, err, w)
				}
			}
		})
	}
}

// TestParseAddress is the specification of one address written by a user.
func TestParseAddress(t *testing.T) {
	valid := []struct{ in, want string }{
		{"198.18.100.1", "198.18.100.1"},
		{" 198.18.100.1\t", "198.18.100.1"},
		{"0.0.0.0", "0.0.0.0"},
		{"2001:db8::1", "2001:db8::1"},
		{"2001:DB8::1", "2001:db8::1"},
		{"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
		{"::", "::"},
	}
	for _, tc := range valid {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAddress(tc.in)
			if err != nil {
				t.Fatalf("ParseAddress(%q) = error %q, want %s", tc.in, err, tc.want)
			}
			if got != addr(tc.want) {
				t.Fatalf("ParseAddress(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}

	invalid := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", []string{`"" is not an IP address`}},
		{"garbage", "banana", []string{`"banana" is not an IP address`}},
		{"CIDR", "198.18.100.0/24", []string{"is not an IP address"}},
		{"leading zero", "198.018.100.1", []string{"is not an IP address"}},
		{"zone", "fe80::1%eth0", []string{"zone", "without %eth0"}},
		{"IPv4-mapped", "::ffff:198.18.100.1", []string{"IPv4-mapped", "write it as 198.18.100.1"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAddress(tc.in)
			if err == nil {
				t.Fatalf("ParseAddress(%q) = %v, want an error", tc.in, got)
			}
			if got.IsValid() {
				t.Errorf("ParseAddress(%q) returned %v with its error, want the zero Addr", tc.in, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseAddress(%q) error %q does not contain %q", tc.in, err, w)
				}
			}
		})
	}
}

func TestRangeContains(t *testing.T) {
	v4 := rng("198.18.100.10", "198.18.100.20")
	v6 := rng("2001:db8::10", "2001:db8::20")
	tests := []struct {
		name string
		r    Range
		a    netip.Addr
		want bool
	}{
		{"first address", v4, addr("198.18.100.10"), true},
		{"last address", v4, addr("198.18.100.20"), true},
		{"inside", v4, addr("198.18.100.15"), true},
		{"just before", v4, addr("198.18.100.9"), false},
		{"just after", v4, addr("198.18.100.21"), false},
		{"other family", v4, addr("2001:db8::15"), false},
		{"IPv4-mapped form of an address inside", v4, addr("::ffff:198.18.100.15"), false},
		{"zero Addr", v4, netip.Addr{}, false},
		{"IPv6 inside", v6, addr("2001:db8::1a"), true},
		{"IPv6 last", v6, addr("2001:db8::20"), true},
		{"IPv6 after", v6, addr("2001:db8::21"), false},
		{"IPv4 address with the same low bits as an IPv6 range", rng("::", "::ffff"), addr("0.0.0.1"), false},
		{"single-address range", rng("198.18.100.7", "198.18.100.7"), addr("198.18.100.7"), true},
		{"single-address range, neighbour", rng("198.18.100.7", "198.18.100.7"), addr("198.18.100.8"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Contains(tc.a); got != tc.want {
				t.Errorf("%v.Contains(%v) = %v, want %v", tc.r, tc.a, got, tc.want)
			}
		})
	}
}

func TestRangeOverlaps(t *testing.T) {
	tests := []struct {
		name string
		a, b Range
		want bool
	}{
		{"identical", rng("10.0.0.0", "10.0.0.255"), rng("10.0.0.0", "10.0.0.255"), true},
		{"adjacent ranges are disjoint", rng("10.0.0.0", "10.0.0.9"), rng("10.0.0.10", "10.0.0.19"), false},
		{"share one address", rng("10.0.0.0", "10.0.0.10"), rng("10.0.0.10", "10.0.0.19"), true},
		{"one inside the other", rng("10.0.0.0", "10.0.0.255"), rng("10.0.0.100", "10.0.0.101"), true},
		{"partial", rng("10.0.0.0", "10.0.0.100"), rng("10.0.0.50", "10.0.0.150"), true},
		{"far apart", rng("10.0.0.0", "10.0.0.9"), rng("10.0.1.0", "10.0.1.9"), false},
		{"single addresses, equal", rng("10.0.0.1", "10.0.0.1"), rng("10.0.0.1", "10.0.0.1"), true},
		{"single addresses, different", rng("10.0.0.1", "10.0.0.1"), rng("10.0.0.2", "10.0.0.2"), false},
		{"IPv6 partial", rng("2001:db8::", "2001:db8::ff"), rng("2001:db8::80", "2001:db8::1ff"), true},
		{"IPv6 adjacent", rng("2001:db8::", "2001:db8::ff"), rng("2001:db8::100", "2001:db8::1ff"), false},
		{"all IPv4 and all IPv6 never overlap", rng("0.0.0.0", "255.255.255.255"), rng("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), false},
		{"IPv4 and IPv6 with the same low bits", rng("0.0.0.0", "0.0.0.255"), rng("::", "::ff"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Overlaps(tc.b); got != tc.want {
				t.Errorf("%v.Overlaps(%v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if got := tc.b.Overlaps(tc.a); got != tc.want {
				t.Errorf("Overlaps is not symmetric: %v.Overlaps(%v) = %v, want %v", tc.b, tc.a, got, tc.want)
			}
		})
	}
}

func TestRangeSize(t *testing.T) {
	tests := []struct {
		in   string
		want *big.Int
	}{
		{"198.18.100.7/32", big.NewInt(1)},
		{"198.18.100.0/24", big.NewInt(256)},
		{"198.18.100.10-198.18.100.20", big.NewInt(11)},
		{"198.18.100.10-198.18.100.10", big.NewInt(1)},
		{"198.18.100.250-198.18.101.5", big.NewInt(12)},
		{"0.0.0.0/0", pow2(32)},
		{"2001:db8::1/128", big.NewInt(1)},
		{"2001:db8:100::/64", pow2(64)},
		{"2001:db8::10-2001:db8::20", big.NewInt(17)},
		{"8000::/1", pow2(127)},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseRange(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Size(); got.Cmp(tc.want) != 0 {
				t.Errorf("ParseRange(%q).Size() = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestRangeString(t *testing.T) {
	tests := []struct {
		r    Range
		want string
	}{
		{rng("198.18.100.7", "198.18.100.7"), "198.18.100.7"},
		{rng("198.18.100.10", "198.18.100.20"), "198.18.100.10-198.18.100.20"},
		{rng("198.18.100.0", "198.18.100.255"), "198.18.100.0-198.18.100.255"},
		{rng("2001:db8::1", "2001:db8::1"), "2001:db8::1"},
		{rng("2001:0db8::10", "2001:db8:0::20"), "2001:db8::10-2001:db8::20"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.r.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			// A range of more than one address reads back as itself.
			if tc.r.First != tc.r.Last {
				back, err := ParseRange(tc.r.String())
				if err != nil || back != tc.r {
					t.Errorf("ParseRange(%q) = %v, %v; want %v", tc.r.String(), back, err, tc.r)
				}
			}
		})
	}
}

func TestFamily(t *testing.T) {
	if got := rng("198.18.100.1", "198.18.100.2").Family(); got != IPv4 || got.String() != "IPv4" {
		t.Errorf("IPv4 range: Family() = %v (%d)", got, got)
	}
	if got := rng("2001:db8::1", "2001:db8::2").Family(); got != IPv6 || got.String() != "IPv6" {
		t.Errorf("IPv6 range: Family() = %v (%d)", got, got)
	}
	if got := FamilyOf(addr("::ffff:198.18.100.1")); got != IPv6 {
		t.Errorf("FamilyOf(IPv4-mapped) = %v, want IPv6", got)
	}
}
