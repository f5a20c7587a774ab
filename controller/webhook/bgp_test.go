package webhook_test

import (
	"context"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/certs"
)

func cleanupBGP(t *testing.T) {
	t.Cleanup(func() {
		ctx := context.Background()
		// Peers first: the webhook keeps a BFDProfile that a peer names.
		_ = k8s.DeleteAllOf(ctx, &v1beta1.BGPPeer{})
		_ = k8s.DeleteAllOf(ctx, &v1beta1.BFDProfile{})
		_ = k8s.DeleteAllOf(ctx, &v1beta1.BGPAdvertisement{})
		_ = k8s.DeleteAllOf(ctx, &v1beta1.Community{})
	})
}

func peer(name, bfd string) *v1beta1.BGPPeer {
	return &v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.BGPPeerSpec{
		MyASN: 64512, PeerASN: 64513, PeerAddress: "198.18.96.1", BFDProfile: bfd,
	}}
}

func bgpAdv(name string, spec v1beta1.BGPAdvertisementSpec) *v1beta1.BGPAdvertisement {
	return &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

func community(name string, aliases ...string) *v1beta1.Community {
	c := &v1beta1.Community{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for i := 0; i+1 < len(aliases); i += 2 {
		c.Spec.Communities = append(c.Spec.Communities, v1beta1.CommunityAlias{Name: aliases[i], Value: aliases[i+1]})
	}
	return c
}

// mustWarn checks that the warnings of the last requests contain each part.
func mustWarn(t *testing.T, what string, parts ...string) {
	t.Helper()
	w := strings.Join(warnings.take(), "\n")
	for _, p := range parts {
		if !strings.Contains(w, p) {
			t.Errorf("%s: warnings %q do not contain %q", what, w, p)
		}
	}
}

func mustInvalid(t *testing.T, err error, webhook string, parts ...string) {
	t.Helper()
	mustContain(t, err, append([]string{`admission webhook "` + webhook + `" denied the request`}, parts...)...)
	if !apierrors.IsInvalid(err) {
		t.Errorf("rejection is %v, want 422 Invalid so clients show the field", apierrors.ReasonForError(err))
	}
}

func TestBGPPeerAndBFDProfileWebhook(t *testing.T) {
	serve(t, "pharos-webhook-bgppeer", certs.Policy{}, admissionregistrationv1.Fail)
	cleanupBGP(t)
	ctx := context.Background()

	// What the schema accepts and internal/config refuses.
	bad := peer("bad-id", "")
	bad.Spec.RouterID = "fe80::1"
	mustInvalid(t, k8s.Create(ctx, bad), "bgppeers.pharos.io", `BGPPeer.pharos.io "bad-id" is invalid`, "spec.routerID", "IPv4 address")
	multi := peer("ibgp-multihop", "")
	multi.Spec.PeerASN, multi.Spec.EBGPMultiHop = 64512, true
	mustInvalid(t, k8s.Create(ctx, multi), "bgppeers.pharos.io", "spec.ebgpMultiHop", "remove it")

	// A profile named before it exists: admitted, with a warning.
	warnings.take()
	if err := k8s.Create(ctx, peer("edge-b", "fast")); err != nil {
		t.Fatalf("a peer naming a profile that comes later was rejected: %v", err)
	}
	mustWarn(t, "peer naming a missing profile", `BFDProfile "fast" named in spec.bfdProfile does not exist`, "without BFD")

	withPassword := peer("with-password", "")
	withPassword.Spec.Password = "secret"
	if err := k8s.Create(ctx, withPassword); err != nil {
		t.Fatal(err)
	}
	mustWarn(t, "peer with spec.password", "prefer spec.passwordSecret")

	passive := &v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "passive"}, Spec: v1beta1.BFDProfileSpec{PassiveMode: ptr.To(true)}}
	mustInvalid(t, k8s.Create(ctx, passive), "bfdprofiles.pharos.io", "spec.passiveMode", "remove passiveMode")
	ttl := &v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "ttl"}, Spec: v1beta1.BFDProfileSpec{MinimumTTL: ptr.To[uint32](10)}}
	mustInvalid(t, k8s.Create(ctx, ttl), "bfdprofiles.pharos.io", "spec.minimumTtl")

	fast := &v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Spec: v1beta1.BFDProfileSpec{ReceiveInterval: ptr.To[uint32](50)}}
	if err := k8s.Create(ctx, fast); err != nil {
		t.Fatal(err)
	}
	fast.Spec.PassiveMode = ptr.To(true)
	mustInvalid(t, k8s.Update(ctx, fast), "bfdprofiles.pharos.io", "spec.passiveMode")
	if err := k8s.Create(ctx, peer("edge-a", "fast")); err != nil {
		t.Fatal(err)
	}
	if w := warnings.take(); len(w) != 0 {
		t.Errorf("a peer naming an existing profile gave warnings %q", w)
	}

	// Deleting a profile in use is refused, naming the peers.
	err := k8s.Delete(ctx, &v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "fast"}})
	mustContain(t, err, `admission webhook "bfdprofiles.pharos.io" denied the request`, `"fast" is forbidden`,
		"in use by BGPPeer edge-a, edge-b (spec.bfdProfile)", "remove spec.bfdProfile")
	if !apierrors.IsForbidden(err) {
		t.Errorf("refused deletion is %v, want Forbidden", apierrors.ReasonForError(err))
	}
	// Dry-run deletions are checked the same way.
	mustContain(t, k8s.Delete(ctx, &v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "fast"}}, client.DryRunAll), "in use by BGPPeer edge-a, edge-b")

	for _, name := range []string{"edge-a", "edge-b"} {
		var p v1beta1.BGPPeer
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
			t.Fatal(err)
		}
		if name == "edge-a" {
			p.Spec.BFDProfile = ""
			if err := k8s.Update(ctx, &p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := k8s.Delete(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}
	if err := k8s.Delete(ctx, &v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "fast"}}); err != nil {
		t.Fatalf("deleting a profile no peer names: %v", err)
	}
	// Other deletions are not the webhook's business.
	if err := k8s.Delete(ctx, &v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "edge-a"}}); err != nil {
		t.Fatal(err)
	}
}

