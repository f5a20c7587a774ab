package advertisement_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/controller/advertisement"
	"github.com/pharos-lb/pharos/internal/testenv"
)

var (
	k8s    client.Client
	scheme = runtime.NewScheme()
)

const waitTime = 20 * time.Second

// TestMain starts a real apiserver and the BGP reconcilers against it. No
// webhook runs: what it would refuse gets in, as when the webhook is down,
// and the Valid condition must say it.
func TestMain(m *testing.M) {
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1beta1.AddToScheme(scheme)
	if os.Getenv("PHAROS_TEST_VERBOSE") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(discard{})))
	}
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration tests need a real kube-apiserver:", err)
		os.Exit(1)
	}
	code := func() int {
		defer func() { _ = env.Stop() }()
		if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		mgr, err := ctrl.NewManager(cfg, ctrl.Options{
			Scheme:                  scheme,
			Metrics:                 metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress:  "0",
			Controller:              ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
			GracefulShutdownTimeout: ptr.To(2 * time.Second),
		})
		if err == nil {
			err = advertisement.SetupBGPWithManager(mgr)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = mgr.Start(ctx) }()
		defer func() { cancel(); <-done }()
		return m.Run()
	}()
	os.Exit(code)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func eventually(t *testing.T, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	last := ""
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("after %s: %s", waitTime, last)
}

// create creates obj and deletes it when the test ends.
func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
}

// update re-reads obj, applies change and writes it.
func update[T client.Object](t *testing.T, obj T, change func(T)) {
	t.Helper()
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	change(obj)
	if err := k8s.Update(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

// waitValid waits until obj's Valid condition has status and reason, its
// message contains each of msgs, and it describes obj's generation.
func waitValid(t *testing.T, obj client.Object, status metav1.ConditionStatus, reason string, msgs ...string) {
	t.Helper()
	eventually(t, func() string {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err.Error()
		}
		var conds []metav1.Condition
		var observed int64
		switch o := obj.(type) {
		case *v1beta1.BGPPeer:
			conds, observed = o.Status.Conditions, o.Status.ObservedGeneration
		case *v1beta1.BGPAdvertisement:
			conds, observed = o.Status.Conditions, o.Status.ObservedGeneration
		}
		c := meta.FindStatusCondition(conds, v1beta1.ConditionValid)
		kind := fmt.Sprintf("%T %s", obj, obj.GetName())
		if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != obj.GetGeneration() || observed != obj.GetGeneration() {
			return fmt.Sprintf("%s: condition %+v (status.observedGeneration %d, generation %d), want %s/%s", kind, c, observed, obj.GetGeneration(), status, reason)
		}
		for _, m := range msgs {
			if !strings.Contains(c.Message, m) {
				return fmt.Sprintf("%s: message %q does not contain %q", kind, c.Message, m)
			}
		}
		return ""
	})
}

// waitEvent waits for a Warning event about the object with this reason
// and a note containing msg.
func waitEvent(t *testing.T, kind, name, reason, msg string) {
	t.Helper()
	eventually(t, func() string {
		var list corev1.EventList
		if err := k8s.List(context.Background(), &list, client.MatchingFieldsSelector{
			Selector: fields.SelectorFromSet(fields.Set{"involvedObject.name": name, "involvedObject.kind": kind}),
		}); err != nil {
			return err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.Type == corev1.EventTypeWarning && e.Reason == reason && strings.Contains(e.Message, msg) {
				return ""
			}
			seen = append(seen, e.Type+" "+e.Reason+": "+e.Message)
		}
		return fmt.Sprintf("no Warning %s event %q for %s %s in %q", reason, msg, kind, name, seen)
	})
}

func peer(name, bfd string) *v1beta1.BGPPeer {
	return &v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.BGPPeerSpec{
		MyASN: 64512, PeerASN: 64513, PeerAddress: "198.18.96.1", BFDProfile: bfd,
	}}
}

func pool(name string, addrs ...string) *v1beta1.IPAddressPool {
	return &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.IPAddressPoolSpec{Addresses: addrs}}
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

