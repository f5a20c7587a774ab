package dataplane

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The packet test builds client -- node -- pod out of three namespaces
// and two veth pairs, programs the node, and sends real connections from
// the client to the VIP. The VIP is configured on no interface: the
// client routes it to the node, whose nat chain DNATs it to the pod.
// Addresses from 198.18.0.0/15 and 2001:db8::/32 only; nothing is
// configured in the root namespace.

type lab struct {
	client, node, pod string
	nodeFD            int
}

var (
	clientAddr4  = netip.MustParseAddr("198.18.1.2")
	strangerAddr = netip.MustParseAddr("198.18.1.3") // a second client address, outside the source ranges
	clientAddr6  = netip.MustParseAddr("2001:db8:1::2")
	nodePodSide4 = netip.MustParseAddr("198.18.201.1")
	nodePodSide6 = netip.MustParseAddr("2001:db8:201::1")
)

func newPacketLab(t *testing.T) lab {
	t.Helper()
	requireKernel(t)
	id := labID()
	l := lab{client: id + "-client", node: id + "-node", pod: id + "-pod"}
	newNS(t, l.client)
	l.nodeFD = newNS(t, l.node)
	newNS(t, l.pod)
	// No DAD: the lab's addresses (link-local ones too) must be usable at
	// once, and nothing else uses them.
	for _, ns := range []string{l.client, l.node, l.pod} {
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	}
	ip := func(ns string, args ...string) { run(t, append([]string{"ip", "-n", ns}, args...)...) }
	run(t, "ip", "link", "add", "c0", "netns", l.client, "type", "veth", "peer", "name", "n0", "netns", l.node)
	run(t, "ip", "link", "add", "n1", "netns", l.node, "type", "veth", "peer", "name", "p0", "netns", l.pod)
	for _, a := range []struct{ ns, dev, v4, v6 string }{
		{l.client, "c0", "198.18.1.2/24", "2001:db8:1::2/64"},
		{l.node, "n0", "198.18.1.1/24", "2001:db8:1::1/64"},
		{l.node, "n1", "198.18.201.1/24", "2001:db8:201::1/64"},
		{l.pod, "p0", "198.18.201.2/24", "2001:db8:201::2/64"},
	} {
		ip(a.ns, "addr", "add", a.v4, "dev", a.dev)
		ip(a.ns, "addr", "add", a.v6, "dev", a.dev, "nodad")
		ip(a.ns, "link", "set", a.dev, "up")
		ip(a.ns, "link", "set", "lo", "up")
	}
	ip(l.client, "addr", "add", strangerAddr.String()+"/24", "dev", "c0")
	ip(l.client, "route", "add", "198.18.200.0/24", "via", "198.18.1.1")
	ip(l.client, "-6", "route", "add", "2001:db8:200::/64", "via", "2001:db8:1::1")
	ip(l.pod, "route", "add", "default", "via", "198.18.201.1")
	ip(l.pod, "-6", "route", "add", "default", "via", "2001:db8:201::1")
	run(t, "ip", "netns", "exec", l.node, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	return l
}

// serve listens on addr in namespace ns and answers every connection
// with the remote address it sees.
func serve(t *testing.T, ns string, addr netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	if err := inNS(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, c.RemoteAddr().String())
			c.Close()
		}
	}()
}

// ask connects from namespace ns, source from, to dst and returns the
// address the server saw.
func ask(ns string, from netip.Addr, dst netip.AddrPort) (string, error) {
	var seen string
	err := inNS(ns, func() error {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: from.AsSlice()}}
		c, err := d.Dial("tcp", dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		seen = string(b)
		return err
	})
	return seen, err
}

func seenAddr(t *testing.T, seen string) netip.Addr {
	t.Helper()
	ap, err := netip.ParseAddrPort(seen)
	if err != nil {
		t.Fatalf("server answered %q, not an address", seen)
	}
	return ap.Addr()
}

