package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
)

var (
	v4   = []config.Family{config.IPv4}
	v6   = []config.Family{config.IPv6}
	dual = []config.Family{config.IPv4, config.IPv6}
)

func boolPtr(b bool) *bool { return &b }

// poolSpec is a compact pool description for tests.
type poolSpec struct {
	name       string
	addrs      []string
	autoAssign *bool
	avoidBuggy bool
	alloc      *v1beta1.ServiceAllocation
}

func buildConfig(t testing.TB, specs ...poolSpec) *config.Config {
	t.Helper()
	var objs []v1beta1.IPAddressPool
	for _, s := range specs {
		objs = append(objs, v1beta1.IPAddressPool{
			ObjectMeta: metav1.ObjectMeta{Name: s.name},
			Spec: v1beta1.IPAddressPoolSpec{
				Addresses: s.addrs, AutoAssign: s.autoAssign,
				AvoidBuggyIPs: s.avoidBuggy, ServiceAllocation: s.alloc,
			},
		})
	}
	res := config.Build(objs, nil)
	if len(res.Errors) > 0 {
		t.Fatalf("invalid test pools: %v", res.Errors)
	}
	return res.Config
}

func newAllocator(t testing.TB, specs ...poolSpec) *Allocator {
	a := New()
	a.SetConfig(buildConfig(t, specs...))
	return a
}

