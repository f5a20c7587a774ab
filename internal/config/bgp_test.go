package config

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

func u32(v uint32) *uint32 { return &v }
func i32(v int32) *int32   { return &v }
func dur(d time.Duration) *metav1.Duration {
	return &metav1.Duration{Duration: d}
}

func TestParseBGPPeer(t *testing.T) {
	ok := v1beta1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: "198.18.96.1"}
	tests := []struct {
		name string
		edit func(*v1beta1.BGPPeerSpec)
		errs []string // substrings; none means valid
		want func(*testing.T, *BGPPeer)
	}{
		{name: "minimal eBGP peer with defaults", want: func(t *testing.T, p *BGPPeer) {
			if p.Port != 179 || p.HoldTime != 90*time.Second || p.Keepalive != 30*time.Second || p.ConnectTime != 5*time.Second || p.IBGP() {
				t.Errorf("defaults: %+v", p)
			}
		}},
		{name: "keepalive alone gives a hold time of three keepalives", edit: func(s *v1beta1.BGPPeerSpec) { s.KeepaliveTime = dur(3 * time.Second) },
			want: func(t *testing.T, p *BGPPeer) {
				if p.HoldTime != 9*time.Second {
					t.Errorf("hold %s", p.HoldTime)
				}
			}},
		{name: "IPv6 peer", edit: func(s *v1beta1.BGPPeerSpec) { s.PeerAddress = "2001:db8:96::1" }},
		{name: "no ASN", edit: func(s *v1beta1.BGPPeerSpec) { s.PeerASN = 0 }, errs: []string{"spec.peerASN", "dynamicASN"}},
		{name: "both ASN and dynamic", edit: func(s *v1beta1.BGPPeerSpec) { s.DynamicASN = v1beta1.DynamicASNExternal }, errs: []string{"spec.dynamicASN", "not both"}},
		{name: "dynamic external", edit: func(s *v1beta1.BGPPeerSpec) { s.PeerASN = 0; s.DynamicASN = v1beta1.DynamicASNExternal }},
		{name: "bad address", edit: func(s *v1beta1.BGPPeerSpec) { s.PeerAddress = "router.lan" }, errs: []string{"spec.peerAddress", "not an IP address"}},
		{name: "source of the other family", edit: func(s *v1beta1.BGPPeerSpec) { s.SourceAddress = "2001:db8::1" }, errs: []string{"spec.sourceAddress", "family"}},
		{name: "IPv6 router ID", edit: func(s *v1beta1.BGPPeerSpec) { s.RouterID = "2001:db8::1" }, errs: []string{"spec.routerID", "IPv4"}},
		{name: "hold time too short", edit: func(s *v1beta1.BGPPeerSpec) { s.HoldTime = dur(2 * time.Second) }, errs: []string{"spec.holdTime", "at least 3s"}},
		{name: "keepalive over hold", edit: func(s *v1beta1.BGPPeerSpec) {
			s.HoldTime = dur(9 * time.Second)
			s.KeepaliveTime = dur(10 * time.Second)
		}, errs: []string{"spec.keepaliveTime"}},
		{name: "connect time in fractions", edit: func(s *v1beta1.BGPPeerSpec) { s.ConnectTime = dur(1500 * time.Millisecond) }, errs: []string{"spec.connectTime", "whole seconds"}},
		{name: "password and secret", edit: func(s *v1beta1.BGPPeerSpec) {
			s.Password = "x"
			s.PasswordSecret = &corev1.SecretReference{Name: "p", Namespace: "pharos-system"}
		}, errs: []string{"spec.passwordSecret", "not both"}},
		{name: "secret without namespace", edit: func(s *v1beta1.BGPPeerSpec) { s.PasswordSecret = &corev1.SecretReference{Name: "p"} }, errs: []string{"spec.passwordSecret"}},
		{name: "multihop on iBGP", edit: func(s *v1beta1.BGPPeerSpec) { s.PeerASN = 64512; s.EBGPMultiHop = true }, errs: []string{"spec.ebgpMultiHop", "eBGP only"}},
		{name: "bad node selector", edit: func(s *v1beta1.BGPPeerSpec) {
			s.NodeSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}}
		}, errs: []string{"spec.nodeSelectors[0]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := ok
			if tc.edit != nil {
				tc.edit(&spec)
			}
			p, errs := ParseBGPPeer(&v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "r1"}, Spec: spec})
			if len(tc.errs) == 0 {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				if tc.want != nil {
					tc.want(t, p)
				}
				return
			}
			msg := errs.ToAggregate().Error()
			for _, w := range tc.errs {
				if !strings.Contains(msg, w) {
					t.Errorf("errors %q lack %q", msg, w)
				}
			}
		})
	}
}

