package l2announce

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/layer2"
	"github.com/pharos-lb/pharos/internal/speaker"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// stateFor is the desired state of one Cluster Service on ip, served on
// this node, whose speaker (the only member) has iface up on subnet.
func stateFor(t *testing.T, node, iface, subnet string, claims []speakerlist.Claim, ips ...string) *speaker.State {
	t.Helper()
	svc := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Annotations: map[string]string{v1beta1.AnnotationAllocatedFromPool: "web"}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
	cl := map[netip.Addr][]speakerlist.Claim{}
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		cl[netip.MustParseAddr(ip)] = claims
	}
	n := node
	return speaker.Compute(speaker.Snapshot{
		Services: []*corev1.Service{&svc},
		EndpointSlices: []*discoveryv1.EndpointSlice{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"198.19.0.1"}, NodeName: &n}},
		}},
		Nodes: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: node},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}},
		Pools:            []v1beta1.IPAddressPool{{ObjectMeta: metav1.ObjectMeta{Name: "web"}}},
		L2Advertisements: []v1beta1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Name: "all"}}},
		Members:          map[string]speakerlist.Meta{node: {InterfacesUp: []string{iface + "=" + subnet}}},
		Claims:           cl,
	})
}

// recorded is a per-interface announcer that records what it is told.
type recorded struct {
	name   string
	owned  []netip.Addr
	closed bool
	stats  layer2.Stats
}

func (r *recorded) SetOwned(ips []netip.Addr) { r.owned = append([]netip.Addr(nil), ips...) }
func (r *recorded) ProbeAll(context.Context, []netip.Addr, time.Duration) (map[netip.Addr][]net.HardwareAddr, error) {
	return nil, nil
}
func (r *recorded) Stats() layer2.Stats { return r.stats }
func (r *recorded) Close() error        { r.closed = true; return nil }

type claimLog struct{ last map[netip.Addr]int64 }

func (c *claimLog) SetClaims(m map[netip.Addr]int64) { c.last = m }

// TestLifecycle is the contract of interface lifecycle: an announcer is
// opened for an interface that carries an address, kept while the
// interface stays the same, reopened when it is replaced or gains its
// link-local address, and closed when it vanishes or carries nothing.
func TestLifecycle(t *testing.T) {
	link := Link{Index: 7, HardwareAddr: "02:00:00:00:00:01"}
	var linkErr error
	var opened []*recorded
	claims := &claimLog{}
	l := New(Options{Node: "n1", Claims: claims,
		LookupLink: func(string) (Link, error) { return link, linkErr },
		Open: func(_ context.Context, o layer2.Options) (Interface, error) {
			r := &recorded{name: o.Interface}
			opened = append(opened, r)
			return r, nil
		}})
	defer l.Close()
	vip := netip.MustParseAddr("198.18.9.10")
	st := stateFor(t, "n1", "eth0", "198.18.9.0/24", []speakerlist.Claim{{Node: "n0", Epoch: 41}}, vip.String())

	step := func(name string, wantOpened int, wantOwned bool) *recorded {
		t.Helper()
		l.Apply(st)
		if len(opened) != wantOpened {
			t.Fatalf("%s: %d announcers opened in all, want %d", name, len(opened), wantOpened)
		}
		cur := opened[len(opened)-1]
		for _, r := range opened[:len(opened)-1] {
			if !r.closed {
				t.Errorf("%s: a replaced announcer is still open", name)
			}
		}
		if got := len(cur.owned) == 1 && cur.owned[0] == vip && !cur.closed; got != wantOwned {
			t.Errorf("%s: announcing %v (closed %v), want announcing: %v", name, cur.owned, cur.closed, wantOwned)
		}
		return cur
	}

	step("first apply opens eth0", 1, true)
	if claims.last[vip] != 42 {
		t.Errorf("claim epoch %d, want 42: one more than every claim seen", claims.last[vip])
	}
	opened[0].stats = layer2.Stats{ARPAnswered: 5}
	step("same interface: kept", 1, true)
	link.LinkLocal = true
	step("link-local address appeared: reopened for NDP", 2, true)
	link.Index = 8
	link.HardwareAddr = "02:00:00:00:00:02"
	step("interface deleted and recreated: reopened", 3, true)
	if got := l.Stats()["eth0"].ARPAnswered; got != 5 {
		t.Errorf("ARP answered %d after reopening, want the closed announcer's 5 kept", got)
	}

	linkErr = errors.New("no such network interface")
	l.Apply(st)
	if !opened[2].closed {
		t.Error("the announcer of a vanished interface is still open")
	}
	if _, ok := claims.last[vip]; ok {
		t.Error("an address this node cannot announce is still claimed")
	}
	rep := l.Describe(st.Lookup(vip))
	if rep.Announced || rep.Reason != v1beta1.ReasonAnnounceFailed || !strings.Contains(rep.Message, "no such network interface") {
		t.Errorf("Describe = %+v, want AnnounceFailed naming the error", rep)
	}

	linkErr = nil
	step("interface back: reopened", 4, true)
	if rep := l.Describe(st.Lookup(vip)); !rep.Announced || rep.Reason != "" {
		t.Errorf("Describe = %+v, want announced", rep)
	}

	l.Apply(&speaker.State{})
	if !opened[3].closed || len(l.Interfaces()) != 0 {
		t.Error("an interface that carries nothing is not closed")
	}
	if len(claims.last) != 0 {
		t.Errorf("claims %v after releasing everything", claims.last)
	}
}