func TestPacketsReachThePod(t *testing.T) {
	l := newPacketLab(t)
	serve(t, l.pod, netip.AddrPortFrom(pod4a, 8080))
	serve(t, l.pod, netip.AddrPortFrom(pod6a, 8080))
	d, err := New(Options{NetNS: l.nodeFD})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	sync := func(preserve, local bool, ranges ...netip.Prefix) {
		t.Helper()
		if err := d.Sync(Config{Frontends: []Frontend{
			{Service: "default/web", VIP: vip4, Protocol: TCP, Port: 80, PreserveClient: preserve, SourceRanges: ranges,
				Backends: []Backend{{Addr: pod4a, Port: 8080, Local: local}}},
			{Service: "default/web6", VIP: vip6, Protocol: TCP, Port: 80, PreserveClient: preserve,
				Backends: []Backend{{Addr: pod6a, Port: 8080, Local: local}}},
		}}); err != nil {
			t.Fatalf("Sync: %v", err)
		}
	}
	vip4Port := netip.AddrPortFrom(vip4, 80)
	vip6Port := netip.AddrPortFrom(vip6, 80)

	t.Run("PreserveClient: the pod sees the client", func(t *testing.T) {
		sync(true, true)
		seen, err := ask(l.client, clientAddr4, vip4Port)
		if err != nil {
			t.Fatalf("connecting to %s: %v", vip4Port, err)
		}
		if got := seenAddr(t, seen); got != clientAddr4 {
			t.Errorf("the pod saw %s, want the client %s", got, clientAddr4)
		}
		seen, err = ask(l.client, clientAddr6, vip6Port)
		if err != nil {
			t.Fatalf("connecting to %s: %v", vip6Port, err)
		}
		if got := seenAddr(t, seen); got != clientAddr6 {
			t.Errorf("the pod saw %s, want the client %s", got, clientAddr6)
		}
	})

	t.Run("remote backend: masqueraded to the node", func(t *testing.T) {
		sync(false, false)
		seen, err := ask(l.client, clientAddr4, vip4Port)
		if err != nil {
			t.Fatalf("connecting to %s: %v", vip4Port, err)
		}
		if got := seenAddr(t, seen); got != nodePodSide4 {
			t.Errorf("the pod saw %s, want the node's %s (masquerade)", got, nodePodSide4)
		}
		seen, err = ask(l.client, clientAddr6, vip6Port)
		if err != nil {
			t.Fatalf("connecting to %s: %v", vip6Port, err)
		}
		if got := seenAddr(t, seen); got != nodePodSide6 {
			t.Errorf("the pod saw %s, want the node's %s (masquerade)", got, nodePodSide6)
		}
	})

	t.Run("source outside SourceRanges: no connection, counted", func(t *testing.T) {
		sync(true, true, netip.PrefixFrom(clientAddr4, 32))
		before, err := d.Dropped("default/web")
		if err != nil {
			t.Fatalf("Dropped: %v", err)
		}
		if _, err := ask(l.client, clientAddr4, vip4Port); err != nil {
			t.Fatalf("the allowed source %s cannot connect: %v", clientAddr4, err)
		}
		_, err = ask(l.client, strangerAddr, vip4Port)
		var ne net.Error
		timedOut := err != nil && ((errors.As(err, &ne) && ne.Timeout()) || strings.Contains(err.Error(), "timeout"))
		if !timedOut {
			t.Fatalf("connecting from %s outside the source ranges: %v, want a timeout (dropped)", strangerAddr, err)
		}
		after, err := d.Dropped("default/web")
		if err != nil {
			t.Fatalf("Dropped: %v", err)
		}
		if after <= before {
			t.Errorf("drop counter went from %d to %d; want it to rise", before, after)
		}
		t.Logf("dropped packets: %d -> %d", before, after)
	})

	t.Run("no backends: refused at once, counted", func(t *testing.T) {
		if err := d.Sync(Config{Frontends: []Frontend{{Service: "default/web", VIP: vip4, Protocol: TCP, Port: 80}}}); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		before, _ := d.Dropped("default/web")
		if _, err := ask(l.client, clientAddr4, vip4Port); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("connecting to a frontend without backends: %v, want connection refused", err)
		}
		if after, _ := d.Dropped("default/web"); after <= before {
			t.Errorf("counter went from %d to %d; want it to rise", before, after)
		}
	})
}

// TestRefusedWithoutAnyBackend: a node whose every frontend lacks a
// backend has no DNAT in its table, so nothing else turns connection
// tracking on in its namespace, and nat chains run only for tracked
// packets. The client must still be refused at once, and counted.
func TestRefusedWithoutAnyBackend(t *testing.T) {
	l := newPacketLab(t)
	d, err := New(Options{NetNS: l.nodeFD})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Sync(Config{Frontends: []Frontend{
		{Service: "default/web", VIP: vip4, Protocol: TCP, Port: 80},
		{Service: "default/web6", VIP: vip6, Protocol: TCP, Port: 80},
	}}); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	for _, c := range []struct {
		service string
		from    netip.Addr
		to      netip.AddrPort
	}{
		{"default/web", clientAddr4, netip.AddrPortFrom(vip4, 80)},
		{"default/web6", clientAddr6, netip.AddrPortFrom(vip6, 80)},
	} {
		before, _ := d.Dropped(c.service)
		if _, err := ask(l.client, c.from, c.to); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("connecting to %s, which has no backend: %v, want connection refused", c.to, err)
		}
		if after, _ := d.Dropped(c.service); after <= before {
			t.Errorf("%s: counter went from %d to %d; want it to rise", c.service, before, after)
		}
	}
}
