package config

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

func TestParseL2Advertisement(t *testing.T) {
	// "broken" exists with an invalid spec: it is not missing, because a
	// pool kept on its last valid spec still owns its addresses.
	exists := PoolNames([]v1beta1.IPAddressPool{newPool("web", addrs("198.18.100.0/24")), newPool("broken", addrs("not-a-cidr"))})
	tests := []struct {
		name    string
		spec    v1beta1.L2AdvertisementSpec
		missing string
		errs    []string
	}{
		{name: "empty announces everything"},
		{name: "named pool", spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"web"}}},
		{name: "named pool with an invalid spec is not missing", spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"broken"}}},
		{name: "pool that does not exist yet", spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"web", "later"}}, missing: "later"},
		{name: "duplicate pool", spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"web", "web"}}, errs: []string{"spec.ipAddressPools[1]", "listed twice"}},
		{name: "empty pool name", spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{""}}, errs: []string{"spec.ipAddressPools[0]", "empty pool name"}},
		{name: "bad interface", spec: v1beta1.L2AdvertisementSpec{Interfaces: []string{"eth0", "way-too-long-interface"}}, errs: []string{"spec.interfaces[1]", "for example eth0"}},
		{name: "duplicate interface", spec: v1beta1.L2AdvertisementSpec{Interfaces: []string{"eth0", "eth0"}}, errs: []string{"spec.interfaces[1]"}},
		{name: "bad node selector", spec: v1beta1.L2AdvertisementSpec{NodeSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: "Near"}}}}}, errs: []string{"spec.nodeSelectors[0]", "not a valid label selector"}},
		{name: "empty pool selector", spec: v1beta1.L2AdvertisementSpec{IPAddressPoolSelectors: []metav1.LabelSelector{{}}}, errs: []string{"spec.ipAddressPoolSelectors[0]", "matches everything"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "adv"}, Spec: tc.spec}
			adv, missing, errs := ParseL2Advertisement(obj, exists)
			if got := strings.Join(missing, ","); got != tc.missing {
				t.Errorf("missing = %q, want %q", got, tc.missing)
			}
			if len(tc.errs) == 0 {
				if len(errs) > 0 || adv == nil {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			msg := errs.ToAggregate().Error()
			for _, want := range tc.errs {
				if !strings.Contains(msg, want) {
					t.Errorf("errors %q lack %q", msg, want)
				}
			}
		})
	}
}

func TestL2AdvertisementSelects(t *testing.T) {
	pools := Build([]v1beta1.IPAddressPool{
		newPool("web", addrs("198.18.100.0/24")),
		newPool("db", addrs("198.18.101.0/24"), func(p *v1beta1.IPAddressPool) { p.Labels = map[string]string{"tier": "db"} }),
	}, nil).Config.Pools
	parse := func(spec v1beta1.L2AdvertisementSpec) *L2Advertisement {
		adv, _, errs := ParseL2Advertisement(&v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: spec}, nil)
		if errs != nil {
			t.Fatal(errs)
		}
		return adv
	}
	all := parse(v1beta1.L2AdvertisementSpec{})
	if !all.SelectsPool(pools["web"]) || !all.SelectsPool(pools["db"]) || !all.SelectsNode(nil) {
		t.Error("an empty advertisement must select every pool and node")
	}
	byName := parse(v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"web"}})
	if !byName.SelectsPool(pools["web"]) || byName.SelectsPool(pools["db"]) {
		t.Error("pool by name")
	}
	byLabel := parse(v1beta1.L2AdvertisementSpec{IPAddressPoolSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "db"}}}})
	if byLabel.SelectsPool(pools["web"]) || !byLabel.SelectsPool(pools["db"]) {
		t.Error("pool by label")
	}
	nodes := parse(v1beta1.L2AdvertisementSpec{NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"edge": "true"}}}})
	if nodes.SelectsNode(map[string]string{"edge": "false"}) || !nodes.SelectsNode(map[string]string{"edge": "true"}) {
		t.Error("node selector")
	}
}
