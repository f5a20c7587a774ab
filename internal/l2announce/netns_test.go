package l2announce

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pharos-lb/pharos/internal/layer2"
	"github.com/pharos-lb/pharos/internal/netnstest"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// The netns test builds a LAN of two namespaces joined by a veth pair,
// named nsPrefix+..., runs a Layer2 in one and judges it with iputils'
// arping from the other. Nothing is configured in the root namespace.

const nsPrefix = "pl2a-"

// sh runs a command and fails the test if it fails.
var sh = netnstest.Run

// inNS runs fn inside namespace ns (see netnstest.InNS).
var inNS = netnstest.InNS

// arpingMAC asks for ip from the client namespace and returns the MAC
// that answered, or "" after the timeout.
var arpReply = regexp.MustCompile(`(?i)reply from [0-9.]+ \[([0-9a-f:]{17})\]`)

func arpingMAC(ns, ifname, ip string) string {
	out, _ := exec.Command("ip", "netns", "exec", ns, "arping", "-c", "1", "-w", "2", "-I", ifname, ip).CombinedOutput()
	if m := arpReply.FindStringSubmatch(string(out)); m != nil {
		return strings.ToLower(m[1])
	}
	return ""
}

// TestRecreatedInterfaceIsAnnouncedAgain: an interface deleted and
// recreated under the same name is announced again on the next Apply (the
// speaker applies on every netlink link event), with its new MAC, as
// arping from the LAN sees. Before the announcer owned its interfaces'
// lifecycle, the address stayed dead until the speaker restarted.
// lan builds the two namespaces, node and client, joined by lan0 (in
// node, 198.18.251.1/24) and cl0 (in client, .2), and returns link, which
// makes the pair again after the test deleted it.
func lan(t *testing.T) (node, client string, link func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root for network namespaces and packet sockets (CI runs it as root)")
	}
	for _, tool := range []string{"ip", "arping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("needs %s (Debian: iproute2, iputils-arping; hack/ci-deps.sh installs them): %v", tool, err)
		}
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), nsPrefix) {
			_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
	id := fmt.Sprintf("%s%d", nsPrefix, os.Getpid())
	node, client = id+"n", id+"c"
	for _, ns := range []string{node, client} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	link = func() {
		sh(t, "ip", "-n", node, "link", "add", "lan0", "type", "veth", "peer", "name", "cl0", "netns", client)
		sh(t, "ip", "-n", node, "addr", "add", "198.18.251.1/24", "dev", "lan0")
		sh(t, "ip", "-n", client, "addr", "replace", "198.18.251.2/24", "dev", "cl0")
		sh(t, "ip", "-n", node, "link", "set", "lan0", "up")
		sh(t, "ip", "-n", client, "link", "set", "cl0", "up")
	}
	link()
	return node, client, link
}

// inNode makes Options open and look up the interfaces in namespace node.
func inNode(node string, o Options) Options {
	o.LookupLink = func(name string) (link Link, err error) {
		_ = inNS(node, func() error { link, err = lookupLink(name); return nil })
		return link, err
	}
	o.Open = func(ctx context.Context, ao layer2.Options) (ann Interface, err error) {
		_ = inNS(node, func() error { ann, err = openLayer2(ctx, ao); return nil })
		return ann, err
	}
	return o
}

func TestRecreatedInterfaceIsAnnouncedAgain(t *testing.T) {
	node, client, link := lan(t)
	macOf := func() string {
		out := sh(t, "ip", "-n", node, "-br", "link", "show", "lan0")
		return strings.Fields(out)[2]
	}

	l := New(inNode(node, Options{Node: "n1", Announcer: layer2.Options{GratuitousCount: -1}}))
	defer l.Close()
	st := stateFor(t, "n1", "lan0", "198.18.251.0/24", nil, "198.18.251.100")

	l.Apply(st)
	first := macOf()
	if got := arpingMAC(client, "cl0", "198.18.251.100"); got != first {
		t.Fatalf("arping saw %q, want the node's MAC %s", got, first)
	}

	// Replace the interface: a veth deleted with its peer, made anew.
	sh(t, "ip", "-n", node, "link", "del", "lan0")
	link()
	second := macOf()
	if second == first {
		t.Fatalf("the recreated interface kept MAC %s; the test needs a new one", first)
	}
	l.Apply(st)
	deadline := time.Now().Add(5 * time.Second)
	got := ""
	for time.Now().Before(deadline) {
		if got = arpingMAC(client, "cl0", "198.18.251.100"); got == second {
			return
		}
	}
	t.Fatalf("after the interface was recreated arping saw %q, want its new MAC %s", got, second)
}

// TestMetricsOnTheWire: with a real announcer, a takeover from a member
// that died sends its gratuitous frames and is observed by the failover
// histogram, and an arping from the LAN is a request answered and a
// response sent, as the metrics say.
func TestMetricsOnTheWire(t *testing.T) {
	node, client, _ := lan(t)
	vip := netip.MustParseAddr("198.18.251.100")
	died := time.Now().Add(-200 * time.Millisecond)
	l := New(inNode(node, Options{Node: "n1", Announcer: layer2.Options{GratuitousCount: 1},
		OwnerLeft: func(ip netip.Addr) (time.Time, bool) { return died, ip == vip }}))
	defer l.Close()
	l.Apply(stateFor(t, "n1", "lan0", "198.18.251.0/24", []speakerlist.Claim{{Node: "n0", Epoch: 1}}, vip.String()))

	count, sum := failoverHistogram(t, l)
	if count != 1 || sum < 0.2 || sum > 5 {
		t.Errorf("failover histogram: %d observed, summing %.3fs; want 1, at least 0.2s", count, sum)
	}
	// One gratuitous request and one gratuitous reply.
	gratuitous := `
# HELP pharos_l2_gratuitous_sent_total Gratuitous ARP and unsolicited Neighbor Advertisements sent on takeover, by interface.
# TYPE pharos_l2_gratuitous_sent_total counter
pharos_l2_gratuitous_sent_total{interface="lan0"} 2
`
	deadline := time.Now().Add(5 * time.Second)
	for testutil.CollectAndCompare(l.Collector(), strings.NewReader(gratuitous), "pharos_l2_gratuitous_sent_total") != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := testutil.CollectAndCompare(l.Collector(), strings.NewReader(gratuitous), "pharos_l2_gratuitous_sent_total"); err != nil {
		t.Error(err)
	}

	if got := arpingMAC(client, "cl0", vip.String()); got == "" {
		t.Fatalf("arping %s: no answer", vip)
	}
	responses := `
# HELP pharos_l2_responses_sent_total ARP replies (IPv4) and Neighbor Advertisements (IPv6) sent in answer to requests for addresses this node announces, by family; gratuitous ones are in pharos_l2_gratuitous_sent_total.
# TYPE pharos_l2_responses_sent_total counter
pharos_l2_responses_sent_total{family="IPv4"} 1
pharos_l2_responses_sent_total{family="IPv6"} 0
`
	if err := testutil.CollectAndCompare(l.Collector(), strings.NewReader(responses), "pharos_l2_responses_sent_total"); err != nil {
		t.Error(err)
	}
}
