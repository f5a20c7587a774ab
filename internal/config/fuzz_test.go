package config

import (
	"math/big"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

var rangeSeeds = []string{
	// Good.
	"198.18.100.0/24",
	"198.18.100.7/32",
	"10.0.0.0/20",
	"0.0.0.0/0",
	"2001:db8:100::/64",
	"2001:db8::1/128",
	"2001:db8::/61",
	"::/0",
	"198.18.100.10-198.18.100.20",
	"198.18.100.10 - 198.18.100.20",
	"198.18.100.10-198.18.100.10",
	"2001:db8::10-2001:db8::20",
	" 2001:db8::10 -2001:db8::10 ",
	"0.0.0.0-255.255.255.255",
	"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	"64:ff9b::198.18.100.1-64:ff9b::198.18.100.2",
	// Bad.
	"",
	" ",
	"-",
	"/",
	"banana",
	"198.18.100.10",
	"198.18.100.20-198.18.100.10",
	"198.18.100.1-2001:db8::1",
	"198.18.100.7/24",
	"2001:db8:100::1/64",
	"198.18.100.0/33",
	"198.18.100.0/",
	"198.18.100.0/24-198.18.101.0/24",
	"fe80::1%eth0-fe80::2",
	"fe80::1-fe80::2%eth-0",
	"fe80::%eth0/64",
	"::ffff:198.18.100.1-::ffff:198.18.100.2",
	"::ffff:198.18.100.0/120",
	"::ffff:0:0/96",
	"198.18.100.1-198.18.100.2-198.18.100.3",
	"198.018.100.1-198.18.100.2",
	"198.18.100.0/024",
	"1.2.3.4/+8",
}

// checkRange asserts the invariants of a Range that ParseRange accepted.
func checkRange(t *testing.T, in string, r Range) {
	t.Helper()
	if !r.First.IsValid() || !r.Last.IsValid() {
		t.Fatalf("ParseRange(%q) = %#v: invalid bound", in, r)
	}
	if r.First.BitLen() != r.Last.BitLen() {
		t.Fatalf("ParseRange(%q) = %v..%v: mixed families", in, r.First, r.Last)
	}
	if r.Last.Less(r.First) {
		t.Fatalf("ParseRange(%q) = %v..%v: First > Last", in, r.First, r.Last)
	}
	for _, a := range []netip.Addr{r.First, r.Last} {
		if a.Zone() != "" || a.Is4In6() {
			t.Fatalf("ParseRange(%q) = %v..%v: bound %v has a zone or is IPv4-mapped", in, r.First, r.Last, a)
		}
	}
	if !r.Contains(r.First) || !r.Contains(r.Last) {
		t.Fatalf("ParseRange(%q) = %v: does not contain its own bounds", in, r)
	}
	if !r.Overlaps(r) {
		t.Fatalf("ParseRange(%q) = %v: does not overlap itself", in, r)
	}
	size := r.Size()
	if size.Sign() <= 0 || size.Cmp(new(big.Int).Lsh(big.NewInt(1), uint(r.First.BitLen()))) > 0 {
		t.Fatalf("ParseRange(%q) = %v: Size() = %v", in, r, size)
	}

	// String reads back as the same range.
	s := r.String()
	if r.First != r.Last {
		back, err := ParseRange(s)
		if err != nil || back != r {
			t.Fatalf("ParseRange(%q) = %v, but ParseRange(String() = %q) = %v, %v", in, r, s, back, err)
		}
	} else {
		if size.Cmp(big.NewInt(1)) != 0 {
			t.Fatalf("ParseRange(%q) = %v: one address but Size() = %v", in, r, size)
		}
		a, err := ParseAddress(s)
		if err != nil || a != r.First {
			t.Fatalf("ParseRange(%q) = %v, but ParseAddress(String() = %q) = %v, %v", in, r, s, a, err)
		}
		back, err := ParseRange(s + "-" + s)
		if err != nil || back != r {
			t.Fatalf("ParseRange(%q) = %v, but ParseRange(%q) = %v, %v", in, r, s+"-"+s, back, err)
		}
	}

	if strings.Contains(in, "/") {
		// A CIDR holds a power of two of addresses, aligned on its size,
		// and is exactly the prefix that was written.
		k := size.BitLen() - 1
		if uint(k) != size.TrailingZeroBits() {
			t.Fatalf("ParseRange(%q) = %v: CIDR of Size() = %v, not a power of two", in, r, size)
		}
		p := netip.PrefixFrom(r.First, r.First.BitLen()-k)
		if p.Masked() != p {
			t.Fatalf("ParseRange(%q) = %v: first address is not aligned on %v", in, r, p)
		}
		written, err := netip.ParsePrefix(strings.TrimSpace(in))
		if err != nil || written != p {
			t.Fatalf("ParseRange(%q) = %v, which is prefix %v, but the input parses as %v, %v", in, r, p, written, err)
		}
		back, err := ParseRange(p.String())
		if err != nil || back != r {
			t.Fatalf("ParseRange(%q) = %v, but ParseRange(%q) = %v, %v", in, r, p, back, err)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range rangeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if a, err := ParseAddress(in); err == nil && (!a.IsValid() || a.Zone() != "" || a.Is4In6()) {
			t.Fatalf("ParseAddress(%q) = %v", in, a)
		}
		r, err := ParseRange(in)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParseRange(%q): empty error message", in)
			}
			if r != (Range{}) {
				t.Fatalf("ParseRange(%q) = %v with error %v", in, r, err)
			}
			return
		}
		checkRange(t, in, r)
	})
}

