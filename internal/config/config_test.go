package config

import (
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// t0 is the creation time of the oldest pool in these tests.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// at returns the creation timestamp of a pool created n minutes after t0.
func at(n int) metav1.Time { return metav1.NewTime(t0.Add(time.Duration(n) * time.Minute)) }

type poolOpt func(*v1beta1.IPAddressPool)

func created(n int) poolOpt {
	return func(p *v1beta1.IPAddressPool) { p.CreationTimestamp = at(n) }
}

func generation(g int64) poolOpt {
	return func(p *v1beta1.IPAddressPool) { p.Generation = g }
}

func autoAssign(b bool) poolOpt {
	return func(p *v1beta1.IPAddressPool) { p.Spec.AutoAssign = &b }
}

func avoidBuggyIPs() poolOpt {
	return func(p *v1beta1.IPAddressPool) { p.Spec.AvoidBuggyIPs = true }
}

func allocation(sa v1beta1.ServiceAllocation) poolOpt {
	return func(p *v1beta1.IPAddressPool) { p.Spec.ServiceAllocation = &sa }
}

// newPool returns an IPAddressPool created at t0 with generation 1, unless
// opts say otherwise.
func newPool(name string, addresses []string, opts ...poolOpt) v1beta1.IPAddressPool {
	p := v1beta1.IPAddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1, CreationTimestamp: metav1.NewTime(t0)},
		Spec:       v1beta1.IPAddressPoolSpec{Addresses: addresses},
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func addrs(s ...string) []string { return s }

func sel(kv ...string) metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return metav1.LabelSelector{MatchLabels: m}
}

func expr(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelector {
	return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

// wantErr describes one expected field error: its type, its field path,
// and substrings its detail must hold (what is wrong and how to fix it).
type wantErr struct {
	typ    field.ErrorType
	field  string
	detail []string
}

// checkErrs asserts that got holds exactly the errors in want, in any order,
// and that the aggregate message a user sees names each field path and
// carries each hint.
func checkErrs(t *testing.T, got field.ErrorList, want []wantErr) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", len(got), len(want), dump(got))
	}
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for i, e := range got {
			if used[i] || e.Type != w.typ || e.Field != w.field {
				continue
			}
			ok := true
			for _, d := range w.detail {
				if !strings.Contains(e.Detail, d) {
					ok = false
				}
			}
			if ok {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("no %s error at %s with detail containing %q in:\n%s", w.typ, w.field, w.detail, dump(got))
		}
	}
	if len(got) == 0 {
		return
	}
	msg := got.ToAggregate().Error()
	for _, w := range want {
		for _, s := range append([]string{w.field}, w.detail...) {
			if !strings.Contains(msg, s) {
				t.Errorf("aggregate message %q does not contain %q", msg, s)
			}
		}
	}
}

func dump(errs field.ErrorList) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\t")
		b.WriteString(e.Error())
		b.WriteString("\n")
	}
	if b.Len() == 0 {
		return "\t(none)\n"
	}
	return b.String()
}

