package heartbeat

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/internal/liveness"
	"github.com/pharos-lb/pharos/internal/netnstest"
)

// The netns test joins two namespaces, nsPrefix+"a" (node a, 198.18.252.1)
// and nsPrefix+"b" (node b, .2), by a veth pair: a announces, b is its
// successor and watches it. Nothing is configured in the root namespace.
const nsPrefix = "phb-"

var (
	addrA  = netip.MustParseAddr("198.18.252.1")
	addrB  = netip.MustParseAddr("198.18.252.2")
	addrA6 = netip.MustParseAddr("2001:db8:252::1")
	addrB6 = netip.MustParseAddr("2001:db8:252::2")
	key    = []byte("0123456789abcdef")
)

func lan(t *testing.T) (nsA, nsB string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root for network namespaces and packet sockets (CI runs it as root)")
	}
	nsA, nsB = nsPrefix+"a", nsPrefix+"b"
	cleanup := func() {
		for _, ns := range []string{nsA, nsB} {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	}
	cleanup()
	t.Cleanup(cleanup)
	netnstest.Run(t, "ip", "netns", "add", nsA)
	netnstest.Run(t, "ip", "netns", "add", nsB)
	link(t, nsA, nsB)
	return nsA, nsB
}

// link joins nsA's a0 and nsB's b0 by a new veth pair, with a's and b's
// addresses.
func link(t *testing.T, nsA, nsB string) {
	t.Helper()
	netnstest.Run(t, "ip", "-n", nsA, "link", "add", "a0", "type", "veth", "peer", "name", "b0", "netns", nsB)
	netnstest.Run(t, "ip", "-n", nsA, "addr", "add", addrA.String()+"/24", "dev", "a0")
	netnstest.Run(t, "ip", "-n", nsB, "addr", "add", addrB.String()+"/24", "dev", "b0")
	netnstest.Run(t, "ip", "-n", nsA, "addr", "add", addrA6.String()+"/64", "dev", "a0", "nodad")
	netnstest.Run(t, "ip", "-n", nsB, "addr", "add", addrB6.String()+"/64", "dev", "b0", "nodad")
	netnstest.Run(t, "ip", "-n", nsA, "link", "set", "a0", "up")
	netnstest.Run(t, "ip", "-n", nsB, "link", "set", "b0", "up")
}