func TestCommunityWebhook(t *testing.T) {
	serve(t, "pharos-webhook-community", certs.Policy{}, admissionregistrationv1.Fail)
	cleanupBGP(t)
	ctx := context.Background()

	mustInvalid(t, k8s.Create(ctx, community("bad", "gold", "65536:1")), "communities.pharos.io",
		`Community.pharos.io "bad" is invalid`, "spec.communities[0].value", "both up to 65535")
	mustInvalid(t, k8s.Create(ctx, community("bad-large", "ok", "65000:1", "big", "large:1:2")), "communities.pharos.io",
		"spec.communities[1].value", "large:ASN:value:value")

	if err := k8s.Create(ctx, community("c1", "gold", "65000:100", "big", "large:64512:1:2")); err != nil {
		t.Fatal(err)
	}
	// The same alias with another value is refused whether the new object
	// sorts after the one that defines it or before.
	for _, name := range []string{"c2", "c0"} {
		mustInvalid(t, k8s.Create(ctx, community(name, "silver", "65000:50", "gold", "65000:200")), "communities.pharos.io",
			"spec.communities[1].value", `alias "gold" is already defined as 65000:100 by Community c1`)
	}
	// The same alias with the same value is fine.
	if err := k8s.Create(ctx, community("c3", "gold", "65000:100")); err != nil {
		t.Fatalf("an alias defined twice with one value was rejected: %v", err)
	}
	// Updating the defining object itself is no conflict with itself.
	var c1 v1beta1.Community
	if err := k8s.Get(ctx, client.ObjectKey{Name: "c1"}, &c1); err != nil {
		t.Fatal(err)
	}
	c1.Spec.Communities[1].Value = "large:64512:1:3"
	if err := k8s.Update(ctx, &c1); err != nil {
		t.Fatal(err)
	}
	// ... but c3 still holds gold=65000:100.
	c1.Spec.Communities[0].Value = "65000:101"
	mustInvalid(t, k8s.Update(ctx, &c1), "communities.pharos.io", `alias "gold" is already defined as 65000:100 by Community c3`)
}