func TestBGPPeerValidCondition(t *testing.T) {
	bad := peer("bad-router-id", "")
	bad.Spec.RouterID = "fe80::1"
	create(t, bad)
	waitValid(t, bad, metav1.ConditionFalse, advertisement.ReasonInvalidSpec, `spec.routerID: Invalid value: "fe80::1"`, "IPv4 address",
		"the speakers do not open this session until this is fixed")
	waitEvent(t, "BGPPeer", "bad-router-id", advertisement.ReasonInvalidSpec, "spec.routerID")
	update(t, bad, func(p *v1beta1.BGPPeer) { p.Spec.RouterID = "198.18.96.11" })
	waitValid(t, bad, metav1.ConditionTrue, advertisement.ReasonValid, "the peer is valid")

	// A profile that does not exist yet: the session runs without BFD.
	p := peer("edge", "fast")
	create(t, p)
	waitValid(t, p, metav1.ConditionTrue, advertisement.ReasonBFDProfileMissing, `BFDProfile "fast" named in spec.bfdProfile does not exist`, "without BFD")
	waitEvent(t, "BGPPeer", "edge", advertisement.ReasonBFDProfileMissing, `"fast"`)
	fast := &v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Spec: v1beta1.BFDProfileSpec{ReceiveInterval: ptr.To[uint32](50)}}
	create(t, fast)
	waitValid(t, p, metav1.ConditionTrue, advertisement.ReasonValid)

	// A profile that became invalid (the webhook was down) is as good as
	// missing, as the speakers see it; fixing it fixes the peer.
	update(t, fast, func(b *v1beta1.BFDProfile) { b.Spec.PassiveMode = ptr.To(true) })
	waitValid(t, p, metav1.ConditionTrue, advertisement.ReasonBFDProfileMissing, `BFDProfile "fast" named in spec.bfdProfile is invalid`, "spec.passiveMode")
	update(t, fast, func(b *v1beta1.BFDProfile) { b.Spec.PassiveMode = nil })
	waitValid(t, p, metav1.ConditionTrue, advertisement.ReasonValid)

	// Deleted anyway (no webhook here): missing again.
	if err := k8s.Delete(context.Background(), fast); err != nil {
		t.Fatal(err)
	}
	waitValid(t, p, metav1.ConditionTrue, advertisement.ReasonBFDProfileMissing, "does not exist")
}

func TestBGPAdvertisementValidCondition(t *testing.T) {
	// Community aliases: unknown, then defined.
	adv := bgpAdv("gold-routes", v1beta1.BGPAdvertisementSpec{Communities: []string{"gold"}, IPAddressPools: []string{"bgp-later"}})
	create(t, adv)
	waitValid(t, adv, metav1.ConditionFalse, advertisement.ReasonInvalidSpec, `spec.communities[0]`, `no Community alias "gold" exists`,
		"the advertisement is not applied until this is fixed")
	waitEvent(t, "BGPAdvertisement", "gold-routes", advertisement.ReasonInvalidSpec, `"gold"`)
	create(t, community("aliases", "gold", "65000:100"))
	// Valid now; the pool it names does not exist yet.
	waitValid(t, adv, metav1.ConditionTrue, advertisement.ReasonPoolMissing, "IPAddressPool bgp-later does not exist yet")
	create(t, pool("bgp-later", "198.18.150.0/24"))
	waitValid(t, adv, metav1.ConditionTrue, advertisement.ReasonValid, "the advertisement is valid")

	// An alias whose definition is rejected says so, not "no alias".
	create(t, community("broken", "bronze", "65536:1"))
	bronze := bgpAdv("bronze-routes", v1beta1.BGPAdvertisementSpec{Communities: []string{"bronze"}, IPAddressPools: []string{"bgp-later"}})
	create(t, bronze)
	waitValid(t, bronze, metav1.ConditionFalse, advertisement.ReasonInvalidSpec,
		`Community broken defines alias "bronze", but that definition is rejected (spec.communities[0].value:`, "both up to 65535")
}

