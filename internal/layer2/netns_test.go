package layer2

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/internal/netnstest"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// The integration tests build a two-host LAN out of two network
// namespaces joined by a veth pair, and run Announcers and peers inside
// them. Namespaces are named nsPrefix+..., so that leftovers of a killed
// run can be found and removed. Nothing is configured in the root
// namespace.

const nsPrefix = "pl2t-"

// Test addresses: the benchmarking range 198.18.0.0/15 and the
// documentation range 2001:db8::/32 only.
var (
	vip4      = netip.MustParseAddr("198.18.250.100")
	vip4Other = netip.MustParseAddr("198.18.250.101")
	vip6      = netip.MustParseAddr("2001:db8:250::100")
	vip6Other = netip.MustParseAddr("2001:db8:250::101")
)

// host is one end of the test LAN.
type host struct {
	ns     string
	ifname string
	v4, v6 netip.Prefix
	mac    net.HardwareAddr
	ll     netip.Addr // link-local address
}

var (
	leftovers sync.Once
	labSeq    atomic.Int32
)

// requireNetns skips the test unless it can create namespaces.
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to create network namespaces and packet sockets (CI runs this package as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("the integration tests need ip(8) from iproute2: %v", err)
	}
	leftovers.Do(func() {
		entries, _ := os.ReadDir("/run/netns")
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), nsPrefix) {
				_ = exec.Command("ip", "netns", "del", e.Name()).Run()
			}
		}
	})
}

// run runs a command and fails the test if it fails.
var run = netnstest.Run

// inNS runs fn inside namespace ns (see netnstest.InNS).
var inNS = netnstest.InNS