// start runs a Heartbeat for node in namespace ns until the returned stop
// is called.
func start(t *testing.T, ns, node string, bind netip.Addr, k []byte) (*Heartbeat, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *Heartbeat, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := netnstest.InNS(ns, func() error {
			h, err := New(Options{Node: node, Key: k, BindAddr: bind, Port: 7947, Interval: 50 * time.Millisecond,
				Detection: liveness.Defaults(200*time.Millisecond, 50*time.Millisecond), Logger: testLogger(t)})
			if err != nil {
				ready <- nil
				return err
			}
			ready <- h
			// Run on this thread, in ns: the probes' sockets open here.
			h.Run(ctx)
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}()
	h := <-ready
	if h == nil {
		cancel()
		t.FailNow()
	}
	return h, func() { cancel(); <-done }
}

// watching starts b, in nsB, watching a as its successor, and a, in nsA,
// announcing with b as its successor. b stops when the test ends; a when
// stopA is called.
func watching(t *testing.T, nsA, nsB string, addrs map[string]netip.Addr) (b *Heartbeat, stopA func()) {
	t.Helper()
	b, stopB := start(t, nsB, "b", addrs["b"], key)
	t.Cleanup(stopB)
	b.SetPeers([]string{"a"}, nil, addrs)
	return b, announcing(t, nsA, addrs)
}

// announcing starts a, in nsA, announcing with b as its successor.
func announcing(t *testing.T, nsA string, addrs map[string]netip.Addr) (stop func()) {
	t.Helper()
	a, stop := start(t, nsA, "a", addrs["a"], key)
	a.SetPeers(nil, []string{"b"}, addrs)
	return stop
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestSuccessorTellsACrashFromASilentSpeaker: b, a's successor, never
// holds a dead while a's kernel answers ARP (IPv4) or NDP (IPv6), however
// long a's speaker is silent, and holds it dead soon after a's link goes
// down; a is alive again when its heartbeats return.
func TestSuccessorTellsACrashFromASilentSpeaker(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { successorTellsACrash(t, addrA, addrB) })
	t.Run("IPv6", func(t *testing.T) { successorTellsACrash(t, addrA6, addrB6) })
}

func successorTellsACrash(t *testing.T, addrA, addrB netip.Addr) {
	nsA, nsB := lan(t)
	addrs := map[string]netip.Addr{"a": addrA, "b": addrB}
	b, stopA := watching(t, nsA, nsB, addrs)

	waitFor(t, "b receives a's heartbeats", 2*time.Second, func() bool { return b.stats.received.Load() > 5 })
	time.Sleep(500 * time.Millisecond)
	if d := b.Dead(); len(d) != 0 {
		t.Fatalf("a found dead while it sends heartbeats: %v", d)
	}
	// Fresh namespaces' IPv6 takes a moment (a may have looked dead
	// before its first heartbeat): count from here.
	deaths, revivals := b.stats.deaths.Load(), b.stats.revivals.Load()

	// a's speaker stops (as if paused or crashed), its kernel runs on: b
	// probes it and never calls it dead.
	stopA()
	time.Sleep(2 * time.Second)
	if d := b.Dead(); len(d) != 0 {
		t.Fatalf("a found dead while its kernel answers ARP: %v", d)
	}
	if b.stats.probes.Load() == 0 {
		t.Fatal("b never probed the silent a")
	}
	t.Logf("a silent 2 s with its kernel answering: %d probes, not dead", b.stats.probes.Load())

	// a runs again; then its link goes down: now b finds it dead.
	stopA = announcing(t, nsA, addrs)
	defer func() { stopA() }()
	received := b.stats.received.Load()
	waitFor(t, "a's heartbeats again", 2*time.Second, func() bool { return b.stats.received.Load() > received+3 })
	netnstest.Run(t, "ip", "-n", nsA, "link", "set", "a0", "down")
	took := waitFor(t, "b finds a dead once its link is down", 3*time.Second, func() bool { _, ok := b.Dead()["a"]; return ok })
	t.Logf("link down: a found dead after %s", took.Round(time.Millisecond))
	// As the speaker does: b took a's addresses, so it watches a no more
	// and has nobody to notify; memberlist still lists a. b must still
	// read a's heartbeats, to revive it should they come back before
	// memberlist declares it dead.
	b.SetPeers(nil, nil, addrs)
	if s := b.Dead()["a"]; time.Since(s) > 3*time.Second {
		t.Errorf("dead since %s: not its last heartbeat", s)
	}

	// While a's link stays down, nothing spins: the probe sockets fail
	// every read at once on a link that is down.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before := cpu()
	time.Sleep(time.Second)
	if used := cpu() - before; used > 300*time.Millisecond {
		t.Errorf("the test process used %s of CPU in the second after a's link went down: something spins", used)
	}

	// The link comes back: heartbeats again, a is alive.
	netnstest.Run(t, "ip", "-n", nsA, "link", "set", "a0", "up")
	if addrA.Is6() {
		// Linux drops a link's IPv6 addresses when it goes down; a node's
		// network configuration puts them back.
		netnstest.Run(t, "ip", "-n", nsA, "addr", "replace", addrA.String()+"/64", "dev", "a0", "nodad")
	}
	waitFor(t, "a alive again after its link came back", 5*time.Second, func() bool { return len(b.Dead()) == 0 })
	if d, r := b.stats.deaths.Load()-deaths, b.stats.revivals.Load()-revivals; d != 1 || r != 1 {
		t.Errorf("deaths %d, revivals %d; want 1 and 1", d, r)
	}
}

// TestProbesFollowAnInterfaceMadeAgain: the successor's LAN interface is
// deleted and made again under its name (a bond or VLAN rebuilt) while it
// probes a silent peer. Its probes then go out of the new interface: the
// peer, alive, stays alive, and once the peer's link is down it is found
// dead. Probes left on the old interface's socket, or sent to the old
// interface's index (Go's cache of zone names keeps it up to a minute),
// would never go out, and the peer would be left to memberlist.
func TestProbesFollowAnInterfaceMadeAgain(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { probesFollowAnInterfaceMadeAgain(t, addrA, addrB) })
	t.Run("IPv6", func(t *testing.T) { probesFollowAnInterfaceMadeAgain(t, addrA6, addrB6) })
}