func TestParseBFDProfile(t *testing.T) {
	b, errs := ParseBFDProfile(&v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Spec: v1beta1.BFDProfileSpec{ReceiveInterval: u32(100), DetectMultiplier: u32(3)}})
	if len(errs) > 0 || b.ReceiveMs != 100 || b.TransmitMs != 300 || b.Multiplier != 3 {
		t.Errorf("got %+v %v", b, errs)
	}
	for name, spec := range map[string]v1beta1.BFDProfileSpec{
		"spec.passiveMode":      {PassiveMode: func() *bool { v := true; return &v }()},
		"spec.minimumTtl":       {MinimumTTL: u32(10)},
		"spec.transmitInterval": {TransmitInterval: u32(5)},
		"spec.detectMultiplier": {DetectMultiplier: u32(1)},
	} {
		if _, errs := ParseBFDProfile(&v1beta1.BFDProfile{Spec: spec}); !strings.Contains(errs.ToAggregate().Error(), name) {
			t.Errorf("%s: errors %v", name, errs)
		}
	}
}

func TestParseCommunity(t *testing.T) {
	for in, want := range map[string]string{"65000:100": "65000:100", "large:64512:1:2": "large:64512:1:2", "0:0": "0:0"} {
		c, err := ParseCommunity(in)
		if err != nil || c.String() != want {
			t.Errorf("%s: %v %v", in, c, err)
		}
	}
	for _, in := range []string{"65536:1", "1:65536", "large:1:2", "x:y", "100", "large:1:2:4294967296"} {
		if _, err := ParseCommunity(in); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func TestParseBGPAdvertisement(t *testing.T) {
	aliases, aliasErrs := ParseCommunityAliases([]v1beta1.Community{
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}, {Name: "bad", Value: "x"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "1:1"}}}},
	})
	if len(aliasErrs["a"]) != 1 || len(aliasErrs["b"]) != 1 || !strings.Contains(aliasErrs["b"].ToAggregate().Error(), "already defined") {
		t.Errorf("alias errors %v", aliasErrs)
	}
	exists := func(n string) bool { return n == "web" }
	tests := []struct {
		name    string
		spec    v1beta1.BGPAdvertisementSpec
		errs    []string
		missing string
	}{
		{name: "defaults"},
		{name: "alias and values", spec: v1beta1.BGPAdvertisementSpec{Communities: []string{"no-export", "65000:1", "large:1:2:3"}, LocalPref: u32(200)}},
		{name: "unknown alias", spec: v1beta1.BGPAdvertisementSpec{Communities: []string{"typo"}}, errs: []string{"spec.communities[0]", `no Community alias "typo"`}},
		{name: "bad value", spec: v1beta1.BGPAdvertisementSpec{Communities: []string{"70000:1"}}, errs: []string{"spec.communities[0]", "65535"}},
		{name: "aggregation out of range", spec: v1beta1.BGPAdvertisementSpec{AggregationLength: i32(33)}, errs: []string{"spec.aggregationLength"}},
		{name: "service selectors with aggregation", spec: v1beta1.BGPAdvertisementSpec{AggregationLength: i32(24), ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"a": "b"}}}}, errs: []string{"spec.serviceSelectors", "aggregation"}},
		{name: "missing pool", spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"web", "later"}}, missing: "later"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, missing, errs := ParseBGPAdvertisement(&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "adv"}, Spec: tc.spec}, aliases, exists)
			if got := strings.Join(missing, ","); got != tc.missing {
				t.Errorf("missing %q, want %q", got, tc.missing)
			}
			if len(tc.errs) == 0 {
				if len(errs) > 0 || a == nil {
					t.Fatalf("errors %v", errs)
				}
				return
			}
			msg := errs.ToAggregate().Error()
			for _, w := range tc.errs {
				if !strings.Contains(msg, w) {
					t.Errorf("errors %q lack %q", msg, w)
				}
			}
		})
	}
}