func TestParsePoolValid(t *testing.T) {
	tests := []struct {
		name       string
		obj        v1beta1.IPAddressPool
		wantRanges []Range
		wantV4     bool
		wantV6     bool
		wantAuto   bool
		wantAvoid  bool
	}{
		{
			name:       "IPv4 CIDR",
			obj:        newPool("v4", addrs("198.18.100.0/24")),
			wantRanges: []Range{rng("198.18.100.0", "198.18.100.255")},
			wantV4:     true, wantAuto: true,
		},
		{
			name:       "IPv6 CIDR",
			obj:        newPool("v6", addrs("2001:db8:100::/64")),
			wantRanges: []Range{rng("2001:db8:100::", "2001:db8:100:0:ffff:ffff:ffff:ffff")},
			wantV6:     true, wantAuto: true,
		},
		{
			name: "dual stack, entries sorted IPv4 first then by address",
			obj:  newPool("dual", addrs("2001:db8:100::10-2001:db8:100::20", "198.18.101.0/24", "198.18.100.10-198.18.100.20")),
			wantRanges: []Range{
				rng("198.18.100.10", "198.18.100.20"),
				rng("198.18.101.0", "198.18.101.255"),
				rng("2001:db8:100::10", "2001:db8:100::20"),
			},
			wantV4: true, wantV6: true, wantAuto: true,
		},
		{
			name: "adjacent entries do not overlap",
			obj:  newPool("adjacent", addrs("198.18.100.10-198.18.100.19", "198.18.100.0-198.18.100.9")),
			wantRanges: []Range{
				rng("198.18.100.0", "198.18.100.9"),
				rng("198.18.100.10", "198.18.100.19"),
			},
			wantV4: true, wantAuto: true,
		},
		{
			name:       "all of IPv4 and half of IPv6 do not overlap",
			obj:        newPool("everything", addrs("8000::/1", "0.0.0.0/0")),
			wantRanges: []Range{rng("0.0.0.0", "255.255.255.255"), rng("8000::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
			wantV4:     true, wantV6: true, wantAuto: true,
		},
		{
			name:       "autoAssign false and avoidBuggyIPs",
			obj:        newPool("manual", addrs("198.18.100.0/24"), autoAssign(false), avoidBuggyIPs()),
			wantRanges: []Range{rng("198.18.100.0", "198.18.100.255")},
			wantV4:     true, wantAvoid: true,
		},
		{
			name:       "autoAssign true explicitly",
			obj:        newPool("auto", addrs("198.18.100.0/24"), autoAssign(true)),
			wantRanges: []Range{rng("198.18.100.0", "198.18.100.255")},
			wantV4:     true, wantAuto: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj
			obj.Generation = 7
			obj.CreationTimestamp = at(3)
			p, errs := ParsePool(&obj)
			if len(errs) > 0 {
				t.Fatalf("ParsePool: unexpected errors:\n%s", dump(errs))
			}
			if p.Name != obj.Name {
				t.Errorf("Name = %q, want %q", p.Name, obj.Name)
			}
			if !reflect.DeepEqual(p.Ranges, tc.wantRanges) {
				t.Errorf("Ranges = %v, want %v", p.Ranges, tc.wantRanges)
			}
			if v4, v6 := p.Families(); v4 != tc.wantV4 || v6 != tc.wantV6 {
				t.Errorf("Families() = %v, %v, want %v, %v", v4, v6, tc.wantV4, tc.wantV6)
			}
			if p.AutoAssign != tc.wantAuto {
				t.Errorf("AutoAssign = %v, want %v", p.AutoAssign, tc.wantAuto)
			}
			if p.AvoidBuggyIPs != tc.wantAvoid {
				t.Errorf("AvoidBuggyIPs = %v, want %v", p.AvoidBuggyIPs, tc.wantAvoid)
			}
			if p.Generation != 7 {
				t.Errorf("Generation = %d, want 7", p.Generation)
			}
			if !p.Created.Equal(at(3).Time) {
				t.Errorf("Created = %v, want %v", p.Created, at(3).Time)
			}
			if p.Allocation != nil || p.Restricted() {
				t.Errorf("a pool without serviceAllocation has Allocation %+v, Restricted() = %v", p.Allocation, p.Restricted())
			}
		})
	}
}

func TestParsePoolErrors(t *testing.T) {
	tests := []struct {
		name string
		obj  v1beta1.IPAddressPool
		want []wantErr
	}{
		{
			name: "no addresses",
			obj:  newPool("p", nil),
			want: []wantErr{{field.ErrorTypeRequired, "spec.addresses", []string{"at least one CIDR or range", "198.18.100.0/24"}}},
		},
		{
			name: "empty address list",
			obj:  newPool("p", []string{}),
			want: []wantErr{{field.ErrorTypeRequired, "spec.addresses", []string{"at least one"}}},
		},
		{
			name: "CIDR with host bits is reported at its index",
			obj:  newPool("p", addrs("198.18.101.0/24", "198.18.100.7/24")),
			want: []wantErr{{field.ErrorTypeInvalid, "spec.addresses[1]", []string{"did you mean 198.18.100.0/24"}}},
		},
		{
			name: "every bad entry is reported",
			obj:  newPool("p", addrs("banana", "198.18.100.20-198.18.100.10", "198.18.100.1-2001:db8::1", "")),
			want: []wantErr{
				{field.ErrorTypeInvalid, "spec.addresses[0]", []string{"neither a CIDR nor a range"}},
				{field.ErrorTypeInvalid, "spec.addresses[1]", []string{"reversed", "write 198.18.100.10-198.18.100.20"}},
				{field.ErrorTypeInvalid, "spec.addresses[2]", []string{"mixes IPv4 and IPv6"}},
				{field.ErrorTypeInvalid, "spec.addresses[3]", []string{"empty address entry"}},
			},
		},
		{
			name: "duplicate entry",
			obj:  newPool("p", addrs("198.18.100.0/24", "198.18.100.0/24")),
			want: []wantErr{{field.ErrorTypeDuplicate, "spec.addresses[1]", []string{"duplicates spec.addresses[0]", "remove one"}}},
		},
		{
			name: "same addresses written differently are duplicates",
			obj:  newPool("p", addrs("198.18.100.0-198.18.100.255", "198.18.100.0/24")),
			want: []wantErr{{field.ErrorTypeDuplicate, "spec.addresses[1]", []string{"duplicates spec.addresses[0]"}}},
		},
		{
			name: "overlapping entries",
			obj:  newPool("p", addrs("198.18.100.0/24", "198.18.100.128-198.18.101.10")),
			want: []wantErr{{field.ErrorTypeDuplicate, "spec.addresses[1]", []string{"overlaps spec.addresses[0] (198.18.100.0/24) of the same pool", "remove one"}}},
		},
		{
			name: "overlap is reported on the entry that starts later",
			obj:  newPool("p", addrs("198.18.100.128-198.18.101.10", "198.18.100.0/24")),
			want: []wantErr{{field.ErrorTypeDuplicate, "spec.addresses[0]", []string{"overlaps spec.addresses[1] (198.18.100.0/24)"}}},
		},
		{
			name: "IPv6 overlap",
			obj:  newPool("p", addrs("2001:db8::/64", "2001:db8::1-2001:db8::5")),
			want: []wantErr{{field.ErrorTypeDuplicate, "spec.addresses[1]", []string{"overlaps spec.addresses[0] (2001:db8::/64)"}}},
		},
		{
			name: "negative priority",
			obj:  newPool("p", addrs("198.18.100.0/24"), allocation(v1beta1.ServiceAllocation{Priority: -1})),
			want: []wantErr{{field.ErrorTypeInvalid, "spec.serviceAllocation.priority", []string{"must be 0 (no priority) or more"}}},
		},
		{
			name: "invalid namespace",
			obj:  newPool("p", addrs("198.18.100.0/24"), allocation(v1beta1.ServiceAllocation{Namespaces: []string{"team-a", "Team_B"}})),
			want: []wantErr{{field.ErrorTypeInvalid, "spec.serviceAllocation.namespaces[1]", []string{"not a namespace name", "lower case"}}},
		},
		{
			name: "empty namespace",
			obj:  newPool("p", addrs("198.18.100.0/24"), allocation(v1beta1.ServiceAllocation{Namespaces: []string{""}})),
			want: []wantErr{{field.ErrorTypeInvalid, "spec.serviceAllocation.namespaces[0]", []string{"not a namespace name"}}},
		},
		{
			name: "duplicate namespace",
			obj:  newPool("p", addrs("198.18.100.0/24"), allocation(v1beta1.ServiceAllocation{Namespaces: []string{"team-a", "team-b", "team-a"}})),
			want: []wantErr{{field.ErrorTypeDuplicate, "spec.serviceAllocation.namespaces[2]", nil}},
		},
		{
			name: "invalid selector operator",
			obj: newPool("p", addrs("198.18.100.0/24"), allocation(v1beta1.ServiceAllocation{
				NamespaceSelectors: []metav1.LabelSelector{expr("env", "Equals", "prod")},
			})),
			want: []wantErr{{field.ErrorTypeInvalid, "spec.serviceAllocation.namespaceSelectors[0]", []string{"not a valid label selector", `"Equals" is not a valid label selector operator`}}},
		},
		{
			name: "invalid selector label key",
			obj: newPool("p", addrs("198.18.100.0/24"), allocation(v1beta1.ServiceAllocation{
				ServiceSelectors: []metav1.LabelSelector{sel("app", "web"), sel("bad key!", "x")},
			})),
			want: []wantErr{{field.ErrorTypeInvalid, "spec.serviceAllocation.serviceSelectors[1]", []string{"not a valid label selector"}}},
		},
		{
			name: "In without values",
			obj: newPool("p", addrs("198.18.100.0/24"), allocation(v1beta1.ServiceAllocation{
				ServiceSelectors: []metav1.LabelSelector{expr("app", metav1.LabelSelectorOpIn)},
			})),
			want: []wantErr{{field.ErrorTypeInvalid, "spec.serviceAllocation.serviceSelectors[0]", []string{"not a valid label selector"}}},
		},
		{
			name: "empty namespace selector",
			obj: newPool("p", addrs("198.18.100.0/24"), allocation(v1beta1.ServiceAllocation{
				NamespaceSelectors: []metav1.LabelSelector{{}},
			})),
			want: []wantErr{{field.ErrorTypeInvalid, "spec.serviceAllocation.namespaceSelectors[0]", []string{"matches everything", "remove"}}},
		},
		{
			name: "empty service selector",
			obj: newPool("p", addrs("198.18.100.0/24"), allocation(v1beta1.ServiceAllocation{
				ServiceSelectors: []metav1.LabelSelector{sel("app", "web"), {MatchLabels: map[string]string{}}},
			})),
			want: []wantErr{{field.ErrorTypeInvalid, "spec.serviceAllocation.serviceSelectors[1]", []string{"matches everything"}}},
		},
		{
			name: "duplicate service selector",
			obj: newPool("p", addrs("198.18.100.0/24"), allocation(v1beta1.ServiceAllocation{
				ServiceSelectors: []metav1.LabelSelector{sel("app", "web", "tier", "front"), sel("app", "api"), sel("tier", "front", "app", "web")},
			})),
			want: []wantErr{{field.ErrorTypeDuplicate, "spec.serviceAllocation.serviceSelectors[2]", []string{"same selector as spec.serviceAllocation.serviceSelectors[0]"}}},
		},
		{
			name: "duplicate namespace selector",
			obj: newPool("p", addrs("198.18.100.0/24"), allocation(v1beta1.ServiceAllocation{
				NamespaceSelectors: []metav1.LabelSelector{expr("env", metav1.LabelSelectorOpIn, "prod"), expr("env", metav1.LabelSelectorOpIn, "prod")},
			})),
			want: []wantErr{{field.ErrorTypeDuplicate, "spec.serviceAllocation.namespaceSelectors[1]", []string{"same selector as spec.serviceAllocation.namespaceSelectors[0]"}}},
		},
		{
			name: "address and allocation errors are all reported",
			obj: newPool("p", addrs("198.18.100.7/24"), allocation(v1beta1.ServiceAllocation{
				Priority:         -3,
				Namespaces:       []string{"ok", "NOT-OK"},
				ServiceSelectors: []metav1.LabelSelector{{}},
			})),
			want: []wantErr{
				{field.ErrorTypeInvalid, "spec.addresses[0]", []string{"did you mean 198.18.100.0/24"}},
				{field.ErrorTypeInvalid, "spec.serviceAllocation.priority", nil},
				{field.ErrorTypeInvalid, "spec.serviceAllocation.namespaces[1]", nil},
				{field.ErrorTypeInvalid, "spec.serviceAllocation.serviceSelectors[0]", nil},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, errs := ParsePool(&tc.obj)
			if p != nil {
				t.Errorf("ParsePool returned a pool (%v) with its errors", p.Ranges)
			}
			checkErrs(t, errs, tc.want)
		})
	}
}

// names returns the sorted names of the pools in c.
func names(c *Config) []string { return keys(c.Pools) }

func keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func TestBuildValid(t *testing.T) {
	pools := []v1beta1.IPAddressPool{
		newPool("v4", addrs("198.18.100.0/24"), created(0)),
		newPool("v6", addrs("2001:db8:100::/64"), created(1)),
		newPool("dual", addrs("198.18.101.0/24", "2001:db8:101::/64"), created(2)),
	}
	res := Build(pools, nil)
	if got, want := names(res.Config), []string{"dual", "v4", "v6"}; !reflect.DeepEqual(got, want) {
		t.Errorf("pools = %v, want %v", got, want)
	}
	if len(res.Errors) != 0 || len(res.Stale) != 0 {
		t.Errorf("Errors = %v, Stale = %v, want none", res.Errors, res.Stale)
	}
	if got := res.Config.Pools["dual"].Ranges; len(got) != 2 {
		t.Errorf("dual pool has ranges %v", got)
	}

	// No pools is a valid, empty configuration.
	res = Build(nil, nil)
	if res.Config == nil || len(res.Config.Pools) != 0 || len(res.Errors) != 0 || len(res.Stale) != 0 {
		t.Errorf("Build(nil, nil) = %+v", res)
	}
}

func TestBuildOverlap(t *testing.T) {
	tests := []struct {
		name     string
		pools    []v1beta1.IPAddressPool
		accepted []string
		// rejected maps a rejected pool to its expected errors.
		rejected map[string][]wantErr
	}{
		{
			name: "older pool wins regardless of input order",
			pools: []v1beta1.IPAddressPool{
				newPool("newer", addrs("198.18.200.0/24", "198.18.100.128/25"), created(5)),
				newPool("older", addrs("198.18.100.0/24"), created(1)),
			},
			accepted: []string{"older"},
			rejected: map[string][]wantErr{"newer": {{field.ErrorTypeInvalid, "spec.addresses[1]", []string{
				`overlaps 198.18.100.0-198.18.100.255 of IPAddressPool "older"`,
				"remove the overlap from one of the two pools",
			}}}},
		},
		{
			name: "older pool wins even when its name sorts later",
			pools: []v1beta1.IPAddressPool{
				newPool("a-newer", addrs("198.18.100.10-198.18.100.20"), created(2)),
				newPool("z-older", addrs("198.18.100.15-198.18.100.30"), created(1)),
			},
			accepted: []string{"z-older"},
			rejected: map[string][]wantErr{"a-newer": {{field.ErrorTypeInvalid, "spec.addresses[0]", []string{`IPAddressPool "z-older"`}}}},
		},
		{
			name: "same creation time: the name that sorts first wins",
			pools: []v1beta1.IPAddressPool{
				newPool("beta", addrs("198.18.100.20-198.18.100.30"), created(1)),
				newPool("alpha", addrs("198.18.100.30-198.18.100.40"), created(1)),
			},
			accepted: []string{"alpha"},
			rejected: map[string][]wantErr{"beta": {{field.ErrorTypeInvalid, "spec.addresses[0]", []string{`overlaps 198.18.100.30-198.18.100.40 of IPAddressPool "alpha"`}}}},
		},
		{
			name: "IPv6 overlap",
			pools: []v1beta1.IPAddressPool{
				newPool("v6", addrs("2001:db8:100::/64"), created(1)),
				newPool("all-v6", addrs("198.18.100.0/24", "2000::/3"), created(2)),
			},
			accepted: []string{"v6"},
			rejected: map[string][]wantErr{"all-v6": {{field.ErrorTypeInvalid, "spec.addresses[1]", []string{`IPAddressPool "v6"`}}}},
		},
		{
			name: "one error per overlapped range of other pools",
			pools: []v1beta1.IPAddressPool{
				newPool("a", addrs("198.18.100.0/24"), created(1)),
				newPool("b", addrs("198.18.101.0/24"), created(2)),
				newPool("c", addrs("198.18.100.0/23"), created(3)),
			},
			accepted: []string{"a", "b"},
			rejected: map[string][]wantErr{"c": {
				{field.ErrorTypeInvalid, "spec.addresses[0]", []string{`IPAddressPool "a"`}},
				{field.ErrorTypeInvalid, "spec.addresses[0]", []string{`IPAddressPool "b"`}},
			}},
		},
		{
			name: "a rejected pool holds no addresses",
			pools: []v1beta1.IPAddressPool{
				newPool("a", addrs("198.18.100.0/24"), created(1)),
				newPool("b", addrs("198.18.101.0/24", "198.18.100.200-198.18.100.210"), created(2)),
				newPool("c", addrs("198.18.101.0/24"), created(3)),
			},
			accepted: []string{"a", "c"},
			rejected: map[string][]wantErr{"b": {{field.ErrorTypeInvalid, "spec.addresses[1]", []string{`IPAddressPool "a"`}}}},
		},
		{
			name: "an invalid older pool does not block a newer one",
			pools: []v1beta1.IPAddressPool{
				newPool("a", addrs("198.18.100.0/24", "banana"), created(1)),
				newPool("b", addrs("198.18.100.0/24"), created(2)),
			},
			accepted: []string{"b"},
			rejected: map[string][]wantErr{"a": {{field.ErrorTypeInvalid, "spec.addresses[1]", []string{"neither a CIDR nor a range"}}}},
		},
		{
			name: "an older pool rejects every newer pool inside it; the other family is not affected",
			pools: []v1beta1.IPAddressPool{
				newPool("low", addrs("198.18.100.0-198.18.100.127"), created(1)),
				newPool("high", addrs("198.18.100.128/25"), created(2)),
				newPool("all-v4", addrs("0.0.0.0/0"), created(0)),
				newPool("all-v6", addrs("2000::/3"), created(3)),
			},
			accepted: []string{"all-v4", "all-v6"},
			rejected: map[string][]wantErr{
				"low":  {{field.ErrorTypeInvalid, "spec.addresses[0]", []string{`IPAddressPool "all-v4"`}}},
				"high": {{field.ErrorTypeInvalid, "spec.addresses[0]", []string{`IPAddressPool "all-v4"`}}},
			},
		},
		{
			name: "adjacent pools are both accepted",
			pools: []v1beta1.IPAddressPool{
				newPool("low", addrs("198.18.100.0-198.18.100.127"), created(1)),
				newPool("high", addrs("198.18.100.128/25"), created(2)),
			},
			accepted: []string{"high", "low"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := Build(tc.pools, nil)
			if got := names(res.Config); !reflect.DeepEqual(got, tc.accepted) {
				t.Errorf("accepted pools = %v, want %v", got, tc.accepted)
			}
			if got, want := keys(res.Errors), keys(tc.rejected); !reflect.DeepEqual(got, want) {
				t.Errorf("pools with errors = %v, want %v", got, want)
			}
			for name, want := range tc.rejected {
				t.Run(name, func(t *testing.T) { checkErrs(t, res.Errors[name], want) })
			}
			if len(res.Stale) != 0 {
				t.Errorf("Stale = %v without a previous config", res.Stale)
			}
			// The outcome does not depend on the order of the input.
			rev := make([]v1beta1.IPAddressPool, len(tc.pools))
			for i := range tc.pools {
				rev[len(rev)-1-i] = tc.pools[i]
			}
			if res2 := Build(rev, nil); !reflect.DeepEqual(res, res2) {
				t.Errorf("Build depends on input order:\n%+v\n%+v", res, res2)
			}
		})
	}
}

// TestBuildOverlapFieldPerEntry: when several entries of a newer pool
// overlap the same range of an older pool, each error must point at the
// entry it is about.
func TestBuildOverlapFieldPerEntry(t *testing.T) {
	res := Build([]v1beta1.IPAddressPool{
		newPool("a", addrs("198.18.100.0/24"), created(1)),
		newPool("b", addrs("198.18.100.1-198.18.100.5", "198.18.100.10-198.18.100.20"), created(2)),
	}, nil)
	checkErrs(t, res.Errors["b"], []wantErr{
		{field.ErrorTypeInvalid, "spec.addresses[0]", []string{`IPAddressPool "a"`}},
		{field.ErrorTypeInvalid, "spec.addresses[1]", []string{`IPAddressPool "a"`}},
	})
	for _, e := range res.Errors["b"] {
		if e.Field == "spec.addresses[1]" && e.BadValue != "198.18.100.10-198.18.100.20" {
			t.Errorf("%s: BadValue = %v", e.Field, e.BadValue)
		}
	}
}

// TestParsePoolReportsEveryOverlap: an entry that overlaps an earlier,
// larger entry is reported even when an entry between them was itself
// reported.
func TestParsePoolReportsEveryOverlap(t *testing.T) {
	obj := newPool("p", addrs("198.18.100.0-198.18.100.100", "198.18.100.5-198.18.100.6", "198.18.100.50-198.18.100.60"))
	_, errs := ParsePool(&obj)
	checkErrs(t, errs, []wantErr{
		{field.ErrorTypeDuplicate, "spec.addresses[1]", []string{"overlaps spec.addresses[0]"}},
		{field.ErrorTypeDuplicate, "spec.addresses[2]", []string{"overlaps spec.addresses[0]"}},
	})
}

func TestBuildLastKnownGood(t *testing.T) {
	good := newPool("a", addrs("198.18.100.0/24"), created(1), generation(1),
		allocation(v1beta1.ServiceAllocation{Namespaces: []string{"team-a"}}))
	first := Build([]v1beta1.IPAddressPool{good}, nil)
	if len(first.Errors) != 0 {
		t.Fatalf("first Build: %v", first.Errors)
	}

	bad := newPool("a", addrs("198.18.100.0/33"), created(1), generation(2))

	t.Run("an invalid edit keeps the last valid spec", func(t *testing.T) {
		res := Build([]v1beta1.IPAddressPool{bad}, first.Config)
		p := res.Config.Pools["a"]
		if p == nil {
			t.Fatalf("pool a dropped; want it kept with its last valid spec")
		}
		if !res.Stale["a"] {
			t.Errorf("Stale = %v, want a", res.Stale)
		}
		if want := []Range{rng("198.18.100.0", "198.18.100.255")}; !reflect.DeepEqual(p.Ranges, want) {
			t.Errorf("Ranges = %v, want the last valid %v", p.Ranges, want)
		}
		if p.Generation != 1 {
			t.Errorf("Generation = %d, want the generation of the last valid spec, 1", p.Generation)
		}
		if !p.Restricted() || !p.Matches(ServiceInfo{Namespace: "team-a"}) || p.Matches(ServiceInfo{Namespace: "team-b"}) {
			t.Errorf("the last valid serviceAllocation was not kept: %+v", p.Allocation)
		}
		checkErrs(t, res.Errors["a"], []wantErr{{field.ErrorTypeInvalid, "spec.addresses[0]", []string{"not a valid CIDR"}}})
	})

	t.Run("without a previous config the invalid pool is dropped", func(t *testing.T) {
		res := Build([]v1beta1.IPAddressPool{bad}, nil)
		if len(res.Config.Pools) != 0 || len(res.Stale) != 0 {
			t.Errorf("pools = %v, Stale = %v, want none", names(res.Config), res.Stale)
		}
		checkErrs(t, res.Errors["a"], []wantErr{{field.ErrorTypeInvalid, "spec.addresses[0]", []string{"not a valid CIDR"}}})
	})

	t.Run("a valid edit replaces the previous spec", func(t *testing.T) {
		edited := newPool("a", addrs("198.18.101.0/24"), created(1), generation(3))
		res := Build([]v1beta1.IPAddressPool{edited}, first.Config)
		p := res.Config.Pools["a"]
		if p == nil || p.Generation != 3 || p.Ranges[0] != rng("198.18.101.0", "198.18.101.255") || p.Allocation != nil {
			t.Errorf("pool a = %+v, want the edited spec", p)
		}
		if len(res.Stale) != 0 || len(res.Errors) != 0 {
			t.Errorf("Stale = %v, Errors = %v, want none", res.Stale, res.Errors)
		}
	})

	t.Run("a deleted pool is not resurrected from the previous config", func(t *testing.T) {
		res := Build(nil, first.Config)
		if len(res.Config.Pools) != 0 || len(res.Stale) != 0 || len(res.Errors) != 0 {
			t.Errorf("Build(nil, previous) = pools %v, Stale %v, Errors %v", names(res.Config), res.Stale, res.Errors)
		}
	})

	t.Run("a stale pool still blocks newer overlapping pools", func(t *testing.T) {
		newer := newPool("b", addrs("198.18.100.128/25"), created(2))
		res := Build([]v1beta1.IPAddressPool{newer, bad}, first.Config)
		if got, want := names(res.Config), []string{"a"}; !reflect.DeepEqual(got, want) {
			t.Errorf("pools = %v, want %v", got, want)
		}
		if !res.Stale["a"] || res.Stale["b"] {
			t.Errorf("Stale = %v, want only a", res.Stale)
		}
		checkErrs(t, res.Errors["b"], []wantErr{{field.ErrorTypeInvalid, "spec.addresses[0]", []string{`IPAddressPool "a"`}}})
	})

	t.Run("an edit that overlaps an older pool keeps the last valid spec", func(t *testing.T) {
		older := newPool("old", addrs("198.18.200.0/24"), created(0))
		prev := Build([]v1beta1.IPAddressPool{older, good}, nil)
		if len(prev.Errors) != 0 {
			t.Fatalf("setup: %v", prev.Errors)
		}
		grown := newPool("a", addrs("198.18.100.0/24", "198.18.200.0/25"), created(1), generation(2))
		res := Build([]v1beta1.IPAddressPool{older, grown}, prev.Config)
		if got, want := names(res.Config), []string{"a", "old"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("pools = %v, want %v", got, want)
		}
		if !res.Stale["a"] || res.Config.Pools["a"].Generation != 1 {
			t.Errorf("Stale = %v, a = %+v; want a stale at generation 1", res.Stale, res.Config.Pools["a"])
		}
		checkErrs(t, res.Errors["a"], []wantErr{{field.ErrorTypeInvalid, "spec.addresses[1]", []string{`IPAddressPool "old"`}}})
	})

	t.Run("an invalid pool whose last valid spec overlaps an accepted pool is dropped", func(t *testing.T) {
		// b (newer) and a (older) are both valid; then a grows over b's
		// addresses, which is valid because a is older, and b's spec is
		// broken at the same time. b's last valid spec now overlaps a.
		b := newPool("b", addrs("198.18.101.0/24"), created(2))
		prev := Build([]v1beta1.IPAddressPool{good, b}, nil)
		if len(prev.Errors) != 0 {
			t.Fatalf("setup: %v", prev.Errors)
		}
		grown := newPool("a", addrs("198.18.100.0/23"), created(1), generation(2))
		brokenB := newPool("b", addrs("banana"), created(2), generation(2))
		res := Build([]v1beta1.IPAddressPool{brokenB, grown}, prev.Config)
		if got, want := names(res.Config), []string{"a"}; !reflect.DeepEqual(got, want) {
			t.Errorf("pools = %v, want %v", got, want)
		}
		if len(res.Stale) != 0 {
			t.Errorf("Stale = %v, want none", res.Stale)
		}
		checkErrs(t, res.Errors["b"], []wantErr{{field.ErrorTypeInvalid, "spec.addresses[0]", []string{"neither a CIDR nor a range"}}})
	})

	t.Run("the previous config of a new pool name is not used", func(t *testing.T) {
		other := newPool("other", addrs("banana"), created(1))
		res := Build([]v1beta1.IPAddressPool{other}, first.Config)
		if len(res.Config.Pools) != 0 || len(res.Stale) != 0 {
			t.Errorf("pools = %v, Stale = %v, want none", names(res.Config), res.Stale)
		}
	})
}

func TestMatches(t *testing.T) {
	teamA := ServiceInfo{Namespace: "team-a"}
	teamAWeb := ServiceInfo{Namespace: "team-a", Labels: map[string]string{"app": "web"}}
	teamBWeb := ServiceInfo{Namespace: "team-b", Labels: map[string]string{"app": "web"}}
	prod := ServiceInfo{Namespace: "shop", NamespaceLabels: map[string]string{"env": "prod"}}
	prodWeb := ServiceInfo{Namespace: "shop", NamespaceLabels: map[string]string{"env": "prod"}, Labels: map[string]string{"app": "web"}}
	dev := ServiceInfo{Namespace: "shop-dev", NamespaceLabels: map[string]string{"env": "dev"}}
	front := ServiceInfo{Namespace: "x", Labels: map[string]string{"tier": "front"}}
	bare := ServiceInfo{Namespace: "x"}

	type svcCase struct {
		svc  ServiceInfo
		want bool
	}
	tests := []struct {
		name           string
		sa             *v1beta1.ServiceAllocation
		wantRestricted bool
		cases          []svcCase
	}{
		{
			name:  "no serviceAllocation serves every Service",
			sa:    nil,
			cases: []svcCase{{bare, true}, {teamA, true}, {prod, true}},
		},
		{
			name:  "priority only serves every Service",
			sa:    &v1beta1.ServiceAllocation{Priority: 5},
			cases: []svcCase{{bare, true}, {teamA, true}, {prodWeb, true}},
		},
		{
			name:           "namespaces",
			sa:             &v1beta1.ServiceAllocation{Namespaces: []string{"team-a", "shop"}},
			wantRestricted: true,
			cases:          []svcCase{{teamA, true}, {teamAWeb, true}, {prod, true}, {teamBWeb, false}, {dev, false}, {bare, false}},
		},
		{
			name:           "namespace selectors",
			sa:             &v1beta1.ServiceAllocation{NamespaceSelectors: []metav1.LabelSelector{sel("env", "prod")}},
			wantRestricted: true,
			cases:          []svcCase{{prod, true}, {prodWeb, true}, {dev, false}, {teamA, false}},
		},
		{
			name: "namespace selector expressions",
			sa: &v1beta1.ServiceAllocation{NamespaceSelectors: []metav1.LabelSelector{
				expr("env", metav1.LabelSelectorOpNotIn, "prod"),
			}},
			wantRestricted: true,
			// NotIn also matches namespaces without the label.
			cases: []svcCase{{prod, false}, {dev, true}, {teamA, true}},
		},
		{
			name:           "a namespace listed or selected is enough",
			sa:             &v1beta1.ServiceAllocation{Namespaces: []string{"team-a"}, NamespaceSelectors: []metav1.LabelSelector{sel("env", "prod"), expr("env", metav1.LabelSelectorOpIn, "staging")}},
			wantRestricted: true,
			cases: []svcCase{{teamA, true}, {prod, true}, {dev, false}, {teamBWeb, false},
				{ServiceInfo{Namespace: "st", NamespaceLabels: map[string]string{"env": "staging"}}, true}},
		},
		{
			name:           "service selectors: any one matches",
			sa:             &v1beta1.ServiceAllocation{ServiceSelectors: []metav1.LabelSelector{sel("app", "web"), expr("tier", metav1.LabelSelectorOpExists)}},
			wantRestricted: true,
			cases:          []svcCase{{teamAWeb, true}, {teamBWeb, true}, {front, true}, {teamA, false}, {bare, false}},
		},
		{
			name:           "namespaces and service selectors: both must match",
			sa:             &v1beta1.ServiceAllocation{Namespaces: []string{"team-a"}, ServiceSelectors: []metav1.LabelSelector{sel("app", "web")}},
			wantRestricted: true,
			cases:          []svcCase{{teamAWeb, true}, {teamA, false}, {teamBWeb, false}},
		},
		{
			name:           "namespace selectors and service selectors: both must match",
			sa:             &v1beta1.ServiceAllocation{Priority: 1, NamespaceSelectors: []metav1.LabelSelector{sel("env", "prod")}, ServiceSelectors: []metav1.LabelSelector{sel("app", "web")}},
			wantRestricted: true,
			cases:          []svcCase{{prodWeb, true}, {prod, false}, {teamBWeb, false}},
		},
		{
			name:           "multi-label selector needs every label",
			sa:             &v1beta1.ServiceAllocation{ServiceSelectors: []metav1.LabelSelector{sel("app", "web", "tier", "front")}},
			wantRestricted: true,
			cases: []svcCase{{teamAWeb, false}, {front, false},
				{ServiceInfo{Namespace: "x", Labels: map[string]string{"app": "web", "tier": "front", "extra": "y"}}, true}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []poolOpt
			if tc.sa != nil {
				opts = append(opts, allocation(*tc.sa))
			}
			obj := newPool("p", addrs("198.18.100.0/24"), opts...)
			p, errs := ParsePool(&obj)
			if len(errs) > 0 {
				t.Fatalf("ParsePool:\n%s", dump(errs))
			}
			if got := p.Restricted(); got != tc.wantRestricted {
				t.Errorf("Restricted() = %v, want %v", got, tc.wantRestricted)
			}
			if tc.sa != nil && p.Allocation.Priority != tc.sa.Priority {
				t.Errorf("Priority = %d, want %d", p.Allocation.Priority, tc.sa.Priority)
			}
			for _, c := range tc.cases {
				if got := p.Matches(c.svc); got != c.want {
					t.Errorf("Matches(%+v) = %v, want %v", c.svc, got, c.want)
				}
			}
		})
	}
}

func TestIsBuggy(t *testing.T) {
	tests := []struct {
		a    string
		want bool
	}{
		{"198.18.100.0", true},
		{"198.18.100.255", true},
		{"0.0.0.0", true},
		{"255.255.255.255", true},
		{"198.18.100.1", false},
		{"198.18.100.254", false},
		{"198.18.0.1", false},
		{"198.18.255.1", false},
		{"2001:db8::", false},
		{"2001:db8::ff", false},
		{"::ffff:198.18.100.0", false},
	}
	for _, tc := range tests {
		if got := IsBuggy(addr(tc.a)); got != tc.want {
			t.Errorf("IsBuggy(%s) = %v, want %v", tc.a, got, tc.want)
		}
	}
	if IsBuggy(netip.Addr{}) {
		t.Errorf("IsBuggy(zero Addr) = true")
	}
}

func TestPoolContains(t *testing.T) {
	spec := addrs("2001:db8::/126", "198.18.102.10-198.18.102.20", "198.18.100.0/24", "198.18.103.255-198.18.104.0")
	tests := []struct {
		a               string
		want, wantAvoid bool
	}{
		{"198.18.100.0", true, false},
		{"198.18.100.1", true, true},
		{"198.18.100.254", true, true},
		{"198.18.100.255", true, false},
		{"198.18.101.5", false, false},
		{"198.18.102.9", false, false},
		{"198.18.102.10", true, true},
		{"198.18.102.20", true, true},
		{"198.18.102.21", false, false},
		{"198.18.103.255", true, false},
		{"198.18.104.0", true, false},
		{"198.18.104.1", false, false},
		{"198.18.99.255", false, false},
		{"2001:db8::", true, true}, // IPv6 addresses are never buggy
		{"2001:db8::3", true, true},
		{"2001:db8::4", false, false},
		{"::ffff:198.18.100.1", false, false},
		{"0.0.0.1", false, false},
		{"::1", false, false},
	}
	for _, avoid := range []bool{false, true} {
		var opts []poolOpt
		if avoid {
			opts = append(opts, avoidBuggyIPs())
		}
		obj := newPool("p", spec, opts...)
		p, errs := ParsePool(&obj)
		if len(errs) > 0 {
			t.Fatalf("ParsePool:\n%s", dump(errs))
		}
		for _, tc := range tests {
			want := tc.want
			if avoid {
				want = tc.wantAvoid
			}
			if got := p.Contains(addr(tc.a)); got != want {
				t.Errorf("avoidBuggyIPs=%v: Contains(%s) = %v, want %v", avoid, tc.a, got, want)
			}
		}
		if p.Contains(netip.Addr{}) {
			t.Errorf("avoidBuggyIPs=%v: Contains(zero Addr) = true", avoid)
		}
	}
}

// TestBuildGrowingIntoAnotherPoolKeepsTheOther: an edit that grows an
// older pool over a newer, unchanged pool's addresses is the one rejected,
// and the older pool keeps serving with its previous spec.
func TestBuildGrowingIntoAnotherPoolKeepsTheOther(t *testing.T) {
	first := Build([]v1beta1.IPAddressPool{
		newPool("old", addrs("198.18.100.0/25"), created(0)),
		newPool("new", addrs("198.18.100.128/25"), created(5)),
	}, nil)
	if len(first.Errors) != 0 {
		t.Fatalf("setup: %v", first.Errors)
	}
	res := Build([]v1beta1.IPAddressPool{
		newPool("old", addrs("198.18.100.0/24"), created(0), generation(2)),
		newPool("new", addrs("198.18.100.128/25"), created(5)),
	}, first.Config)
	if _, ok := res.Errors["new"]; ok {
		t.Fatalf("the unchanged pool was rejected: %v", res.Errors["new"])
	}
	errs := res.Errors["old"]
	if len(errs) != 1 || errs[0].Field != "spec.addresses[0]" || !strings.Contains(errs[0].Detail, `IPAddressPool "new"`) {
		t.Fatalf("errors of the edited pool: %v", errs)
	}
	if !res.Stale["old"] || res.Config.Pools["old"].Ranges[0].String() != "198.18.100.0-198.18.100.127" {
		t.Fatalf("the edited pool does not keep its previous spec: stale=%v %v", res.Stale["old"], res.Config.Pools["old"])
	}
}