func svc(name string, opts ...func(*Request)) Request {
	r := Request{
		Key:      "default/" + name,
		Service:  config.ServiceInfo{Namespace: "default"},
		Families: v4,
		Policy:   SingleStack,
		Ports:    []Port{{"TCP", 80}},
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func families(fs []config.Family, p FamilyPolicy) func(*Request) {
	return func(r *Request) { r.Families, r.Policy = fs, p }
}
func requestIPs(ips ...string) func(*Request) {
	return func(r *Request) {
		for _, s := range ips {
			r.RequestedIPs = append(r.RequestedIPs, netip.MustParseAddr(s))
		}
	}
}
func inPool(p string) func(*Request) { return func(r *Request) { r.Pool = p } }
func shared(key string) func(*Request) {
	return func(r *Request) { r.SharingKey = key }
}
func backend(key string) func(*Request) { return func(r *Request) { r.BackendKey = key } }
func ports(ps ...Port) func(*Request)   { return func(r *Request) { r.Ports = ps } }
func namespace(ns string, labels map[string]string) func(*Request) {
	return func(r *Request) {
		r.Key = ns + "/" + strings.TrimPrefix(r.Key, "default/")
		r.Service.Namespace, r.Service.NamespaceLabels = ns, labels
	}
}
func labels(l map[string]string) func(*Request) { return func(r *Request) { r.Service.Labels = l } }

func ipsString(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}

func reasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	if err == nil {
		return Allocated
	}
	return "unexpected:" + Reason(err.Error())
}

// TestAssign is the specification of a single assignment: given pools and
// Services assigned before, what the next Service gets.
func TestAssign(t *testing.T) {
	pinned := &v1beta1.ServiceAllocation{Namespaces: []string{"team-a"}}
	tests := []struct {
		name     string
		pools    []poolSpec
		before   []Request
		req      Request
		wantIPs  string
		wantPool string
		reason   Reason
		msg      string
	}{
		{name: "lowest address of a v4 CIDR",
			pools: []poolSpec{{name: "p", addrs: []string{"198.18.100.0/30"}}},
			req:   svc("a"), wantIPs: "198.18.100.0", wantPool: "p"},
		{name: "next lowest after earlier Services",
			pools:  []poolSpec{{name: "p", addrs: []string{"198.18.100.0/30"}}},
			before: []Request{svc("a"), svc("b")},
			req:    svc("c"), wantIPs: "198.18.100.2", wantPool: "p"},
		{name: "ranges are used in address order",
			pools:  []poolSpec{{name: "p", addrs: []string{"198.18.101.5-198.18.101.6", "198.18.100.9-198.18.100.9"}}},
			before: []Request{svc("a")},
			req:    svc("b"), wantIPs: "198.18.101.5", wantPool: "p"},
		{name: "v6 from a /64",
			pools: []poolSpec{{name: "p", addrs: []string{"2001:db8:1::/64"}}},
			req:   svc("a", families(v6, SingleStack)), wantIPs: "2001:db8:1::", wantPool: "p"},
		{name: "avoidBuggyIPs skips .0 and .255",
			pools:  []poolSpec{{name: "p", addrs: []string{"198.18.100.254-198.18.101.2"}, avoidBuggy: true}},
			before: []Request{svc("a")},
			req:    svc("b"), wantIPs: "198.18.101.1", wantPool: "p"},
		{name: "without avoidBuggyIPs .0 is handed out",
			pools:  []poolSpec{{name: "p", addrs: []string{"198.18.100.255-198.18.101.2"}}},
			before: []Request{svc("a")},
			req:    svc("b"), wantIPs: "198.18.101.0", wantPool: "p"},
		{name: "avoidBuggyIPs applies to IPv4 only",
			pools: []poolSpec{{name: "p", addrs: []string{"2001:db8::/126"}, avoidBuggy: true}},
			req:   svc("a", families(v6, SingleStack)), wantIPs: "2001:db8::", wantPool: "p"},
		{name: "exhausted pool",
			pools:  []poolSpec{{name: "p", addrs: []string{"198.18.100.1-198.18.100.2"}}},
			before: []Request{svc("a"), svc("b")},
			req:    svc("c"), reason: PoolExhausted, msg: "no free [IPv4] address in pool(s) p"},
		{name: "no pool of the Service's family",
			pools: []poolSpec{{name: "p", addrs: []string{"198.18.100.0/24"}}},
			req:   svc("a", families(v6, SingleStack)), reason: NoMatchingPool, msg: "has [IPv6] addresses"},
		{name: "no pools at all",
			req: svc("a"), reason: NoMatchingPool, msg: "no valid IPAddressPool"},
		{name: "pools are tried by name when nothing else orders them",
			pools: []poolSpec{{name: "b", addrs: []string{"198.18.100.0/24"}}, {name: "a", addrs: []string{"198.18.200.0/24"}}},
			req:   svc("x"), wantIPs: "198.18.200.0", wantPool: "a"},
		{name: "a lower priority number wins over name",
			pools: []poolSpec{
				{name: "a", addrs: []string{"198.18.100.0/24"}, alloc: &v1beta1.ServiceAllocation{Priority: 2}},
				{name: "b", addrs: []string{"198.18.200.0/24"}, alloc: &v1beta1.ServiceAllocation{Priority: 1}}},
			req: svc("x"), wantIPs: "198.18.200.0", wantPool: "b"},
		{name: "a pool with a priority wins over one without",
			pools: []poolSpec{
				{name: "a", addrs: []string{"198.18.100.0/24"}},
				{name: "b", addrs: []string{"198.18.200.0/24"}, alloc: &v1beta1.ServiceAllocation{Priority: 9}}},
			req: svc("x"), wantIPs: "198.18.200.0", wantPool: "b"},
		{name: "a matching serviceAllocation wins over priority",
			pools: []poolSpec{
				{name: "a", addrs: []string{"198.18.100.0/24"}, alloc: &v1beta1.ServiceAllocation{Priority: 1}},
				{name: "z", addrs: []string{"198.18.200.0/24"}, alloc: &v1beta1.ServiceAllocation{Priority: 5, Namespaces: []string{"team-a"}}}},
			req: svc("x", namespace("team-a", nil)), wantIPs: "198.18.200.0", wantPool: "z"},
		{name: "a pool restricted to another namespace is not used",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}, alloc: pinned}},
			req:   svc("x"), reason: NoMatchingPool, msg: `namespace "default"`},
		{name: "namespace selector",
			pools: []poolSpec{
				{name: "a", addrs: []string{"198.18.100.0/24"}},
				{name: "z", addrs: []string{"198.18.200.0/24"}, alloc: &v1beta1.ServiceAllocation{NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "prod"}}}}}},
			req: svc("x", namespace("shop", map[string]string{"tier": "prod"})), wantIPs: "198.18.200.0", wantPool: "z"},
		{name: "service selector",
			pools: []poolSpec{
				{name: "a", addrs: []string{"198.18.100.0/24"}},
				{name: "z", addrs: []string{"198.18.200.0/24"}, alloc: &v1beta1.ServiceAllocation{ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"exposure": "public"}}}}}},
			req: svc("x", labels(map[string]string{"exposure": "public"})), wantIPs: "198.18.200.0", wantPool: "z"},
		{name: "a full restricted pool falls back to the next pool",
			pools: []poolSpec{
				{name: "a", addrs: []string{"198.18.100.0/24"}},
				{name: "z", addrs: []string{"198.18.200.1-198.18.200.1"}, alloc: &v1beta1.ServiceAllocation{Namespaces: []string{"team-a"}}}},
			before: []Request{svc("w", namespace("team-a", nil))},
			req:    svc("x", namespace("team-a", nil)), wantIPs: "198.18.100.0", wantPool: "a"},
		{name: "autoAssign false is skipped",
			pools: []poolSpec{
				{name: "a", addrs: []string{"198.18.100.0/24"}, autoAssign: boolPtr(false)},
				{name: "b", addrs: []string{"198.18.200.0/24"}}},
			req: svc("x"), wantIPs: "198.18.200.0", wantPool: "b"},
		{name: "only autoAssign false pools",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}, autoAssign: boolPtr(false)}},
			req:   svc("x"), reason: NoMatchingPool},
		{name: "autoAssign false pool by annotation",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}, autoAssign: boolPtr(false)}},
			req:   svc("x", inPool("a")), wantIPs: "198.18.100.0", wantPool: "a"},
		{name: "autoAssign false pool by requested IP",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}, autoAssign: boolPtr(false)}},
			req:   svc("x", requestIPs("198.18.100.7")), wantIPs: "198.18.100.7", wantPool: "a"},
		{name: "requested pool",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}, {name: "b", addrs: []string{"198.18.200.0/24"}}},
			req:   svc("x", inPool("b")), wantIPs: "198.18.200.0", wantPool: "b"},
		{name: "requested pool that does not exist",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			req:   svc("x", inPool("nope")), reason: NoMatchingPool, msg: `requested pool "nope" does not exist`},
		{name: "requested pool restricted to another namespace",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}, alloc: pinned}},
			req:   svc("x", inPool("a")), reason: NoMatchingPool, msg: "does not serve"},
		{name: "requested IP",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			req:   svc("x", requestIPs("198.18.100.42")), wantIPs: "198.18.100.42", wantPool: "a"},
		{name: "requested IP outside every pool",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			req:   svc("x", requestIPs("198.18.101.1")), reason: RequestedIPUnavailable, msg: "not in any valid IPAddressPool"},
		{name: "requested buggy IP with avoidBuggyIPs",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}, avoidBuggy: true}},
			req:   svc("x", requestIPs("198.18.100.255")), reason: RequestedIPUnavailable},
		{name: "requested IP held by another Service",
			pools:  []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			before: []Request{svc("a")},
			req:    svc("x", requestIPs("198.18.100.0")), reason: RequestedIPUnavailable, msg: "held by Service default/a"},
		{name: "requested IP of the wrong family",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			req:   svc("x", requestIPs("2001:db8::1")), reason: InvalidRequest, msg: "request an address of the Service's family"},
		{name: "requested IP outside the requested pool",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}, {name: "b", addrs: []string{"198.18.200.0/24"}}},
			req:   svc("x", requestIPs("198.18.100.1"), inPool("b")), reason: InvalidRequest, msg: `not to the requested pool "b"`},
		{name: "two requested IPs of one family",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			req:   svc("x", requestIPs("198.18.100.1", "198.18.100.2"), families(dual, PreferDualStack)), reason: InvalidRequest, msg: "at most one address per family"},

		// Sharing.
		{name: "same key and distinct ports share the lowest shared address",
			pools:  []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			before: []Request{svc("a"), svc("dns-tcp", shared("dns"), ports(Port{"TCP", 53}))},
			req:    svc("dns-udp", shared("dns"), ports(Port{"UDP", 53})), wantIPs: "198.18.100.1", wantPool: "a"},
		{name: "same key and a clashing port take a new address",
			pools:  []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			before: []Request{svc("a", shared("k"))},
			req:    svc("b", shared("k")), wantIPs: "198.18.100.1", wantPool: "a"},
		{name: "requested shared address with a clashing port",
			pools:  []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			before: []Request{svc("a", shared("k"))},
			req:    svc("b", shared("k"), requestIPs("198.18.100.0")), reason: SharingConflict, msg: "port TCP/80 is already used by Service default/a"},
		{name: "requested shared address with another key",
			pools:  []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			before: []Request{svc("a", shared("k1"))},
			req:    svc("b", shared("k2"), ports(Port{"TCP", 81}), requestIPs("198.18.100.0")), reason: SharingConflict, msg: `shared under key "k1"`},
		{name: "requested shared address without a key",
			pools:  []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			before: []Request{svc("a", shared("k1"))},
			req:    svc("b", ports(Port{"TCP", 81}), requestIPs("198.18.100.0")), reason: RequestedIPUnavailable, msg: "same pharos.io/allow-shared-ip"},
		{name: "requested shared address with other Local backends",
			pools:  []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			before: []Request{svc("a", shared("k"), backend("app=a"))},
			req:    svc("b", shared("k"), backend("app=b"), ports(Port{"TCP", 81}), requestIPs("198.18.100.0")), reason: SharingConflict, msg: "same selector"},
		{name: "requested shared address, compatible",
			pools:  []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			before: []Request{svc("a", shared("k"), backend("app=a"))},
			req:    svc("b", shared("k"), backend("app=a"), ports(Port{"TCP", 81}), requestIPs("198.18.100.0")), wantIPs: "198.18.100.0", wantPool: "a"},

		// Dual-stack.
		{name: "PreferDualStack gets both from one pool, in ipFamilies order",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24", "2001:db8:100::/64"}}},
			req:   svc("x", families([]config.Family{config.IPv6, config.IPv4}, PreferDualStack)), wantIPs: "2001:db8:100::,198.18.100.0", wantPool: "a"},
		{name: "PreferDualStack prefers a dual pool over an earlier single one",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}, {name: "b", addrs: []string{"198.18.200.0/24", "2001:db8:200::/64"}}},
			req:   svc("x", families(dual, PreferDualStack)), wantIPs: "198.18.200.0,2001:db8:200::", wantPool: "b"},
		{name: "PreferDualStack falls back to one family",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}},
			req:   svc("x", families(dual, PreferDualStack)), wantIPs: "198.18.100.0", wantPool: "a"},
		{name: "PreferDualStack falls back to the second family",
			pools: []poolSpec{{name: "a", addrs: []string{"2001:db8:100::/64"}}},
			req:   svc("x", families(dual, PreferDualStack)), wantIPs: "2001:db8:100::", wantPool: "a"},
		{name: "RequireDualStack needs one pool with both families",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}, {name: "b", addrs: []string{"2001:db8:100::/64"}}},
			req:   svc("x", families(dual, RequireDualStack)), reason: NoMatchingPool, msg: "holds both IPv4 and IPv6"},
		{name: "RequireDualStack with a full v6 side",
			pools:  []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24", "2001:db8:100::1-2001:db8:100::1"}}},
			before: []Request{svc("w", families(v6, SingleStack))},
			req:    svc("x", families(dual, RequireDualStack)), reason: PoolExhausted},
		{name: "RequireDualStack",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24", "2001:db8:100::/64"}}},
			req:   svc("x", families(dual, RequireDualStack)), wantIPs: "198.18.100.0,2001:db8:100::", wantPool: "a"},
		{name: "RequireDualStack with one requested IP",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24", "2001:db8:100::/64"}}},
			req:   svc("x", families(dual, RequireDualStack), requestIPs("198.18.100.3")), reason: InvalidRequest},
		{name: "dual-stack requested IPs",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24", "2001:db8:100::/64"}}},
			req:   svc("x", families(dual, RequireDualStack), requestIPs("2001:db8:100::9", "198.18.100.3")), wantIPs: "198.18.100.3,2001:db8:100::9", wantPool: "a"},
		{name: "dual-stack requested IPs from two pools",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24"}}, {name: "b", addrs: []string{"2001:db8:100::/64"}}},
			req:   svc("x", families(dual, PreferDualStack), requestIPs("198.18.100.3", "2001:db8:100::9")), reason: InvalidRequest, msg: "different pools"},
		{name: "SingleStack with two requested IPs",
			pools: []poolSpec{{name: "a", addrs: []string{"198.18.100.0/24", "2001:db8:100::/64"}}},
			req:   svc("x", families(dual, SingleStack), requestIPs("198.18.100.3", "2001:db8:100::9")), reason: InvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAllocator(t, tc.pools...)
			for _, b := range tc.before {
				if _, err := a.Assign(b); err != nil {
					t.Fatalf("setup %s: %v", b.Key, err)
				}
			}
			got, err := a.Assign(tc.req)
			want := tc.reason
			if want == "" {
				want = Allocated
			}
			if r := reasonOf(err); r != want {
				t.Fatalf("reason = %s (%v), want %s", r, err, want)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("message %q does not contain %q", err.Error(), tc.msg)
				}
				if _, held := a.Assigned(tc.req.Key); held {
					t.Errorf("a failed Service holds addresses")
				}
				return
			}
			if s := ipsString(got.IPs); s != tc.wantIPs || got.Pool != tc.wantPool {
				t.Errorf("got %s from %q, want %s from %q", s, got.Pool, tc.wantIPs, tc.wantPool)
			}
		})
	}
}

