package heartbeat

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pharos-lb/pharos/internal/liveness"
)

// TestSocketReportsWhenEachDatagramArrived: datagrams read long after they
// came carry the time they came, not the time they were read, so that a
// speaker reading its heartbeats once per interval still sees a peer's
// silence from its real start.
func TestSocketReportsWhenEachDatagramArrived(t *testing.T) {
	for _, lo := range []string{"127.0.0.1", "::1"} {
		t.Run(lo, func(t *testing.T) {
			addr := netip.MustParseAddr(lo)
			rx, err := listen(addr, 0)
			if err != nil {
				t.Skipf("no %s here: %v", lo, err)
			}
			defer rx.close()
			tx, err := listen(addr, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.close()
			dst := netip.AddrPortFrom(addr, port(t, rx))

			// Nothing queued: drain returns at once, reading nothing.
			if err := rx.drain(time.Now(), func([]byte, time.Time) { t.Error("read a datagram nobody sent") }); err != nil {
				t.Fatal(err)
			}
			warmUp(t, tx, rx, dst)
			sent := []time.Time{time.Now()}
			if err := tx.sendTo([]byte("one"), dst); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			sent = append(sent, time.Now())
			if err := tx.sendTo([]byte("two"), dst); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)

			var got []string
			var at []time.Time
			if err := rx.drain(time.Now(), func(b []byte, when time.Time) {
				got = append(got, string(b))
				at = append(at, when)
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0] != "one" || got[1] != "two" {
				t.Fatalf("read %q, want one and two", got)
			}
			for i := range at {
				if d := at[i].Sub(sent[i]); d < -time.Millisecond || d > 20*time.Millisecond {
					t.Errorf("%s: arrived %s after it was sent (read 100-200 ms later): want the arrival time", got[i], d)
				}
			}
			if err := tx.sendTo([]byte("x"), netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), 9)); addr.Is4() == false && err == nil {
				t.Error("an IPv6 socket sent to an IPv4 address")
			}
		})
	}
}

// TestSocketOnTheUnspecifiedIPv6AddressReachesIPv4Peers: a speaker bound
// to "::" sends to and hears from IPv4 peers, as a dual-stack UDP socket
// does.
func TestSocketOnTheUnspecifiedIPv6AddressReachesIPv4Peers(t *testing.T) {
	dual, err := listen(netip.IPv6Unspecified(), 0)
	if err != nil {
		t.Skipf("no IPv6 here: %v", err)
	}
	defer dual.close()
	v4, err := listen(netip.MustParseAddr("127.0.0.1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer v4.close()
	loop := netip.MustParseAddr("127.0.0.1")
	if err := dual.sendTo([]byte("to v4"), netip.AddrPortFrom(loop, port(t, v4))); err != nil {
		t.Fatal(err)
	}
	if err := v4.sendTo([]byte("to dual"), netip.AddrPortFrom(loop, port(t, dual))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	for _, c := range []struct {
		s    *socket
		want string
	}{{v4, "to v4"}, {dual, "to dual"}} {
		var got []string
		if err := c.s.drain(time.Now(), func(b []byte, _ time.Time) { got = append(got, string(b)) }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("read %q, want %q", got, c.want)
		}
	}
}

func port(t *testing.T, s *socket) uint16 {
	t.Helper()
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		t.Fatal(err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return uint16(sa.Port)
	case *unix.SockaddrInet6:
		return uint16(sa.Port)
	}
	t.Fatalf("socket address %T", sa)
	return 0
}

// TestHeartbeatsReadLateCountFromTheirArrival: Run reads the heartbeats
// when it wakes, maybe long after they came (once per interval, or later
// on a node starved of CPU); each counts from when it arrived, so a peer's
// silence is the silence on the wire, not the reader's own lateness.
func TestHeartbeatsReadLateCountFromTheirArrival(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	h, err := New(Options{Node: "self", Key: key, BindAddr: lo, Port: 0,
		Interval: 50 * time.Millisecond, Detection: liveness.Defaults(200*time.Millisecond, 50*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.sock.close()
	tx, err := listen(lo, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.close()
	h.SetPeers([]string{"peer"}, nil, map[string]netip.Addr{"peer": lo})
	dst := netip.AddrPortFrom(lo, port(t, h.sock))
	warmUp(t, tx, h.sock, dst)
	for i, late := range []time.Duration{10 * time.Millisecond, 300 * time.Millisecond} {
		sent := time.Now()
		if err := tx.sendTo(encode(h.key, "peer", uint64(i+1)), dst); err != nil {
			t.Fatal(err)
		}
		time.Sleep(late)
		h.receive(time.Now())
		if d := h.lastAt["peer"].Sub(sent); d < -time.Millisecond || d > 20*time.Millisecond {
			t.Errorf("read %s late: heartbeat counted %s after it was sent, want about 0", late, d)
		}
	}
	if h.stats.received.Load() != 2 {
		t.Errorf("received %d heartbeats, want 2", h.stats.received.Load())
	}
}

// warmUp lets the kernel start stamping arrivals. The first socket that
// asks for timestamps turns them on for the whole system from a work queue,
// a moment later; until then a datagram carries the time it is read. A
// speaker's heartbeat socket lives as long as the speaker, but a test's
// socket may be the first one, so it waits for stamped arrivals first.
func warmUp(t *testing.T, tx, rx *socket, dst netip.AddrPort) {
	t.Helper()
	for range 50 {
		sent := time.Now()
		if err := tx.sendTo([]byte("warm-up"), dst); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		stamped := false
		if err := rx.drain(time.Now(), func(_ []byte, at time.Time) { stamped = at.Sub(sent) < 10*time.Millisecond }); err != nil {
			t.Fatal(err)
		}
		if stamped {
			return
		}
	}
	t.Fatal("the kernel never stamped a datagram's arrival")
}