func probesFollowAnInterfaceMadeAgain(t *testing.T, addrA, addrB netip.Addr) {
	nsA, nsB := lan(t)
	addrs := map[string]netip.Addr{"a": addrA, "b": addrB}
	b, stopA := watching(t, nsA, nsB, addrs)
	waitFor(t, "b receives a's heartbeats", 2*time.Second, func() bool { return b.stats.received.Load() > 5 })

	// a's speaker stops; b probes a's kernel, which answers.
	stopA()
	waitFor(t, "b probes the silent a", 2*time.Second, func() bool { return b.stats.probes.Load() > 3 })

	// The LAN is made again: b0 is a new interface with b0's name.
	netnstest.Run(t, "ip", "-n", nsA, "link", "del", "a0")
	link(t, nsA, nsB)
	probes := b.stats.probes.Load()
	// The kernel sends IPv6 on a new link once it has processed the
	// link's carrier event, up to a second later.
	again := waitFor(t, "b probes a over the new b0", 4*time.Second, func() bool { return b.stats.probes.Load() > probes+3 })
	t.Logf("b probes a over the new b0 %s after it was made", again.Round(time.Millisecond))
	time.Sleep(time.Second)
	if d := b.Dead(); len(d) != 0 {
		t.Fatalf("a found dead while its kernel answers over the new link: %v", d)
	}

	netnstest.Run(t, "ip", "-n", nsA, "link", "set", "a0", "down")
	took := waitFor(t, "b finds a dead once its link is down", 3*time.Second, func() bool { _, ok := b.Dead()["a"]; return ok })
	t.Logf("interface made again, then a's link down: a found dead after %s", took.Round(time.Millisecond))
}

// TestLinkLocalPeersAreNotProbed: every interface has fe80::/64, so a
// peer's link-local address does not say which link to probe it on; the
// wrong one would find a live peer silent. Such a peer is left to
// memberlist. Global addresses find their link.
func TestLinkLocalPeersAreNotProbed(t *testing.T) {
	_, nsB := lan(t)
	// The kernel gives b0 its own link-local address once the link's
	// carrier event is processed, up to a second later: give it one now.
	netnstest.Run(t, "ip", "-n", nsB, "addr", "add", "fe80::2/64", "dev", "b0", "nodad")
	err := netnstest.InNS(nsB, func() error {
		if ifi, _, err := onLinkInterface(netip.MustParseAddr("fe80::1")); err == nil {
			t.Errorf("a link-local peer would be probed on %s", ifi.Name)
		}
		for _, a := range []netip.Addr{addrA, addrA6} {
			if ifi, local, err := onLinkInterface(a); err != nil || ifi.Name != "b0" || (local != addrB && local != addrB6) {
				t.Errorf("peer %s: probed on %v from %s (%v); want b0", a, ifi, local, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeatsOfAnotherClusterAreRefused(t *testing.T) {
	nsA, nsB := lan(t)
	addrs := map[string]netip.Addr{"a": addrA, "b": addrB}
	b, stopB := start(t, nsB, "b", addrB, key)
	defer stopB()
	b.SetPeers([]string{"a"}, nil, addrs)
	a, stopA := start(t, nsA, "a", addrA, []byte("fedcba9876543210"))
	defer stopA()
	a.SetPeers(nil, []string{"b"}, addrs)
	waitFor(t, "b refuses a's heartbeats", 2*time.Second, func() bool { return b.stats.rejected.Load() > 10 })
	if n := b.stats.received.Load(); n != 0 {
		t.Errorf("b accepted %d heartbeats signed with another key", n)
	}
	if _, err := New(Options{Node: "x", Key: key, BindAddr: addrB, Port: 7948, Interval: 100 * time.Millisecond,
		Detection: liveness.Defaults(150*time.Millisecond, 100*time.Millisecond)}); err == nil {
		t.Error("an interval too long for the detection time was accepted")
	} else {
		t.Log(err)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
