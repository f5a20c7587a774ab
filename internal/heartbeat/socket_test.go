package heartbeat

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
			sa, err := unix.Getsockname(rx.fd)
			if err != nil {
				t.Fatal(err)
			}
			var port int
			switch sa := sa.(type) {
			case *unix.SockaddrInet4:
				port = sa.Port
			case *unix.SockaddrInet6:
				port = sa.Port
			}
			dst := netip.AddrPortFrom(addr, uint16(port))

			// Nothing queued: drain returns at once, reading nothing.
			if err := rx.drain(time.Now(), func([]byte, time.Time) { t.Error("read a datagram nobody sent") }); err != nil {
				t.Fatal(err)
			}
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