func TestBGPAggregationOutsidePool(t *testing.T) {
	p := pool("bgp-agg", "198.18.151.0/25")
	create(t, p)
	adv := bgpAdv("agg", v1beta1.BGPAdvertisementSpec{AggregationLength: ptr.To[int32](24), IPAddressPools: []string{"bgp-agg"}})
	create(t, adv)
	waitValid(t, adv, metav1.ConditionFalse, advertisement.ReasonAggregationOutsidePool,
		"spec.aggregationLength: Invalid value: 24: pool bgp-agg's range 198.18.151.0-198.18.151.127 is not made of whole /24 prefixes",
		"set a longer aggregation length")
	waitEvent(t, "BGPAdvertisement", "agg", advertisement.ReasonAggregationOutsidePool, "pool bgp-agg")
	// The pool grows to the whole /24: the pool's change re-checks it.
	update(t, p, func(p *v1beta1.IPAddressPool) { p.Spec.Addresses = []string{"198.18.151.0/25", "198.18.151.128/25"} })
	waitValid(t, adv, metav1.ConditionTrue, advertisement.ReasonValid)

	// Selected by label: the same check. A label change re-checks.
	byLabel := bgpAdv("agg-by-label", v1beta1.BGPAdvertisementSpec{AggregationLengthV6: ptr.To[int32](64),
		IPAddressPoolSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"bgp": "v6"}}}})
	create(t, byLabel)
	waitValid(t, byLabel, metav1.ConditionTrue, advertisement.ReasonValid)
	v6 := pool("bgp-v6", "2001:db8:151::/120")
	create(t, v6)
	update(t, v6, func(p *v1beta1.IPAddressPool) { p.Labels = map[string]string{"bgp": "v6"} })
	waitValid(t, byLabel, metav1.ConditionFalse, advertisement.ReasonAggregationOutsidePool, "spec.aggregationLengthV6", "pool bgp-v6's range")
	update(t, v6, func(p *v1beta1.IPAddressPool) { p.Labels = nil })
	waitValid(t, byLabel, metav1.ConditionTrue, advertisement.ReasonValid)
}

func TestBGPLocalPrefConflict(t *testing.T) {
	create(t, pool("bgp-lp", "198.18.152.0/24"))
	a := bgpAdv("lp-a", v1beta1.BGPAdvertisementSpec{LocalPref: ptr.To[uint32](100), IPAddressPools: []string{"bgp-lp"}})
	b := bgpAdv("lp-b", v1beta1.BGPAdvertisementSpec{LocalPref: ptr.To[uint32](200), IPAddressPools: []string{"bgp-lp"}})
	create(t, a)
	waitValid(t, a, metav1.ConditionTrue, advertisement.ReasonValid)
	create(t, b)
	// The later one in name order gives way, as in the speakers.
	waitValid(t, b, metav1.ConditionFalse, advertisement.ReasonLocalPrefConflict,
		"spec.localPref: Invalid value: 200: BGPAdvertisement lp-a sends pool bgp-lp's prefixes to the same peers with localPref 100",
		"the speakers leave this advertisement out")
	waitEvent(t, "BGPAdvertisement", "lp-b", advertisement.ReasonLocalPrefConflict, "lp-a")
	waitValid(t, a, metav1.ConditionTrue, advertisement.ReasonValid)

	// Sending to different peers resolves it; the change of lp-a alone
	// re-checks lp-b.
	update(t, a, func(x *v1beta1.BGPAdvertisement) { x.Spec.Peers = []string{"router-1"} })
	update(t, b, func(x *v1beta1.BGPAdvertisement) { x.Spec.Peers = []string{"router-2"} })
	waitValid(t, b, metav1.ConditionTrue, advertisement.ReasonValid)
	update(t, a, func(x *v1beta1.BGPAdvertisement) { x.Spec.Peers = []string{"router-2"} })
	waitValid(t, b, metav1.ConditionFalse, advertisement.ReasonLocalPrefConflict, "lp-a")
	// Deleting lp-a resolves it too.
	if err := k8s.Delete(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	waitValid(t, b, metav1.ConditionTrue, advertisement.ReasonValid)
}
