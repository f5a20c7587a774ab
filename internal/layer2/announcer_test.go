package layer2

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
)

// These tests drive an Announcer through in-memory sockets, so they run
// without root; announcer_netns_test.go covers the real sockets.

// fakeConn is an in-memory net.PacketConn: frames pushed into in are read,
// frames written come out of writes.
type fakeConn struct {
	in     chan []byte
	writes chan []byte
	// onWrite, if set, sees every frame written.
	onWrite func([]byte)

	closeOnce sync.Once
	closed    chan struct{}

	mu   sync.Mutex
	wake chan struct{} // closed when the read deadline has passed
	woke bool
}

func newFakeConn() *fakeConn {
	return &fakeConn{
		in:     make(chan []byte, 16),
		writes: make(chan []byte, 1024),
		closed: make(chan struct{}),
		wake:   make(chan struct{}),
	}
}

func (c *fakeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.mu.Lock()
	wake := c.wake
	c.mu.Unlock()
	select {
	case f := <-c.in:
		return copy(b, f), &packet.Addr{}, nil
	case <-wake:
		return 0, nil, os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, nil, errors.New("use of closed file")
	}
}

func (c *fakeConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, errors.New("use of closed file")
	default:
	}
	if c.onWrite != nil {
		c.onWrite(b)
	}
	select {
	case c.writes <- slices.Clone(b):
	default: // a test that does not look at writes
	}
	return len(b), nil
}

func (c *fakeConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case t.IsZero() && c.woke:
		c.wake, c.woke = make(chan struct{}), false
	case !t.IsZero() && !t.After(time.Now()) && !c.woke:
		close(c.wake)
		c.woke = true
	}
	return nil
}

func (c *fakeConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeConn) LocalAddr() net.Addr                { return &packet.Addr{} }
func (c *fakeConn) SetDeadline(t time.Time) error      { return c.SetReadDeadline(t) }
func (c *fakeConn) SetWriteDeadline(_ time.Time) error { return nil }

// next returns the next frame written, or fails after a second.
func (c *fakeConn) next(t *testing.T) []byte {
	t.Helper()
	select {
	case f := <-c.writes:
		return f
	case <-time.After(time.Second):
		t.Fatal("no frame written")
		return nil
	}
}

// quiet fails if a frame is written within d.
func (c *fakeConn) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case f := <-c.writes:
		t.Fatalf("unexpected frame written: % x", f)
	case <-time.After(d):
	}
}

// fakeGroups records multicast joins and leaves.
type fakeGroups struct {
	mu        sync.Mutex
	log       []string
	failJoins int // fail this many joins
}

func (g *fakeGroups) JoinGroup(a netip.Addr) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failJoins > 0 {
		g.failJoins--
		return errors.New("no IPv6 on this interface right now")
	}
	g.log = append(g.log, "join "+a.String())
	return nil
}

func (g *fakeGroups) LeaveGroup(a netip.Addr) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.log = append(g.log, "leave "+a.String())
	return nil
}

func (g *fakeGroups) Close() error { return nil }

// take returns and forgets the events so far.
func (g *fakeGroups) take() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.log
	g.log = nil
	return l
}

var ourIPv4 = netip.MustParseAddr("198.18.250.1")

// fakeAnnouncer returns an Announcer on fake sockets, closed at the end.
func fakeAnnouncer(t *testing.T, opts Options) (*Announcer, *fakeConn, *fakeConn, *fakeGroups) {
	a := newAnnouncer(opts, "fake0", ourMAC, ourIPv4, ourLL, 1500)
	arpC, ndpC, g := newFakeConn(), newFakeConn(), &fakeGroups{}
	a.arp, a.ndp, a.mcast = arpC, ndpC, g
	t.Cleanup(func() { a.Close() })
	return a, arpC, ndpC, g
}

