package main

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"net/netip"

	"github.com/pharos-lb/pharos/internal/speakerlist"
)

func nodeWith(name string, addrs ...string) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
	}
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	return n
}

// TestPeerAddresses: peers are joined at their InternalIP of the
// memberlist address's family. An IPv6-only cluster used to join nobody,
// so every speaker ran alone and every node answered for every address.
func TestPeerAddresses(t *testing.T) {
	nodes := []corev1.Node{
		nodeWith("self", "198.18.0.1", "2001:db8::1"),
		nodeWith("dual", "198.18.0.2", "2001:db8::2"),
		nodeWith("v6first", "2001:db8::3", "198.18.0.3"),
		nodeWith("v6only", "2001:db8::4"),
		nodeWith("v4only", "198.18.0.5"),
		nodeWith("member", "198.18.0.6", "2001:db8::6"),
	}
	current := map[string]speakerlist.Meta{"self": {}, "member": {}}
	tests := []struct {
		bind string
		want string
	}{
		{bind: "198.18.0.1", want: "198.18.0.2,198.18.0.3,198.18.0.5"},
		{bind: "2001:db8::1", want: "2001:db8::2,2001:db8::3,2001:db8::4"},
	}
	for _, tc := range tests {
		got := strings.Join(peerAddresses(nodes, current, "self", netip.MustParseAddr(tc.bind)), ",")
		if got != tc.want {
			t.Errorf("bind %s: peers %q, want %q", tc.bind, got, tc.want)
		}
	}
}

// TestFitMeta: metadata over memberlist's limit is trimmed, virtual
// interfaces first, and what is dropped is returned (for the warning and
// the metric) instead of the whole interface list being lost silently.
func TestFitMeta(t *testing.T) {
	small := speakerlist.Meta{InterfacesUp: []string{"eth0=198.18.0.0/24"}}
	if m, dropped := fitMeta(small); len(dropped) != 0 || len(m.InterfacesUp) != 1 {
		t.Errorf("a small metadata was trimmed: %v, dropped %v", m, dropped)
	}
	big := speakerlist.Meta{InterfacesUp: []string{"eth0=198.18.0.0/24", "eth1=2001:db8:1::/64"}}
	for i := range 40 {
		big.InterfacesUp = append(big.InterfacesUp, fmt.Sprintf("cali%08x=198.19.%d.0/24", i, i))
	}
	m, dropped := fitMeta(big)
	if speakerlist.MetaSize(m) > memberlist.MetaMaxSize {
		t.Fatalf("trimmed metadata is %d bytes, over %d", speakerlist.MetaSize(m), memberlist.MetaMaxSize)
	}
	if strings.Join(m.InterfacesUp, ",") != "eth0=198.18.0.0/24,eth1=2001:db8:1::/64" {
		t.Errorf("kept %v, want the two physical interfaces", m.InterfacesUp)
	}
	if len(dropped) != 40 {
		t.Errorf("dropped %d entries, want 40", len(dropped))
	}
	var many speakerlist.Meta
	for i := range 40 {
		many.InterfacesUp = append(many.InterfacesUp, fmt.Sprintf("eth%d=198.18.%d.0/24", i, i))
	}
	if m, dropped := fitMeta(many); speakerlist.MetaSize(m) > memberlist.MetaMaxSize || len(dropped) == 0 || len(m.InterfacesUp) == 0 {
		t.Errorf("40 physical interfaces: kept %d, dropped %d, size %d", len(m.InterfacesUp), len(dropped), speakerlist.MetaSize(m))
	}
}

// TestQueueStatusKeepsTheLatest: the status writer gets the newest state,
// and queuing never blocks the reconcile, however far behind it is.
func TestQueueStatusKeepsTheLatest(t *testing.T) {
	s := &Speaker{statusJobs: make(chan statusJob, 1)}
	for i := range 100 {
		s.queueStatus(statusJob{members: map[string]speakerlist.Meta{fmt.Sprint(i): {}}})
	}
	j := <-s.statusJobs
	if _, ok := j.members["99"]; !ok || len(s.statusJobs) != 0 {
		t.Errorf("writer got %v with %d queued, want only the last state", j.members, len(s.statusJobs))
	}
}