func TestAssignIsIdempotentAndStable(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.100.0/24"}})
	first, _ := a.Assign(svc("a"))
	_, _ = a.Assign(svc("b"))
	again, err := a.Assign(svc("a"))
	if err != nil || ipsString(again.IPs) != ipsString(first.IPs) {
		t.Fatalf("re-assign gave %v %v, want %v", again, err, first)
	}
	// Changing ports does not move an unshared Service.
	moved, _ := a.Assign(svc("a", ports(Port{"UDP", 53})))
	if ipsString(moved.IPs) != ipsString(first.IPs) {
		t.Fatalf("port change moved the Service to %v", moved.IPs)
	}
}

func TestReleaseFreesForReuse(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.100.1-198.18.100.2"}})
	mustAssign(t, a, svc("a"))
	mustAssign(t, a, svc("b"))
	if _, err := a.Assign(svc("c")); reasonOf(err) != PoolExhausted {
		t.Fatalf("want exhausted, got %v", err)
	}
	a.Release("default/a")
	got := mustAssign(t, a, svc("c"))
	if ipsString(got.IPs) != "198.18.100.1" {
		t.Fatalf("got %v, want the freed 198.18.100.1", got.IPs)
	}
}

func TestSharedAddressStaysHeldUntilLastUser(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.100.1-198.18.100.2"}})
	mustAssign(t, a, svc("tcp", shared("k"), ports(Port{"TCP", 53})))
	mustAssign(t, a, svc("udp", shared("k"), ports(Port{"UDP", 53})))
	a.Release("default/tcp")
	if got := mustAssign(t, a, svc("other")); ipsString(got.IPs) != "198.18.100.2" {
		t.Fatalf("shared address was freed while still used: other got %v", got.IPs)
	}
	st, _ := a.Stats("p")
	if st.AssignedIPv4 != 2 || st.AvailableIPv4 != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSharedAddressCountedOnce: Services that share an address hold one
// address of the pool, which the pool's in-use figure (status and
// pharos_pool_addresses_in_use) counts once, in each family, until the
// last of them releases it.
func TestSharedAddressCountedOnce(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.100.0/30", "2001:db8:100::/126"}})
	want := func(step string, v4, v6 int64) {
		t.Helper()
		st, _ := a.Stats("p")
		if st.AssignedIPv4 != v4 || st.AssignedIPv6 != v6 || st.AvailableIPv4 != 4-v4 || st.AvailableIPv6 != 4-v6 {
			t.Errorf("%s: stats %+v, want %d IPv4 and %d IPv6 in use", step, st, v4, v6)
		}
	}
	dns := func(name string, p Port) Request {
		return svc(name, shared("dns"), ports(p), families(dual, RequireDualStack))
	}
	tcp := mustAssign(t, a, dns("tcp", Port{"TCP", 53}))
	udp := mustAssign(t, a, dns("udp", Port{"UDP", 53}))
	if ipsString(tcp.IPs) != ipsString(udp.IPs) {
		t.Fatalf("not shared: tcp %v, udp %v", tcp.IPs, udp.IPs)
	}
	want("two Services on one address per family", 1, 1)
	mustAssign(t, a, dns("tcp", Port{"TCP", 53})) // reconciled again
	want("after a reconcile", 1, 1)
	mustAssign(t, a, svc("web"))
	want("a third Service of its own", 2, 1)
	a.Release("default/tcp")
	want("one sharer released", 2, 1)
	a.Release("default/udp")
	want("the last sharer released", 1, 0)
}

func TestSharingKeyChangeMovesTheService(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.100.0/24"}})
	mustAssign(t, a, svc("a", shared("k"), ports(Port{"TCP", 1})))
	mustAssign(t, a, svc("b", shared("k"), ports(Port{"TCP", 2})))
	got := mustAssign(t, a, svc("b", shared("other"), ports(Port{"TCP", 2})))
	if ipsString(got.IPs) != "198.18.100.1" {
		t.Fatalf("b kept an address it may no longer share: %v", got.IPs)
	}
}

func TestSetConfigKeepsAddressesOutsideAShrunkPoolAndEvictsOnlyAGonePool(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.100.0/24"}}, poolSpec{name: "q", addrs: []string{"198.18.200.0/24"}})
	for i := 0; i < 4; i++ {
		mustAssign(t, a, svc(fmt.Sprint("s", i)))
	}
	mustAssign(t, a, svc("inq", inPool("q")))
	// Shrink p to .0-.1 and turn on avoidBuggyIPs, which also drops .0:
	// the Services keep what they have, and the pool says what is outside.
	evicted := a.SetConfig(buildConfig(t,
		poolSpec{name: "p", addrs: []string{"198.18.100.0/31"}, avoidBuggy: true},
		poolSpec{name: "q", addrs: []string{"198.18.200.0/24"}}))
	if len(evicted) != 0 {
		t.Fatalf("a shrink evicted %v", evicted)
	}
	for i, want := range []string{"198.18.100.0", "198.18.100.1", "198.18.100.2", "198.18.100.3"} {
		// Assign keeps them too (it runs on every reconcile).
		if got := mustAssign(t, a, svc(fmt.Sprint("s", i))); ipsString(got.IPs) != want {
			t.Fatalf("s%d has %v after the shrink, want %s", i, got.IPs, want)
		}
	}
	var outside []string
	for _, h := range a.Outside("p") {
		outside = append(outside, h.Key+"="+ipsString(h.IPs))
	}
	if got := strings.Join(outside, " "); got != "default/s0=198.18.100.0 default/s2=198.18.100.2 default/s3=198.18.100.3" {
		t.Fatalf("Outside(p) = %s", got)
	}
	if st, _ := a.Stats("p"); st.AssignedIPv4 != 1 || st.AvailableIPv4 != 0 {
		t.Fatalf("stats after the shrink %+v: the counts are of the new ranges", st)
	}
	// New assignments come from the new ranges only.
	if _, err := a.Assign(svc("new", inPool("p"))); reasonOf(err) != PoolExhausted {
		t.Fatalf("want exhausted after shrink, got %v", err)
	}
	if _, err := a.Assign(svc("asks", requestIPs("198.18.100.2"))); reasonOf(err) != RequestedIPUnavailable {
		t.Fatalf("an address outside the shrunk pool was given: %v", err)
	}
	// Released, an address outside the ranges is gone for good.
	a.Release("default/s2")
	if got := len(a.Outside("p")); got != 2 {
		t.Fatalf("%d Services outside after a release, want 2", got)
	}
	// Delete q: its Service is evicted, as before.
	evicted = a.SetConfig(buildConfig(t, poolSpec{name: "p", addrs: []string{"198.18.100.0/31"}, avoidBuggy: true}))
	if got := strings.Join(evicted, ","); got != "default/inq" {
		t.Fatalf("evicted %s", got)
	}
	if got := strings.Join(a.Users("p"), ","); got != "default/s0,default/s1,default/s3" {
		t.Fatalf("Users(p) = %s", got)
	}
}

func TestAddressKeptOutsideIsNotGivenByThePoolThatNowHoldsIt(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.100.0/30"}})
	mustAssign(t, a, svc("old", shared("k"), ports(Port{"TCP", 1})))
	// p gives .0 up and q takes it over while "old" still holds it.
	a.SetConfig(buildConfig(t,
		poolSpec{name: "p", addrs: []string{"198.18.100.1-198.18.100.3"}},
		poolSpec{name: "q", addrs: []string{"198.18.100.0-198.18.100.0", "198.18.101.0/30"}}))
	if got := mustAssign(t, a, svc("new", inPool("q"))); ipsString(got.IPs) != "198.18.101.0" {
		t.Fatalf("q gave %v while the address is held", got.IPs)
	}
	if _, err := a.Assign(svc("asks", requestIPs("198.18.100.0"), shared("k"), ports(Port{"TCP", 2}))); reasonOf(err) != RequestedIPUnavailable {
		t.Fatalf("the held address was shared into another pool: %v", err)
	}
	// Sharing in p never joins the address p no longer includes.
	if got := mustAssign(t, a, svc("joins", shared("k"), ports(Port{"TCP", 3}), inPool("p"))); ipsString(got.IPs) != "198.18.100.1" {
		t.Fatalf("a new Service joined %v", got.IPs)
	}
	a.Release("default/old")
	if got := mustAssign(t, a, svc("later", inPool("q"))); ipsString(got.IPs) != "198.18.100.0" {
		t.Fatalf("after the release q gave %v, want the freed address", got.IPs)
	}
}

func TestDrainingPoolKeepsItsServicesAndGivesNothingNew(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.100.0/30", "2001:db8::/126"}}, poolSpec{name: "q", addrs: []string{"198.18.101.0/30"}})
	mustAssign(t, a, svc("kept", shared("k"), ports(Port{"TCP", 1}), inPool("p")))
	mustAssign(t, a, svc("v4", inPool("p")))
	a.SetDraining(map[string]bool{"p": true})
	a.SetConfig(buildConfig(t, poolSpec{name: "p", addrs: []string{"198.18.100.0/30", "2001:db8::/126"}}, poolSpec{name: "q", addrs: []string{"198.18.101.0/30"}}))
	if got := mustAssign(t, a, svc("kept", shared("k"), ports(Port{"TCP", 1}), inPool("p"))); ipsString(got.IPs) != "198.18.100.0" {
		t.Fatalf("a Service of the draining pool has %v", got.IPs)
	}
	// No missing family is added from a draining pool.
	if got := mustAssign(t, a, svc("v4", inPool("p"), families(dual, PreferDualStack))); ipsString(got.IPs) != "198.18.100.1" {
		t.Fatalf("a draining pool completed a family: %v", got.IPs)
	}
	if _, err := a.Assign(svc("asks-pool", inPool("p"))); reasonOf(err) != NoMatchingPool {
		t.Fatalf("a draining pool served a request for it: %v", err)
	}
	if _, err := a.Assign(svc("asks-ip", requestIPs("198.18.100.2"))); reasonOf(err) != RequestedIPUnavailable {
		t.Fatalf("a draining pool gave a requested address: %v", err)
	}
	if _, err := a.Assign(svc("shares", requestIPs("198.18.100.0"), shared("k"), ports(Port{"TCP", 2}))); reasonOf(err) != RequestedIPUnavailable {
		t.Fatalf("a draining pool shared an address: %v", err)
	}
	if got := mustAssign(t, a, svc("auto")); ipsString(got.IPs) != "198.18.101.0" {
		t.Fatalf("auto-assignment used %v, want the other pool", got.IPs)
	}
	if got := strings.Join(a.Users("p"), ","); got != "default/kept,default/v4" {
		t.Fatalf("Users(p) = %s", got)
	}
	// Not draining any more (a deletion cannot be undone, but the set is
	// replaced): p serves again.
	a.SetDraining(nil)
	if got := mustAssign(t, a, svc("asks-pool", inPool("p"))); ipsString(got.IPs) != "198.18.100.2" {
		t.Fatalf("p gave %v", got.IPs)
	}
}

func TestRestoreFromKeepsAddressesOutsideTheNamedPool(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.100.0/31"}}, poolSpec{name: "q", addrs: []string{"198.18.101.0/30"}})
	ip := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	if err := a.RestoreFrom(svc("out"), "p", ip("198.18.100.7")); err != nil {
		t.Fatal(err)
	}
	if h := a.Outside("p"); len(h) != 1 || h[0].Key != "default/out" {
		t.Fatalf("Outside(p) = %v", h)
	}
	if err := a.RestoreFrom(svc("dup"), "p", ip("198.18.100.7")); reasonOf(err) != RequestedIPUnavailable {
		t.Fatalf("a second holder was restored: %v", err)
	}
	// An address another pool holds is that pool's, as Restore says.
	if err := a.RestoreFrom(svc("moved"), "p", ip("198.18.101.1")); err != nil {
		t.Fatal(err)
	}
	if asg, _ := a.Assigned("default/moved"); asg.Pool != "q" {
		t.Fatalf("restored into %q, want q", asg.Pool)
	}
	// An unknown pool: as Restore, which refuses an address outside every pool.
	if err := a.RestoreFrom(svc("gone"), "nope", ip("198.18.100.9")); reasonOf(err) != RequestedIPUnavailable {
		t.Fatalf("restored from an unknown pool: %v", err)
	}
}

func TestRestoreKeepsAddressesAndRejectsConflicts(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.100.0/24"}})
	if err := a.Restore(svc("b"), []netip.Addr{netip.MustParseAddr("198.18.100.5")}); err != nil {
		t.Fatal(err)
	}
	if err := a.Restore(svc("c"), []netip.Addr{netip.MustParseAddr("198.18.100.5")}); reasonOf(err) != RequestedIPUnavailable {
		t.Fatalf("a second holder was restored: %v", err)
	}
	if err := a.Restore(svc("d"), []netip.Addr{netip.MustParseAddr("198.18.250.1")}); reasonOf(err) != RequestedIPUnavailable {
		t.Fatalf("an address outside the pools was restored: %v", err)
	}
	// A new Service takes the lowest free address, not the restored one, and
	// the restored Service keeps its address when it is assigned again.
	if got := mustAssign(t, a, svc("n")); ipsString(got.IPs) != "198.18.100.0" {
		t.Fatalf("new Service got %v", got.IPs)
	}
	if got := mustAssign(t, a, svc("b")); ipsString(got.IPs) != "198.18.100.5" {
		t.Fatalf("restored Service moved to %v", got.IPs)
	}
}

func TestAddsMissingFamilyToExistingAssignment(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.100.0/24", "2001:db8:100::/64"}})
	mustAssign(t, a, svc("a"))
	got := mustAssign(t, a, svc("a", families(dual, PreferDualStack)))
	if ipsString(got.IPs) != "198.18.100.0,2001:db8:100::" {
		t.Fatalf("got %v", got.IPs)
	}
	got = mustAssign(t, a, svc("a", families(v6, SingleStack)))
	if ipsString(got.IPs) != "2001:db8:100::" {
		t.Fatalf("dropping a family gave %v", got.IPs)
	}
	if st, _ := a.Stats("p"); st.AssignedIPv4 != 0 || st.AssignedIPv6 != 1 || st.SizeIPv4 != 256 || st.SizeIPv6 != 0x1p64 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStatsCapHugePools(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.0.0/15", "2001:db8::/32"}, avoidBuggy: true})
	mustAssign(t, a, svc("a"))
	st, _ := a.Stats("p")
	if st.AvailableIPv4 != 131072-1024-1 || st.AssignedIPv4 != 1 {
		t.Fatalf("v4 stats %+v", st)
	}
	if st.AvailableIPv6 != 1<<63-1 {
		t.Fatalf("v6 available %d, want the int64 cap", st.AvailableIPv6)
	}
}

// TestNeverTwoHolders assigns and releases many Services in a small pool
// and checks after every step that no address has two unshared holders and
// that the pool's counts match the assignments.
func TestNeverTwoHolders(t *testing.T) {
	a := newAllocator(t, poolSpec{name: "p", addrs: []string{"198.18.100.250-198.18.101.5"}, avoidBuggy: true})
	for step := 0; step < 2000; step++ {
		name := fmt.Sprint("s", (step*7919)%23)
		if step%3 == 2 {
			a.Release("default/" + name)
		} else {
			_, _ = a.Assign(svc(name))
		}
		seen := map[netip.Addr]string{}
		for key, st := range a.services {
			for _, ip := range st.asg.IPs {
				if other, dup := seen[ip]; dup {
					t.Fatalf("step %d: %s held by %s and %s", step, ip, other, key)
				}
				if config.IsBuggy(ip) {
					t.Fatalf("step %d: buggy %s assigned", step, ip)
				}
				seen[ip] = key
			}
		}
		if s, _ := a.Stats("p"); s.AssignedIPv4 != int64(len(seen)) || s.AvailableIPv4 != 10-int64(len(seen)) {
			t.Fatalf("step %d: stats %+v with %d held", step, s, len(seen))
		}
	}
}

func mustAssign(t *testing.T, a *Allocator, r Request) Assignment {
	t.Helper()
	got, err := a.Assign(r)
	if err != nil {
		t.Fatalf("assign %s: %v", r.Key, err)
	}
	return got
}