func TestBGPAdvertisementWebhook(t *testing.T) {
	serve(t, "pharos-webhook-bgpadv", certs.Policy{}, admissionregistrationv1.Fail)
	cleanupPools(t)
	cleanupBGP(t)
	ctx := context.Background()
	if err := k8s.Create(ctx, pool("bgp-a", "198.18.130.0/25")); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, community("aliases", "gold", "65000:100")); err != nil {
		t.Fatal(err)
	}

	mustInvalid(t, k8s.Create(ctx, bgpAdv("unknown-alias", v1beta1.BGPAdvertisementSpec{Communities: []string{"gold", "silver"}})),
		"bgpadvertisements.pharos.io", `BGPAdvertisement.pharos.io "unknown-alias" is invalid`, "spec.communities[1]", `no Community alias "silver" exists`)
	mustInvalid(t, k8s.Create(ctx, bgpAdv("bad-value", v1beta1.BGPAdvertisementSpec{Communities: []string{"65000:70000"}})),
		"bgpadvertisements.pharos.io", "spec.communities[0]", "both up to 65535")
	mustInvalid(t, k8s.Create(ctx, bgpAdv("selectors-and-aggregation", v1beta1.BGPAdvertisementSpec{
		AggregationLength: ptr.To[int32](24), ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "web"}}},
	})), "bgpadvertisements.pharos.io", "spec.serviceSelectors", "only with the default aggregation lengths")

	// Aggregating a named pool beyond its ranges is refused; a length
	// that fits is admitted.
	mustInvalid(t, k8s.Create(ctx, bgpAdv("wide", v1beta1.BGPAdvertisementSpec{AggregationLength: ptr.To[int32](24), IPAddressPools: []string{"bgp-a"}})),
		"bgpadvertisements.pharos.io", "spec.aggregationLength", "pool bgp-a's range", "use a longer length")
	warnings.take()
	if err := k8s.Create(ctx, bgpAdv("fits", v1beta1.BGPAdvertisementSpec{AggregationLength: ptr.To[int32](25), IPAddressPools: []string{"bgp-a"}, Communities: []string{"gold"}})); err != nil {
		t.Fatalf("aggregation to the pool's own prefix was rejected: %v", err)
	}
	if w := warnings.take(); len(w) != 0 {
		t.Errorf("a valid advertisement gave warnings %q", w)
	}

	// Missing pools warn: they may come later.
	if err := k8s.Create(ctx, bgpAdv("later", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp-a", "tomorrow"}})); err != nil {
		t.Fatalf("an advertisement naming a pool that comes later was rejected: %v", err)
	}
	mustWarn(t, "advertisement naming a missing pool", "IPAddressPool tomorrow does not exist yet")

	// localPref conflicts warn, saying which advertisement gives way.
	if err := k8s.Create(ctx, bgpAdv("lp-a", v1beta1.BGPAdvertisementSpec{LocalPref: ptr.To[uint32](100), IPAddressPools: []string{"bgp-a"}})); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, bgpAdv("lp-b", v1beta1.BGPAdvertisementSpec{LocalPref: ptr.To[uint32](200), IPAddressPools: []string{"bgp-a"}})); err != nil {
		t.Fatalf("a localPref conflict was rejected, want a warning: %v", err)
	}
	mustWarn(t, "conflicting localPref, later name", "spec.localPref: BGPAdvertisement lp-a sends pool bgp-a's prefixes to the same peers with localPref 100",
		"the speakers leave BGPAdvertisement lp-b out")
	if err := k8s.Create(ctx, bgpAdv("lp-0", v1beta1.BGPAdvertisementSpec{LocalPref: ptr.To[uint32](300), IPAddressPools: []string{"bgp-a"}})); err != nil {
		t.Fatal(err)
	}
	mustWarn(t, "conflicting localPref, earlier name",
		"BGPAdvertisement lp-a (spec.localPref 100): BGPAdvertisement lp-0 sends pool bgp-a's prefixes to the same peers with localPref 300",
		"the speakers leave BGPAdvertisement lp-a out")
	// Disjoint peers do not conflict.
	if err := k8s.Create(ctx, bgpAdv("lp-other-peer", v1beta1.BGPAdvertisementSpec{LocalPref: ptr.To[uint32](50), IPAddressPools: []string{"bgp-a"}, Peers: []string{"x"}})); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, bgpAdv("lp-other-peer2", v1beta1.BGPAdvertisementSpec{LocalPref: ptr.To[uint32](60), IPAddressPools: []string{"bgp-a"}, Peers: []string{"y"}})); err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings.take() {
		if strings.Contains(w, "lp-other-peer2") && strings.Contains(w, "lp-other-peer ") {
			t.Errorf("advertisements to disjoint peers reported as conflicting: %q", w)
		}
	}
}

// The pool webhook knows BGP: a pool that only a BGPAdvertisement selects
// is announced, and a pool an advertisement would aggregate beyond its
// ranges is admitted with a warning naming the advertisement.
func TestPoolWebhookKnowsBGP(t *testing.T) {
	serve(t, "pharos-webhook-poolbgp", certs.Policy{}, admissionregistrationv1.Fail)
	cleanupPools(t)
	cleanupBGP(t)
	ctx := context.Background()
	sel := []metav1.LabelSelector{{MatchLabels: map[string]string{"bgp": "yes"}}}
	if err := k8s.Create(ctx, bgpAdv("by-label", v1beta1.BGPAdvertisementSpec{AggregationLength: ptr.To[int32](24), IPAddressPoolSelectors: sel})); err != nil {
		t.Fatal(err)
	}
	warnings.take()
	p := pool("bgp-only", "198.18.140.0/24")
	p.Labels = map[string]string{"bgp": "yes"}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if w := warnings.take(); len(w) != 0 {
		t.Errorf("a pool a BGPAdvertisement selects, aggregated to its own /24, gave warnings %q", w)
	}
	narrow := pool("bgp-narrow", "198.18.141.0/26")
	narrow.Labels = map[string]string{"bgp": "yes"}
	if err := k8s.Create(ctx, narrow); err != nil {
		t.Fatalf("a pool was rejected for an advertisement's aggregation, want a warning: %v", err)
	}
	mustWarn(t, "pool narrower than an advertisement's aggregation", "BGPAdvertisement by-label: spec.aggregationLength",
		"pool bgp-narrow's range 198.18.141.0-198.18.141.63 is not made of whole /24 prefixes")

	// An advertisement that selects an existing pool by label and would
	// aggregate it beyond its ranges is admitted with a warning.
	if err := k8s.Create(ctx, bgpAdv("by-label-2", v1beta1.BGPAdvertisementSpec{AggregationLength: ptr.To[int32](23), IPAddressPoolSelectors: sel})); err != nil {
		t.Fatalf("an advertisement whose selector matches a narrower pool was rejected, want a warning: %v", err)
	}
	mustWarn(t, "selector matching a narrower pool", "pool bgp-only's range", "whole /23 prefixes", "pool bgp-narrow's range")
}