// serveFake runs a until the test ends, and returns a function that stops
// it and returns Run's result.
func serveFake(t *testing.T, a *Announcer) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for !a.running.Load() {
		time.Sleep(time.Millisecond)
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(2 * time.Second):
				err = errors.New("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestSetOwnedSolicitedNodeGroups(t *testing.T) {
	a, _, _, g := fakeAnnouncer(t, noBurst)
	v6a := netip.MustParseAddr("2001:db8:250::100")
	v6b := netip.MustParseAddr("2001:db8:251::100") // same group as v6a
	v6c := netip.MustParseAddr("2001:db8:250::101")
	steps := []struct {
		owned []netip.Addr
		want  []string
	}{
		{[]netip.Addr{v6a}, []string{"join ff02::1:ff00:100"}},
		{[]netip.Addr{v6a, v6b, vip4}, nil},
		{[]netip.Addr{v6b, v6c}, []string{"join ff02::1:ff00:101"}},
		{[]netip.Addr{v6c}, []string{"leave ff02::1:ff00:100"}},
		{nil, []string{"leave ff02::1:ff00:101"}},
	}
	for i, s := range steps {
		a.SetOwned(s.owned)
		if got := g.take(); !slices.Equal(got, s.want) {
			t.Errorf("step %d, SetOwned(%v): %v, want %v", i, s.owned, got, s.want)
		}
	}

	// A failed join is retried by the next SetOwned.
	g.failJoins = 1
	a.SetOwned([]netip.Addr{v6a})
	if got := g.take(); len(got) != 0 {
		t.Fatalf("failed join recorded: %v", got)
	}
	a.SetOwned([]netip.Addr{v6a, vip4})
	if got := g.take(); !slices.Equal(got, []string{"join ff02::1:ff00:100"}) {
		t.Errorf("retry: %v", got)
	}
	a.SetOwned(nil)
	if got := g.take(); !slices.Equal(got, []string{"leave ff02::1:ff00:100"}) {
		t.Errorf("leave after retry: %v", got)
	}
}

func TestSetOwnedNormalizes(t *testing.T) {
	a, _, _, _ := fakeAnnouncer(t, noBurst)
	a.SetOwned([]netip.Addr{
		netip.MustParseAddr("::ffff:198.18.250.100"),
		netip.MustParseAddr("2001:db8:250::100%eth0"),
		vip4,
		{},
		netip.IPv4Unspecified(),
		netip.IPv6Unspecified(),
		netip.MustParseAddr("ff02::1"),
		netip.MustParseAddr("224.0.0.1"),
		netip.MustParseAddr("127.0.0.1"),
	})
	if got, want := a.Owned(), []netip.Addr{vip4, vip6}; !slices.Equal(got, want) {
		t.Errorf("Owned() = %v, want %v", got, want)
	}
}

func TestBurstStopsWhenRemoved(t *testing.T) {
	a, arpC, ndpC, _ := fakeAnnouncer(t, Options{GratuitousCount: 50, GratuitousInterval: 10 * time.Millisecond})
	a.SetOwned([]netip.Addr{vip4, vip6})
	want := gratuitousARP(ourMAC, vip4)
	wantNA, _ := unsolicitedNA(ourMAC, vip6)
	for range 3 {
		if f := arpC.next(t); !bytes.Equal(f, want[0]) {
			t.Fatalf("first frame of a burst: % x, want the gratuitous request", f)
		}
		if f := arpC.next(t); !bytes.Equal(f, want[1]) {
			t.Fatalf("second frame of a burst: % x, want the gratuitous reply", f)
		}
		if f := ndpC.next(t); !bytes.Equal(f, wantNA) {
			t.Fatalf("NDP burst frame: % x, want the unsolicited NA", f)
		}
	}
	a.SetOwned([]netip.Addr{vip6})
	// Whatever was sent for vip4 was sent before SetOwned returned.
	for len(arpC.writes) > 0 {
		<-arpC.writes
	}
	arpC.quiet(t, 100*time.Millisecond)
	if f := ndpC.next(t); !bytes.Equal(f, wantNA) {
		t.Fatal("the burst of the address kept was stopped too")
	}

	// Close stops the remaining burst.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for len(ndpC.writes) > 0 {
		<-ndpC.writes
	}
	ndpC.quiet(t, 100*time.Millisecond)
}