// TestReleaseHoldsWhileDraining: after Release nothing is announced, even
// when a later Apply says this node wins.
func TestReleaseHoldsWhileDraining(t *testing.T) {
	var opened []*recorded
	l := New(Options{Node: "n1",
		LookupLink: func(string) (Link, error) { return Link{Index: 1}, nil },
		Open: func(context.Context, layer2.Options) (Interface, error) {
			r := &recorded{}
			opened = append(opened, r)
			return r, nil
		}})
	defer l.Close()
	st := stateFor(t, "n1", "eth0", "198.18.9.0/24", nil, "198.18.9.10")
	l.Apply(st)
	l.Release()
	l.Apply(st)
	if len(l.Owned()) != 0 {
		t.Errorf("owned %v while draining", l.Owned())
	}
}

// TestCollectorExportsCounters: the layer-2 counters (once counted and
// never exported) reach Prometheus, per interface, and survive a reopen.
func TestCollectorExportsCounters(t *testing.T) {
	var opened []*recorded
	link := Link{Index: 1}
	l := New(Options{Node: "n1",
		LookupLink: func(string) (Link, error) { return link, nil },
		Open: func(context.Context, layer2.Options) (Interface, error) {
			r := &recorded{}
			opened = append(opened, r)
			return r, nil
		}})
	defer l.Close()
	st := stateFor(t, "n1", "eth0", "198.18.9.0/24", nil, "198.18.9.10", "198.18.9.11")
	l.Apply(st)
	opened[0].stats = layer2.Stats{ARPAnswered: 3, NDPMalformed: 2, GratuitousSent: 6}
	link.Index = 2
	l.Apply(st)
	opened[1].stats = layer2.Stats{ARPAnswered: 1}

	want := `
# HELP pharos_l2_announced_addresses Addresses this node announces by layer 2 now, by interface and family.
# TYPE pharos_l2_announced_addresses gauge
pharos_l2_announced_addresses{family="ipv4",interface="eth0"} 2
# HELP pharos_l2_gratuitous_sent_total Gratuitous ARP and unsolicited Neighbor Advertisements sent on takeover, by interface.
# TYPE pharos_l2_gratuitous_sent_total counter
pharos_l2_gratuitous_sent_total{interface="eth0"} 6
`
	if err := testutil.CollectAndCompare(l.Collector(), strings.NewReader(want), "pharos_l2_announced_addresses", "pharos_l2_gratuitous_sent_total"); err != nil {
		t.Error(err)
	}
	// ARP answered: 3 before the reopen, 1 after.
	requests := `
# HELP pharos_l2_requests_total ARP and NDP frames that reached the speaker, by interface, protocol (arp, ndp), family (IPv4 for arp, IPv6 for ndp) and outcome: answered; ignored (passed by the socket's kernel filter but needing no answer, such as another station's reply for an address being probed, or a request for an address of the filter's last 32 bits that is not ours); malformed. Requests for addresses this node does not announce are dropped in the kernel and not counted.
# TYPE pharos_l2_requests_total counter
pharos_l2_requests_total{family="IPv4",interface="eth0",protocol="arp",result="answered"} 4
pharos_l2_requests_total{family="IPv4",interface="eth0",protocol="arp",result="ignored"} 0
pharos_l2_requests_total{family="IPv4",interface="eth0",protocol="arp",result="malformed"} 0
pharos_l2_requests_total{family="IPv6",interface="eth0",protocol="ndp",result="answered"} 0
pharos_l2_requests_total{family="IPv6",interface="eth0",protocol="ndp",result="ignored"} 0
pharos_l2_requests_total{family="IPv6",interface="eth0",protocol="ndp",result="malformed"} 2
`
	if err := testutil.CollectAndCompare(l.Collector(), strings.NewReader(requests), "pharos_l2_requests_total"); err != nil {
		t.Error(err)
	}
}