// newLab creates two namespaces joined by a veth pair, addressed and up,
// and removes them when the test ends.
func newLab(t *testing.T) (a, b host) {
	t.Helper()
	requireNetns(t)
	id := fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), labSeq.Add(1))
	a = host{ns: id + "a", ifname: "l2a",
		v4: netip.MustParsePrefix("198.18.250.1/24"), v6: netip.MustParsePrefix("2001:db8:250::1/64")}
	b = host{ns: id + "b", ifname: "l2b",
		v4: netip.MustParsePrefix("198.18.250.2/24"), v6: netip.MustParsePrefix("2001:db8:250::2/64")}
	for _, h := range []host{a, b} {
		run(t, "ip", "netns", "add", h.ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", h.ns).CombinedOutput(); err != nil {
				t.Logf("deleting namespace %s: %v %s", h.ns, err, out)
			}
		})
		// No DAD in the lab: the link-local addresses must be usable at
		// once, and nothing else uses these addresses.
		if err := inNS(h.ns, func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/default/accept_dad", []byte("0"), 0o644)
		}); err != nil {
			t.Fatalf("disabling DAD in %s: %v", h.ns, err)
		}
	}
	run(t, "ip", "link", "add", a.ifname, "netns", a.ns, "type", "veth", "peer", "name", b.ifname, "netns", b.ns)
	for _, h := range []*host{&a, &b} {
		run(t, "ip", "-n", h.ns, "addr", "add", h.v4.String(), "dev", h.ifname)
		run(t, "ip", "-n", h.ns, "addr", "add", h.v6.String(), "dev", h.ifname, "nodad")
		run(t, "ip", "-n", h.ns, "link", "set", h.ifname, "up")
	}
	for _, h := range []*host{&a, &b} {
		deadline := time.Now().Add(5 * time.Second)
		for !h.ll.IsValid() {
			if time.Now().After(deadline) {
				t.Fatalf("%s/%s got no link-local address", h.ns, h.ifname)
			}
			time.Sleep(20 * time.Millisecond)
			if err := inNS(h.ns, func() error {
				ifi, err := net.InterfaceByName(h.ifname)
				if err != nil {
					return err
				}
				h.mac = ifi.HardwareAddr
				addrs, err := ifi.Addrs()
				if err != nil {
					return err
				}
				for _, ad := range addrs {
					if ipn, ok := ad.(*net.IPNet); ok {
						if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
							h.ll = ip
						}
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return a, b
}

// startAnnouncer creates an Announcer on h's interface, inside h's
// namespace, and serves it until the test ends.
func startAnnouncer(t *testing.T, h host, opts Options) *Announcer {
	t.Helper()
	opts.Interface = h.ifname
	var a *Announcer
	if err := inNS(h.ns, func() (err error) {
		a, err = New(opts)
		return err
	}); err != nil {
		t.Fatalf("New in %s: %v", h.ns, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	for !a.running.Load() {
		time.Sleep(time.Millisecond)
	}
	return a
}

var arpingReply = regexp.MustCompile(`reply from ([0-9.]+) \[([0-9A-Fa-f:]+)\]`)

// arping asks from h who has ip, with iputils' arping, and returns the MAC
// that answered, or nil.
func arping(t *testing.T, h host, ip netip.Addr, wait time.Duration) net.HardwareAddr {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", h.ns, "arping", "-c", "1",
		"-w", fmt.Sprint(int(wait.Seconds())), "-I", h.ifname, ip.String()).CombinedOutput()
	m := arpingReply.FindStringSubmatch(string(out))
	var exit *exec.ExitError
	switch {
	case err == nil && m != nil && m[1] == ip.String():
		mac, perr := net.ParseMAC(m[2])
		if perr != nil {
			t.Fatalf("arping printed a bad MAC: %s", out)
		}
		return mac
	case errors.As(err, &exit) && m == nil:
		return nil // no answer
	default:
		t.Fatalf("arping %s: %v\n%s", ip, err, out)
		return nil
	}
}

var ndisc6Reply = regexp.MustCompile(`Target link-layer address: ([0-9A-Fa-f:]+)`)

// ndisc6 asks from h who has ip, with the ndisc6 tool (Debian package
// ndisc6), and returns the MAC it reports, or nil if it got no answer it
// accepts. With src valid, the solicitation is sent from that address
// instead of the one the kernel picks (h's link-local address). The whole
// output is returned for failure messages.
func ndisc6(t *testing.T, h host, ip, src netip.Addr, tries int) (net.HardwareAddr, string) {
	t.Helper()
	args := []string{"netns", "exec", h.ns, "ndisc6", "-n", "-r", fmt.Sprint(tries), "-w", "1000"}
	if src.IsValid() {
		args = append(args, "-s", src.String())
	}
	args = append(args, ip.String(), h.ifname)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(tries+5)*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	m := ndisc6Reply.FindStringSubmatch(string(out))
	var exit *exec.ExitError
	switch {
	case err == nil && m != nil:
		mac, perr := net.ParseMAC(m[1])
		if perr != nil {
			t.Fatalf("ndisc6 printed a bad MAC: %s", out)
		}
		return mac, string(out)
	case errors.As(err, &exit) && exit.ExitCode() == 2 && m == nil:
		return nil, string(out) // "No response."
	default:
		t.Fatalf("ndisc6 %s: %v\n%s", ip, err, out)
		return nil, string(out)
	}
}

// peerARP opens an ARP client on h's interface, as a capturing peer.
func peerARP(t *testing.T, h host) *arp.Client {
	t.Helper()
	var c *arp.Client
	if err := inNS(h.ns, func() error {
		ifi, err := net.InterfaceByName(h.ifname)
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	}); err != nil {
		t.Fatalf("ARP client in %s: %v", h.ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// peerNDP opens an NDP connection on h's link-local address, reporting
// each message's destination address.
func peerNDP(t *testing.T, h host) *ndp.Conn {
	t.Helper()
	var c *ndp.Conn
	if err := inNS(h.ns, func() error {
		ifi, err := net.InterfaceByName(h.ifname)
		if err != nil {
			return err
		}
		c, _, err = ndp.Listen(ifi, ndp.LinkLocal)
		if err != nil {
			return err
		}
		return c.SetControlMessage(ipv6.FlagDst, true)
	}); err != nil {
		t.Fatalf("NDP conn in %s: %v", h.ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// received is one NDP message read by a peer.
type received struct {
	na  *ndp.NeighborAdvertisement
	dst netip.Addr
	src netip.Addr
}

// readNAs reads Neighbor Advertisements for target until d has passed, or
// until stop says it has seen enough.
func readNAs(t *testing.T, c *ndp.Conn, target netip.Addr, d time.Duration, stop func([]received) bool) []received {
	t.Helper()
	var got []received
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	for {
		m, cm, src, err := c.ReadFrom()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			t.Fatalf("reading NDP: %v", err)
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != target {
			continue
		}
		r := received{na: na, src: src.WithZone("")}
		if cm != nil {
			r.dst, _ = netip.AddrFromSlice(cm.Dst)
		}
		got = append(got, r)
		if stop != nil && stop(got) {
			return got
		}
	}
}

// solicit sends a Neighbor Solicitation for target to dst from c, with
// the source link-layer address option when mac is not nil.
func solicit(t *testing.T, c *ndp.Conn, target, dst netip.Addr, mac net.HardwareAddr) {
	t.Helper()
	ns := &ndp.NeighborSolicitation{TargetAddress: target}
	if mac != nil {
		ns.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}}
	}
	if err := c.WriteTo(ns, nil, dst); err != nil {
		t.Fatalf("sending NS for %s to %s: %v", target, dst, err)
	}
}

// groups lists the IPv6 multicast groups joined on h's interface.
func groups(t *testing.T, h host) string {
	t.Helper()
	return run(t, "ip", "-n", h.ns, "-6", "maddr", "show", "dev", h.ifname)
}