// checkResult asserts the invariants of Build(pools, previous).
func checkResult(t *testing.T, pools []v1beta1.IPAddressPool, previous *Config, res Result) {
	t.Helper()
	if res.Config == nil || res.Config.Pools == nil {
		t.Fatalf("Build returned no Config")
	}
	objs := map[string]*v1beta1.IPAddressPool{}
	for i := range pools {
		objs[pools[i].Name] = &pools[i]
	}
	// before reports whether pool x is ordered before pool y.
	before := func(x, y string) bool {
		tx, ty := objs[x].CreationTimestamp.Time, objs[y].CreationTimestamp.Time
		if !tx.Equal(ty) {
			return tx.Before(ty)
		}
		return x < y
	}

	type owned struct {
		r    Range
		pool string
	}
	var all []owned
	for name, p := range res.Config.Pools {
		if objs[name] == nil || p == nil || p.Name != name {
			t.Fatalf("Config.Pools[%q] = %+v is not one of the input pools", name, p)
		}
		if len(p.Ranges) == 0 {
			t.Fatalf("accepted pool %q has no ranges", name)
		}
		for i, r := range p.Ranges {
			if i > 0 && (!p.Ranges[i-1].Last.Less(r.First)) {
				t.Fatalf("pool %q: ranges %v and %v are not sorted and disjoint", name, p.Ranges[i-1], r)
			}
			all = append(all, owned{r, name})
		}
		if res.Stale[name] {
			if previous == nil || previous.Pools[name] != p {
				t.Fatalf("stale pool %q is not its previous config", name)
			}
			if len(res.Errors[name]) == 0 {
				t.Fatalf("stale pool %q has no errors", name)
			}
			continue
		}
		if len(res.Errors[name]) > 0 {
			t.Fatalf("pool %q is accepted, not stale, and has errors:\n%s", name, dump(res.Errors[name]))
		}
		parsed, errs := ParsePool(objs[name])
		if len(errs) > 0 || !reflect.DeepEqual(parsed.Ranges, p.Ranges) {
			t.Fatalf("accepted pool %q = %v, but ParsePool = %v, %v", name, p.Ranges, parsed, errs)
		}
	}

	// No address belongs to two pools.
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if all[i].pool != all[j].pool && all[i].r.Overlaps(all[j].r) {
				t.Fatalf("accepted pools %q (%v) and %q (%v) overlap", all[i].pool, all[i].r, all[j].pool, all[j].r)
			}
		}
	}

	for name := range res.Stale {
		if res.Config.Pools[name] == nil {
			t.Fatalf("Stale names %q, which is not in Config", name)
		}
	}
	if previous == nil && len(res.Stale) > 0 {
		t.Fatalf("Stale = %v without a previous config", res.Stale)
	}

	for _, obj := range pools {
		name := obj.Name
		errs := res.Errors[name]
		if res.Config.Pools[name] == nil && len(errs) == 0 {
			t.Fatalf("pool %q is neither accepted nor rejected", name)
		}
		if len(errs) == 0 {
			continue
		}
		for _, e := range errs {
			if e == nil || e.Field == "" || !strings.HasPrefix(e.Field, "spec.") {
				t.Fatalf("pool %q: error without a field path: %v", name, e)
			}
			if e.Detail == "" {
				t.Fatalf("pool %q: error without a hint: %v", name, e)
			}
		}
		// A pool rejected only for overlapping names an accepted pool
		// that comes before it.
		if _, perrs := ParsePool(&obj); len(perrs) == 0 {
			for _, e := range errs {
				other := ""
				if _, after, ok := strings.Cut(e.Detail, `of IPAddressPool "`); ok {
					other, _, _ = strings.Cut(after, `"`)
				}
				if res.Config.Pools[other] == nil || !before(other, name) {
					t.Fatalf("pool %q: overlap error names %q, which is not an accepted pool before it: %v", name, other, e)
				}
			}
		}
	}

	// The result does not depend on the order of the input.
	rev := make([]v1beta1.IPAddressPool, len(pools))
	for i := range pools {
		rev[len(rev)-1-i] = pools[i]
	}
	if res2 := Build(rev, previous); !reflect.DeepEqual(res, res2) {
		t.Fatalf("Build depends on the order of its input:\n%+v\n%+v", res, res2)
	}
}