// TestResponsesByFamily: the answers sent are summed over the interfaces,
// closed ones included, per family.
func TestResponsesByFamily(t *testing.T) {
	opened := map[string]*recorded{}
	l := New(Options{Node: "n1",
		LookupLink: func(string) (Link, error) { return Link{Index: 1}, nil },
		Open: func(_ context.Context, o layer2.Options) (Interface, error) {
			r := &recorded{name: o.Interface}
			opened[o.Interface] = r
			return r, nil
		}})
	defer l.Close()
	l.Apply(stateFor(t, "n1", "eth0", "198.18.9.0/24", nil, "198.18.9.10"))
	opened["eth0"].stats = layer2.Stats{ARPAnswered: 3, ARPIgnored: 9, NDPAnswered: 2}
	l.Apply(stateFor(t, "n1", "eth1", "198.18.9.0/24", nil, "198.18.9.10")) // eth0 closed, its counts kept
	opened["eth1"].stats = layer2.Stats{ARPAnswered: 1, NDPAnswered: 4, NDPMalformed: 7}

	want := `
# HELP pharos_l2_responses_sent_total ARP replies (IPv4) and Neighbor Advertisements (IPv6) sent in answer to requests for addresses this node announces, by family; gratuitous ones are in pharos_l2_gratuitous_sent_total.
# TYPE pharos_l2_responses_sent_total counter
pharos_l2_responses_sent_total{family="IPv4"} 4
pharos_l2_responses_sent_total{family="IPv6"} 6
`
	if err := testutil.CollectAndCompare(l.Collector(), strings.NewReader(want), "pharos_l2_responses_sent_total"); err != nil {
		t.Error(err)
	}
}

// failoverHistogram reads pharos_l2_failover_duration_seconds from the
// collector: its count and sum.
func failoverHistogram(t *testing.T, l *Layer2) (uint64, float64) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(l.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "pharos_l2_failover_duration_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatal("no pharos_l2_failover_duration_seconds")
	return 0, 0
}