// TestZapLevelAlias: the chart's and earlier releases' --zap-log-level
// values are accepted by the speaker (an unknown flag made it exit).
func TestZapLevelAlias(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "error": slog.LevelError, "2": slog.LevelDebug, "0": slog.LevelInfo} {
		if got, err := zapLevel(in); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	if _, err := zapLevel("loud"); err == nil {
		t.Error("an unknown level was accepted")
	}
}

func TestFailoverFlagsAreCheckedFirst(t *testing.T) {
	for _, tc := range []struct {
		f    failoverOptions
		want string // "" accepts
	}{
		{failoverOptions{detection: 150 * time.Millisecond, interval: 50 * time.Millisecond, port: 7947}, ""},
		{failoverOptions{detection: 100 * time.Millisecond, interval: 20 * time.Millisecond, port: 7947}, ""},
		{failoverOptions{detection: 0}, ""},
		{failoverOptions{detection: -time.Second}, "--failover-detection -1s"},
		{failoverOptions{detection: 150 * time.Millisecond, interval: 100 * time.Millisecond, port: 7947}, "--heartbeat-interval 100ms"},
		{failoverOptions{detection: 150 * time.Millisecond, interval: 50 * time.Millisecond, port: 0}, "--heartbeat-port 0"},
	} {
		err := tc.f.validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v refused: %v", tc.f, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want an error naming %q", tc.f, err, tc.want)
		}
	}
}

// TestInterfaceBack: the meta publisher reports an interface that comes
// back up, not one seen for the first time (a new pod's veth), nor one
// that stays up.
func TestInterfaceBack(t *testing.T) {
	var p metaPublisher
	for i, step := range []struct {
		up   []string
		back []string
	}{
		{[]string{"eth0=198.18.0.0/24", "eth0=2001:db8::/64"}, nil},
		{[]string{"eth0=198.18.0.0/24", "veth1=198.19.0.0/24"}, nil},
		{[]string{"veth1=198.19.0.0/24"}, nil},
		{[]string{"veth1=198.19.0.0/24"}, nil},
		{[]string{"eth0=198.18.0.0/24", "veth1=198.19.0.0/24", "veth2=198.19.1.0/24"}, []string{"eth0"}},
		{[]string{"eth0=198.18.0.0/24"}, nil},
		{[]string{"eth0=198.18.0.0/24", "veth1=198.19.0.0/24"}, []string{"veth1"}},
	} {
		if got := p.back(step.up); !slices.Equal(got, step.back) {
			t.Errorf("step %d, up %v: back %v, want %v", i, step.up, got, step.back)
		}
	}
}

func TestHoldActsAsCutOff(t *testing.T) {
	var c cutOff
	self := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	members := map[string]speakerlist.Meta{"n1": {}}
	if on, _ := c.update("n1", []corev1.Node{self}, members); on {
		t.Fatal("a single node cut off from nobody")
	}
	c.hold(time.Minute)
	on, settle := c.update("n1", []corev1.Node{self}, members)
	if !on || settle <= 0 || settle > time.Minute {
		t.Errorf("held: on %v, settles in %s", on, settle)
	}
}

func TestInterfaceHas(t *testing.T) {
	if !interfaceHas("lo", netip.MustParseAddr("127.0.0.1")) {
		t.Error("lo does not hold 127.0.0.1")
	}
	if interfaceHas("lo", netip.MustParseAddr("198.18.0.1")) || interfaceHas("no-such-if", netip.MustParseAddr("127.0.0.1")) {
		t.Error("an address the interface does not hold, or a missing interface, counted")
	}
}