func FuzzBuild(f *testing.F) {
	f.Add("198.18.100.0/24", "2001:db8::/64", "198.18.101.0/24", "2001:db8:1::/64", "198.18.102.0/24", false)
	f.Add("198.18.100.0/24", "", "198.18.100.128/25", "2001:db8::1-2001:db8::5", "198.18.100.7", true)
	f.Add("198.18.100.0/23", "198.18.100.0/24", "198.18.101.0/24", "banana", "198.18.101.0/24", false)
	f.Add("0.0.0.0/0", "::/0", "198.18.100.10-198.18.100.20", "198.18.100.20-198.18.100.10", "::1-::2", true)
	f.Add("198.18.100.0-198.18.100.127", "198.18.100.128/25", "198.18.100.127-198.18.100.128", "2001:db8::/127", "2001:db8::1-2001:db8::3", false)
	f.Add("2001:db8::/64", "2001:db8::5-2001:db8::6", "2001:db8::/63", "198.18.100.1", "fe80::1%eth0-fe80::2", true)
	f.Fuzz(func(t *testing.T, a1, a2, b1, b2, c1 string, sameTime bool) {
		bCreated := 1
		if sameTime {
			bCreated = 0
		}
		// One address list of an entry, with empty strings left out so
		// that a pool can have one, two, or no entries.
		list := func(s ...string) []string {
			var out []string
			for _, x := range s {
				if x != "" {
					out = append(out, x)
				}
			}
			return out
		}
		first := []v1beta1.IPAddressPool{
			newPool("a", list(a1, a2), created(0)),
			newPool("b", list(b1, b2), created(bCreated)),
			newPool("c", list(c1), created(2)),
		}
		res1 := Build(first, nil)
		checkResult(t, first, nil, res1)

		// Edit every pool, with the first result as the last known good.
		second := []v1beta1.IPAddressPool{
			newPool("a", list(b1, c1), created(0), generation(2)),
			newPool("b", list(a2), created(bCreated), generation(2)),
			newPool("c", list(a1, b2), created(2), generation(2)),
		}
		res2 := Build(second, res1.Config)
		checkResult(t, second, res1.Config, res2)
	})
}