// TestFailoverMeasured: an address taken over from a member that left is
// observed once, from the departure to the handover; a takeover with no
// departure, a move to another interface, and keeping an address are not.
func TestFailoverMeasured(t *testing.T) {
	vip, fresh := netip.MustParseAddr("198.18.9.10"), netip.MustParseAddr("198.18.9.11")
	var asked []netip.Addr
	left := map[netip.Addr]time.Time{vip: time.Now().Add(-400 * time.Millisecond)}
	l := New(Options{Node: "n1",
		OwnerLeft: func(ip netip.Addr) (time.Time, bool) {
			asked = append(asked, ip)
			at, ok := left[ip]
			delete(left, ip)
			return at, ok
		},
		LookupLink: func(string) (Link, error) { return Link{Index: 1}, nil },
		Open:       func(context.Context, layer2.Options) (Interface, error) { return &recorded{}, nil }})
	defer l.Close()

	for _, step := range []struct {
		name    string
		st      *speaker.State
		asked   []netip.Addr
		count   uint64
		minimum float64
	}{
		{"vip taken over from a member that died", stateFor(t, "n1", "eth0", "198.18.9.0/24", []speakerlist.Claim{{Node: "n0", Epoch: 1}}, vip.String()), []netip.Addr{vip}, 1, 0.4},
		{"kept", stateFor(t, "n1", "eth0", "198.18.9.0/24", nil, vip.String()), nil, 1, 0.4},
		{"moved to eth1", stateFor(t, "n1", "eth1", "198.18.9.0/24", nil, vip.String()), nil, 1, 0.4},
		{"a new address, no departure", stateFor(t, "n1", "eth1", "198.18.9.0/24", nil, vip.String(), fresh.String()), []netip.Addr{fresh}, 1, 0.4},
	} {
		asked = nil
		l.Apply(step.st)
		count, sum := failoverHistogram(t, l)
		if !slices.Equal(asked, step.asked) || count != step.count || sum < step.minimum || sum > step.minimum+5 {
			t.Errorf("%s: asked about %v, observed %d summing %.3fs; want asked about %v, %d observed summing at least %.1fs",
				step.name, asked, count, sum, step.asked, step.count, step.minimum)
		}
	}
}

// TestCutOffTakesNothingNewAndYieldsOnConflict: on the minority side of a
// memberlist split, the node keeps what it announces, holds back an
// address it did not announce until the LAN shows nobody answers for it
// (SetFree), and gives one up once another MAC answers for it.
func TestCutOffTakesNothingNewAndYieldsOnConflict(t *testing.T) {
	l := New(Options{Node: "n1",
		LookupLink: func(string) (Link, error) { return Link{Index: 1}, nil },
		Open:       func(context.Context, layer2.Options) (Interface, error) { return &recorded{}, nil }})
	defer l.Close()
	a, b := netip.MustParseAddr("198.18.9.10"), netip.MustParseAddr("198.18.9.11")
	l.Apply(stateFor(t, "n1", "eth0", "198.18.9.0/24", nil, "198.18.9.10"))
	st := stateFor(t, "n1", "eth0", "198.18.9.0/24", nil, "198.18.9.10", "198.18.9.11")
	st.CutOff = true
	l.Apply(st)
	if got := l.Owned(); len(got) != 1 || got[a] == "" {
		t.Fatalf("cut off: owned %v, want only %s (kept, %s not taken)", got, a, b)
	}
	if got := l.Held(); len(got) != 1 || got[b] != "eth0" {
		t.Fatalf("cut off: held %v, want %s on eth0", got, b)
	}
	l.SetConflict(a, "02:00:00:00:00:02")
	l.Apply(st)
	if got := l.Owned(); len(got) != 0 {
		t.Fatalf("cut off with another MAC answering: owned %v, want nothing", got)
	}
	if got := l.Held(); len(got) != 2 {
		t.Fatalf("cut off after yielding: held %v, want both", got)
	}
	// Nobody answers for b (the other speakers really failed): taken.
	l.SetFree(b)
	l.Apply(st)
	if got := l.Owned(); len(got) != 1 || got[b] == "" {
		t.Fatalf("cut off, %s free: owned %v, want only it", b, got)
	}
	st.CutOff = false
	l.Apply(st)
	if got := l.Owned(); len(got) != 2 {
		t.Fatalf("no longer cut off: owned %v, want both", got)
	}
}
