package config

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// The checks below were found by the invalid-configuration suite
// (test/testdata/invalid): each let `kubectl pharos validate` or the
// webhook admit what the CRD's schema or the speakers cannot use, or
// worded its refusal with the wrong field.

func TestCommunityAliasNames(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"", "spec.communities[0].name: Required value"},
		{"  ", "spec.communities[0].name: Required value"},
		// An alias is looked up before a value is parsed: this one would
		// make every 65000:100 mean 65000:200.
		{"65000:100", `spec.communities[0].name: Invalid value: "65000:100": an alias name has no ':'`},
		{"large:64512:1:1", "an alias name has no ':'"},
	} {
		aliases, errs := ParseCommunityAliases([]v1beta1.Community{{ObjectMeta: metav1.ObjectMeta{Name: "c"},
			Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: tc.name, Value: "65000:200"}}}}})
		if got := errs["c"].ToAggregate(); got == nil || !strings.Contains(got.Error(), tc.want) {
			t.Errorf("alias %q: errors %v, want %q", tc.name, got, tc.want)
		}
		if _, ok := aliases[tc.name]; ok {
			t.Errorf("alias %q is defined", tc.name)
		}
	}
	adv, _, errs := ParseBGPAdvertisement(&v1beta1.BGPAdvertisement{Spec: v1beta1.BGPAdvertisementSpec{Communities: []string{"65000:100"}}}, nil, nil)
	if len(errs) > 0 || adv.Communities[0].String() != "65000:100" {
		t.Errorf("65000:100 is %v (%v)", adv, errs)
	}
}

func TestBFDMinimumTTLAbove255(t *testing.T) {
	for ttl, want := range map[uint32]string{254: "", 255: "", 256: "spec.minimumTtl: Invalid value: 256: a TTL is at most 255", 1000: "at most 255"} {
		_, errs := ParseBFDProfile(&v1beta1.BFDProfile{Spec: v1beta1.BFDProfileSpec{MinimumTTL: &ttl}})
		got := ""
		if err := errs.ToAggregate(); err != nil {
			got = err.Error()
		}
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("minimumTtl %d: errors %q, want %q", ttl, got, want)
		}
	}
}

// The CRD's schema makes the lists of a BGPAdvertisement sets; validate
// and the speakers refuse a repeated entry too, as they do an
// L2Advertisement's.
func TestBGPAdvertisementDuplicates(t *testing.T) {
	for want, spec := range map[string]v1beta1.BGPAdvertisementSpec{
		`spec.ipAddressPools[2]: Duplicate value: "lan": listed twice; remove one`: {IPAddressPools: []string{"lan", "guest", "lan"}},
		`spec.peers[1]: Duplicate value: "r1"`:                                     {Peers: []string{"r1", "r1"}},
		`spec.communities[1]: Duplicate value: "65000:1"`:                          {Communities: []string{"65000:1", "65000:1"}},
	} {
		_, _, errs := ParseBGPAdvertisement(&v1beta1.BGPAdvertisement{Spec: spec}, nil, nil)
		if got := errs.ToAggregate(); got == nil || !strings.Contains(got.Error(), want) {
			t.Errorf("%+v: errors %v, want %q", spec, got, want)
		}
	}
	// One value written twice, as a value and through an alias, is not
	// the same entry: it is sent once.
	adv, _, errs := ParseBGPAdvertisement(&v1beta1.BGPAdvertisement{Spec: v1beta1.BGPAdvertisementSpec{Communities: []string{"65535:65281", "no-export"}}},
		map[string]Community{"no-export": {Value: 65535<<16 | 65281}}, nil)
	if len(errs) > 0 || len(adv.Communities) != 1 {
		t.Errorf("value and alias: %v, %v", adv, errs)
	}
}

// An empty selector is refused in every selector list with advice that
// fits each, not only serviceAllocation's.
func TestEmptySelectorMessage(t *testing.T) {
	_, _, errs := ParseL2Advertisement(&v1beta1.L2Advertisement{Spec: v1beta1.L2AdvertisementSpec{NodeSelectors: []metav1.LabelSelector{{}}}}, nil)
	got := errs.ToAggregate()
	if got == nil || !strings.Contains(got.Error(), "spec.nodeSelectors[0]") || !strings.Contains(got.Error(), "an empty selector matches everything") ||
		strings.Contains(got.Error(), "serviceAllocation") {
		t.Errorf("errors %v", got)
	}
}