func TestRunAnswersAndStops(t *testing.T) {
	a, arpC, ndpC, _ := fakeAnnouncer(t, noBurst)
	stop := serveFake(t, a)
	a.SetOwned([]netip.Addr{vip4, vip6})

	request := arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, peerIPv4, zeroMAC, vip4)
	arpC.in <- request
	checkARPReply(t, arpC.next(t), vip4, peerMAC, peerIPv4)

	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	ns := nsFrom(t, multicastMAC(snm), peerMAC, peerLL, snm, vip6, peerMAC)
	ndpC.in <- ns
	checkNA(t, ndpC.next(t), vip6, peerMAC, peerLL, true)

	// Garbage and foreign frames are counted and skipped.
	arpC.in <- []byte{1, 2, 3}
	arpC.in <- arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, peerIPv4, zeroMAC, vip4Other)
	ndpC.in <- ns[:30]

	a.SetOwned(nil)
	arpC.in <- request
	ndpC.in <- ns
	arpC.quiet(t, 50*time.Millisecond)
	ndpC.quiet(t, 50*time.Millisecond)

	want := Stats{ARPAnswered: 1, ARPIgnored: 2, ARPMalformed: 1, NDPAnswered: 1, NDPIgnored: 1, NDPMalformed: 1}
	for deadline := time.Now().Add(time.Second); a.Stats() != want && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := a.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}

	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	// Run can serve again after it stopped, and Close ends it too.
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for !a.running.Load() {
		time.Sleep(time.Millisecond)
	}
	if err := a.Run(ctx); err == nil {
		t.Error("a second concurrent Run did not fail")
	}
	a.SetOwned([]netip.Addr{vip4})
	arpC.in <- request
	checkARPReply(t, arpC.next(t), vip4, peerMAC, peerIPv4)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := a.Run(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if _, err := a.Probe(ctx, vip4, time.Millisecond); !errors.Is(err, ErrClosed) {
		t.Errorf("Probe after Close: %v, want ErrClosed", err)
	}
	a.SetOwned([]netip.Addr{vip4}) // harmless
	if got := a.Owned(); len(got) != 0 {
		t.Errorf("Owned() after Close = %v", got)
	}
}

// TestNoAnswerAfterRemoval checks, under concurrency, that SetOwned's
// removal is complete when it returns: no answer for the address is
// written afterwards.
func TestNoAnswerAfterRemoval(t *testing.T) {
	a, arpC, ndpC, _ := fakeAnnouncer(t, noBurst)
	var removed atomic.Bool
	var violations atomic.Int32
	check := func(f []byte) {
		arpReply := len(f) > 21 && f[12] == 0x08 && f[13] == 0x06 && f[21] == byte(arp.OperationReply)
		na := len(f) > 54 && f[12] == 0x86 && f[13] == 0xdd && f[54] == icmpTypeNA
		if (arpReply || na) && removed.Load() {
			violations.Add(1)
		}
	}
	arpC.onWrite, ndpC.onWrite = check, check
	serveFake(t, a)

	request := arpFrom(arp.OperationRequest, ethernet.Broadcast, peerMAC, peerIPv4, zeroMAC, vip4)
	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	ns := nsFrom(t, multicastMAC(snm), peerMAC, peerLL, snm, vip6, peerMAC)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, feed := range []struct {
		c *fakeConn
		f []byte
	}{{arpC, request}, {ndpC, ns}} {
		wg.Go(func() {
			for ctx.Err() == nil {
				select {
				case feed.c.in <- feed.f:
				case <-ctx.Done():
				}
			}
		})
	}
	wg.Go(func() { // Owned and Probe race with the rest.
		for ctx.Err() == nil {
			_ = a.Owned()
			_, _ = a.Probe(ctx, vip4, time.Millisecond)
		}
	})
	for range 300 {
		a.SetOwned([]netip.Addr{vip4, vip6})
		time.Sleep(100 * time.Microsecond)
		a.SetOwned(nil)
		removed.Store(true)
		time.Sleep(100 * time.Microsecond)
		removed.Store(false)
	}
	cancel()
	wg.Wait()
	if n := violations.Load(); n > 0 {
		t.Errorf("%d answers written after SetOwned removed their address", n)
	}
	if s := a.Stats(); s.ARPAnswered == 0 || s.NDPAnswered == 0 {
		t.Errorf("nothing answered at all (%+v): the test proves nothing", s)
	}
}