func TestAggregationErrors(t *testing.T) {
	pool := func(addrs ...string) *Pool {
		p, errs := ParsePool(&v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: addrs}})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		return p
	}
	adv := func(l4, l6 int) *BGPAdvertisement {
		return &BGPAdvertisement{Name: "a", AggregationLength: l4, AggregationLengthV6: l6}
	}
	for _, tc := range []struct {
		pool  *Pool
		adv   *BGPAdvertisement
		fails bool
	}{
		{pool("198.18.100.0/24"), adv(32, 128), false},
		{pool("198.18.100.0/24"), adv(24, 128), false},
		{pool("198.18.100.0/24"), adv(26, 128), false},
		{pool("198.18.100.0/24"), adv(23, 128), true},
		{pool("198.18.100.0/25", "198.18.100.128/25"), adv(24, 128), false},
		{pool("198.18.100.10-198.18.100.20"), adv(28, 128), true},
		{pool("2001:db8:100::/120"), adv(32, 120), false},
		{pool("2001:db8:100::/120"), adv(32, 64), true},
	} {
		errs := AggregationErrors(tc.adv, tc.pool)
		if (len(errs) > 0) != tc.fails {
			t.Errorf("pool %v lengths %d/%d: errors %v, want failure %v", tc.pool.Ranges, tc.adv.AggregationLength, tc.adv.AggregationLengthV6, errs, tc.fails)
		}
		if tc.fails && !strings.Contains(errs.ToAggregate().Error(), "outside the pool") {
			t.Errorf("message %v", errs)
		}
	}
}

func TestLocalPrefConflicts(t *testing.T) {
	pools := map[string]map[string]string{"web": nil, "db": {"tier": "db"}}
	a := &BGPAdvertisement{Name: "a", AggregationLength: 32, AggregationLengthV6: 128, LocalPref: u32(100), Pools: map[string]bool{"web": true}}
	b := &BGPAdvertisement{Name: "b", AggregationLength: 32, AggregationLengthV6: 128, LocalPref: u32(200), Pools: map[string]bool{"web": true}}
	c := &BGPAdvertisement{Name: "c", AggregationLength: 32, AggregationLengthV6: 128, LocalPref: u32(300), Pools: map[string]bool{"db": true}}
	d := &BGPAdvertisement{Name: "d", AggregationLength: 32, AggregationLengthV6: 128, LocalPref: u32(400), Pools: map[string]bool{"web": true}, Peers: map[string]bool{"r2": true}}
	e := &BGPAdvertisement{Name: "e", AggregationLength: 32, AggregationLengthV6: 128, LocalPref: u32(500), Pools: map[string]bool{"web": true}, Peers: map[string]bool{"r3": true}}
	got := LocalPrefConflicts([]*BGPAdvertisement{a, b, c, d, e}, pools)
	if len(got["b"]) == 0 || !strings.Contains(got["b"].ToAggregate().Error(), "BGPAdvertisement a") {
		t.Errorf("b conflicts with a: %v", got)
	}
	if len(got["a"]) != 0 || len(got["c"]) != 0 {
		t.Errorf("a and c have no conflict: %v", got)
	}
	if len(got["e"]) == 0 {
		t.Errorf("e (peer r3) conflicts with a (every peer): %v", got)
	}
}
