package invariant

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/pharos-lb/pharos/internal/config"
)

func ips(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func rng(s string) config.Range {
	r, err := config.ParseRange(s)
	if err != nil {
		panic(err)
	}
	return r
}

var pools = map[string][]config.Range{
	"a": {rng("198.18.110.0/28"), rng("2001:db8:110::/124")},
	"b": {rng("198.18.111.0/28")},
}

// step is one snapshot, with what the runner did just before it.
type step struct {
	before   func(c *Checker)
	services []Service
	pools    map[string][]config.Range
	// want are the rules broken, in order, as "rule: substring".
	want []string
}

func TestObserve(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"addresses inside their pools, each held once", []step{
			{services: []Service{{Name: "d/x", IPs: ips("198.18.110.1", "2001:db8:110::1"), Pool: "a"}, {Name: "d/y", IPs: ips("198.18.111.1"), Pool: "b"}}},
		}},
		{"one address held by two Services without a key", []step{
			{services: []Service{{Name: "d/x", IPs: ips("198.18.110.1"), Pool: "a"}, {Name: "d/y", IPs: ips("198.18.110.1"), Pool: "a"}},
				want: []string{`shared: 198.18.110.1 is held by d/x (key "") and d/y (key "")`}},
		}},
		{"two Services sharing by one key", []step{
			{services: []Service{{Name: "d/x", IPs: ips("198.18.110.1"), Pool: "a", SharingKey: "k"}, {Name: "d/y", IPs: ips("198.18.110.1"), Pool: "a", SharingKey: "k"}}},
		}},
		{"two Services with different keys", []step{
			{services: []Service{{Name: "d/x", IPs: ips("198.18.110.1"), Pool: "a", SharingKey: "k"}, {Name: "d/y", IPs: ips("198.18.110.1"), Pool: "a", SharingKey: "j"}},
				want: []string{"shared: 198.18.110.1"}},
		}},
		{"an address outside its pool", []step{
			{services: []Service{{Name: "d/x", IPs: ips("198.18.111.1"), Pool: "a"}}, want: []string{"outside-pool: d/x holds 198.18.111.1, outside pool a"}},
		}},
		{"an address from a pool that does not exist", []step{
			{services: []Service{{Name: "d/x", IPs: ips("198.18.111.1"), Pool: "gone"}}, want: []string{`outside-pool: d/x holds 198.18.111.1 from pool "gone"`}},
		}},
		{"a Service keeps an address in a range removed from its pool; another may not get one", []step{
			{services: []Service{{Name: "d/x", IPs: ips("198.18.111.1"), Pool: "b"}}},
			{before: func(c *Checker) {
				c.Shrunk([]config.Range{rng("198.18.111.0/28")}, []Service{{Name: "d/x", IPs: ips("198.18.111.1"), Pool: "b"}})
			}, pools: map[string][]config.Range{"b": {rng("198.18.112.0/28")}},
				services: []Service{{Name: "d/x", IPs: ips("198.18.111.1"), Pool: "b"}, {Name: "d/y", IPs: ips("198.18.111.2"), Pool: "b"}},
				want:     []string{"outside-pool: d/y holds 198.18.111.2"}},
		}},
		{"a Service nothing moved gets another address", []step{
			{services: []Service{{Name: "d/x", IPs: ips("198.18.110.1"), Pool: "a"}}},
			{services: []Service{{Name: "d/x", IPs: ips("198.18.110.2"), Pool: "a"}}, want: []string{"changed: d/x had [198.18.110.1] and now has [198.18.110.2]"}},
			{services: []Service{{Name: "d/x", IPs: ips("198.18.110.2"), Pool: "a"}}},
		}},
		{"a Service nothing moved loses its address", []step{
			{services: []Service{{Name: "d/x", IPs: ips("198.18.110.1"), Pool: "a"}}},
			{services: []Service{{Name: "d/x", Pool: "a"}}, want: []string{"changed: d/x had [198.18.110.1] and now has none"}},
		}},
		{"the order of the status's addresses is not a change", []step{
			{services: []Service{{Name: "d/x", IPs: ips("2001:db8:110::1", "198.18.110.1"), Pool: "a"}}},
			{services: []Service{{Name: "d/x", IPs: ips("198.18.110.1", "2001:db8:110::1"), Pool: "a"}}},
		}},
		{"a Service moved to another pool changes once it gets there, then holds", []step{
			{services: []Service{{Name: "d/x", IPs: ips("198.18.110.1"), Pool: "a"}}},
			{before: func(c *Checker) { c.Expect("d/x", "b") }, services: []Service{{Name: "d/x", Pool: "a"}}},
			{services: []Service{{Name: "d/x", IPs: ips("198.18.111.3"), Pool: "b"}}},
			{services: []Service{{Name: "d/x", IPs: ips("198.18.111.4"), Pool: "b"}}, want: []string{"changed: d/x had [198.18.111.3]"}},
		}},
		{"a Service deleted and created again under its name may get any address", []step{
			{services: []Service{{Name: "d/x", IPs: ips("198.18.110.1"), Pool: "a"}}},
			{before: func(c *Checker) { c.Forget("d/x") }, services: nil},
			{services: []Service{{Name: "d/x", IPs: ips("198.18.110.5"), Pool: "a"}}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New()
			for i, st := range tc.steps {
				if st.before != nil {
					st.before(c)
				}
				p := st.pools
				if p == nil {
					p = pools
				}
				got := c.Observe(st.services, p)
				if len(got) != len(st.want) {
					t.Fatalf("step %d: got %v, want %v", i, got, st.want)
				}
				for j, v := range got {
					if !strings.HasPrefix(v.String(), st.want[j]) {
						t.Errorf("step %d: got %q, want it to start with %q", i, v, st.want[j])
					}
				}
			}
		})
	}
}