func TestProbeCollectsOtherOwners(t *testing.T) {
	a, arpC, ndpC, _ := fakeAnnouncer(t, noBurst)
	ctx := context.Background()
	if _, err := a.Probe(ctx, vip4, time.Millisecond); !errors.Is(err, ErrNotServing) {
		t.Fatalf("Probe without Run: %v, want ErrNotServing", err)
	}
	serveFake(t, a)

	type result struct {
		macs []net.HardwareAddr
		err  error
	}
	probe := func(ip netip.Addr, timeout time.Duration) chan result {
		ch := make(chan result, 1)
		go func() {
			macs, err := a.Probe(ctx, ip, timeout)
			ch <- result{macs, err}
		}()
		return ch
	}

	// IPv4: an ARP request from our address, sent again halfway.
	ch := probe(vip4, 400*time.Millisecond)
	wantReq := arpFrom(arp.OperationRequest, ethernet.Broadcast, ourMAC, ourIPv4, zeroMAC, vip4)
	if f := arpC.next(t); !bytes.Equal(f, wantReq) {
		t.Fatalf("probe frame % x, want % x", f, wantReq)
	}
	arpC.in <- arpFrom(arp.OperationReply, ourMAC, peerMAC, vip4, ourMAC, ourIPv4)
	arpC.in <- arpFrom(arp.OperationReply, ourMAC, peerMAC, vip4, ourMAC, ourIPv4) // duplicate
	arpC.in <- arpFrom(arp.OperationReply, ourMAC, otherMAC, vip4Other, ourMAC, ourIPv4)
	arpC.in <- arpFrom(arp.OperationRequest, ethernet.Broadcast, otherMAC, vip4, zeroMAC, vip4) // a gratuitous claim
	if f := arpC.next(t); !bytes.Equal(f, wantReq) {
		t.Fatalf("second probe frame % x, want % x", f, wantReq)
	}
	r := <-ch
	if want := []net.HardwareAddr{peerMAC, otherMAC}; r.err != nil || !sameMACs(r.macs, want) {
		t.Errorf("Probe(%s) = %v, %v; want %v", vip4, r.macs, r.err, want)
	}

	// IPv6: a Neighbor Solicitation from our link-local address.
	ch = probe(vip6, 200*time.Millisecond)
	wantNS, _ := probeNS(ourMAC, ourLL, vip6)
	if f := ndpC.next(t); !bytes.Equal(f, wantNS) {
		t.Fatalf("probe frame % x, want % x", f, wantNS)
	}
	na := &ndp.NeighborAdvertisement{Solicited: true, Override: true, TargetAddress: vip6,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: peerMAC}}}
	naFrame, err := ndpFrame(ourMAC, peerMAC, peerLL, ourLL, na)
	if err != nil {
		t.Fatal(err)
	}
	ndpC.in <- naFrame
	r = <-ch
	if r.err != nil || !sameMACs(r.macs, []net.HardwareAddr{peerMAC}) {
		t.Errorf("Probe(%s) = %v, %v; want [%v]", vip6, r.macs, r.err, peerMAC)
	}

	// Nobody answers: nothing, and no error.
	if macs, err := a.Probe(ctx, vip4Other, 50*time.Millisecond); err != nil || len(macs) != 0 {
		t.Errorf("unanswered Probe = %v, %v", macs, err)
	}
	// The context ends first: its error.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := a.Probe(cctx, vip4, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Probe with an ending context: %v", err)
	}
	if _, err := a.Probe(ctx, netip.MustParseAddr("ff02::1"), time.Millisecond); err == nil {
		t.Error("Probe of a multicast address did not fail")
	}
	a.pmu.Lock()
	left := len(a.probes)
	a.pmu.Unlock()
	if left != 0 {
		t.Errorf("%d probes left registered", left)
	}
}

func TestWithoutNDP(t *testing.T) {
	a := newAnnouncer(Options{}, "fake0", ourMAC, ourIPv4, netip.Addr{}, 1500)
	arpC := newFakeConn()
	a.arp = arpC
	defer a.Close()
	serveFake(t, a)
	a.SetOwned([]netip.Addr{vip4, vip6})
	if got := a.Owned(); len(got) != 2 {
		t.Errorf("Owned() = %v", got)
	}
	if _, err := a.Probe(context.Background(), vip6, time.Millisecond); err == nil {
		t.Error("Probe of an IPv6 address without NDP did not fail")
	}
	// The IPv4 burst still goes out (3 pairs by default).
	for range 2 * DefaultGratuitousCount {
		arpC.next(t)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without an interface did not fail")
	}
	if _, err := New(Options{Interface: "pl2t-nonexistent"}); err == nil {
		t.Error("New on a missing interface did not fail")
	}
	if _, err := New(Options{Interface: "lo"}); err == nil {
		t.Error("New on an interface without an Ethernet address did not fail")
	} else {
		t.Log(err)
	}
}
