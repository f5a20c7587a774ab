package layer2

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
)

// noBurst keeps takeover announcements out of tests about answers.
var noBurst = Options{GratuitousCount: -1}

func TestARPAnswersOwnedAddressesOnly(t *testing.T) {
	a, b := newLab(t)
	ann := startAnnouncer(t, a, noBurst)

	ann.SetOwned([]netip.Addr{vip4})
	if got := arping(t, b, vip4, 2*time.Second); !bytes.Equal(got, a.mac) {
		t.Fatalf("arping %s from the peer: answered by %v, want %v", vip4, got, a.mac)
	}
	if got := arping(t, b, vip4Other, time.Second); got != nil {
		t.Fatalf("arping unowned %s: answered by %v, want no answer", vip4Other, got)
	}

	ann.SetOwned(nil)
	if got := arping(t, b, vip4, time.Second); got != nil {
		t.Fatalf("arping %s after it was removed: answered by %v, want no answer", vip4, got)
	}
	// The requests for addresses we do not own never reached us: the
	// socket's filter dropped them in the kernel.
	if s := ann.Stats(); s.ARPAnswered != 1 || s.ARPIgnored != 0 {
		t.Errorf("stats %+v: want 1 ARP answer and no ignored request", s)
	}
}

// TestFloodForOtherAddressesStaysInTheKernel: a flood of ARP requests and
// Neighbor Solicitations for addresses we do not own, as a busy or hostile
// LAN sends, is dropped by the sockets' filters before it is queued to us
// (so it cannot crowd out a request for an owned address), and the owned
// addresses are still answered. It counts frames, not time.
func TestFloodForOtherAddressesStaysInTheKernel(t *testing.T) {
	a, b := newLab(t)
	ann := startAnnouncer(t, a, noBurst)
	ann.SetOwned([]netip.Addr{vip4, vip6})

	const n = 20000
	var arpConn, ndpConn *packet.Conn
	if err := inNS(b.ns, func() error {
		ifi, err := net.InterfaceByName(b.ifname)
		if err != nil {
			return err
		}
		if arpConn, err = packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil); err != nil {
			return err
		}
		ndpConn, err = packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeIPv6), nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { arpConn.Close(); ndpConn.Close() })
	send := func(c *packet.Conn, f []byte) {
		t.Helper()
		if _, err := c.WriteTo(f, &packet.Addr{HardwareAddr: net.HardwareAddr(f[0:6])}); err != nil {
			t.Fatal(err)
		}
	}
	base4, base6 := netip.MustParseAddr("198.18.250.128").As4(), vip6Other.As16()
	for i := range n {
		t4 := base4
		t4[3] += byte(i % 100)
		send(arpConn, arpFrom(arp.OperationRequest, ethernet.Broadcast, b.mac, b.v4.Addr(), zeroMAC, netip.AddrFrom4(t4)))
		if i%10 == 0 {
			t6 := base6
			t6[14], t6[15] = byte(i>>8), byte(i)
			target := netip.AddrFrom16(t6)
			snm, _ := ndp.SolicitedNodeMulticast(target)
			send(ndpConn, nsFrom(t, multicastMAC(snm), b.mac, b.ll, snm, target, b.mac))
		}
	}
	if got := arping(t, b, vip4, 2*time.Second); !bytes.Equal(got, a.mac) {
		t.Fatalf("arping %s after the flood: answered by %v, want %v", vip4, got, a.mac)
	}
	if got, out := ndisc6(t, b, vip6, netip.Addr{}, 3); !bytes.Equal(got, a.mac) {
		t.Fatalf("ndisc6 %s after the flood: %v, want %v\n%s", vip6, got, a.mac, out)
	}
	if s := ann.Stats(); s.ARPIgnored != 0 || s.NDPIgnored != 0 || s.ARPAnswered < 1 || s.NDPAnswered < 1 {
		t.Errorf("stats %+v: the flood reached the announcer, or the owned addresses went unanswered", s)
	}
}

func TestARPGratuitousBurst(t *testing.T) {
	a, b := newLab(t)
	const count, interval = 3, 100 * time.Millisecond
	ann := startAnnouncer(t, a, Options{GratuitousCount: count, GratuitousInterval: interval})
	peer := peerARP(t, b)
	if err := peer.SetReadDeadline(time.Now().Add(count*interval + time.Second)); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	ann.SetOwned([]netip.Addr{vip4})
	var requests, replies []time.Duration
	for {
		p, f, err := peer.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.SenderIP != vip4 {
			continue
		}
		if !bytes.Equal(f.Destination, ethernet.Broadcast) || !bytes.Equal(f.Source, a.mac) ||
			!bytes.Equal(p.SenderHardwareAddr, a.mac) || p.TargetIP != vip4 {
			t.Errorf("gratuitous %v: frame %v -> %v, sender %v, target %v; want broadcast from %v, sender = target = %v",
				p.Operation, f.Source, f.Destination, p.SenderHardwareAddr, p.TargetIP, a.mac, vip4)
		}
		switch p.Operation {
		case arp.OperationRequest:
			requests = append(requests, time.Since(start))
		case arp.OperationReply:
			replies = append(replies, time.Since(start))
		}
	}
	if len(requests) != count || len(replies) != count {
		t.Fatalf("saw %d gratuitous requests and %d replies, want %d of each", len(requests), len(replies), count)
	}
	if spread := requests[count-1] - requests[0]; spread < (count-1)*interval*8/10 {
		t.Errorf("burst lasted %v, want about %v", spread, (count-1)*interval)
	}
	if s := ann.Stats(); s.GratuitousSent != 2*count {
		t.Errorf("stats %+v: want %d gratuitous frames", s, 2*count)
	}
}

func TestNDPAnswersMulticastSolicitations(t *testing.T) {
	a, b := newLab(t)
	ann := startAnnouncer(t, a, noBurst)
	peer := peerNDP(t, b)
	group := "ff02::1:ff00:100" // vip6's solicited-node group

	if strings.Contains(groups(t, a), group) {
		t.Fatalf("%s joined before any address is owned", group)
	}
	ann.SetOwned([]netip.Addr{vip6})
	if g := groups(t, a); !strings.Contains(g, group) {
		t.Fatalf("owning %s did not join %s:\n%s", vip6, group, g)
	}

	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	solicit(t, peer, vip6, snm, b.mac)
	got := readNAs(t, peer, vip6, 2*time.Second, func([]received) bool { return true })
	if len(got) != 1 {
		t.Fatalf("no advertisement for %s", vip6)
	}
	checkSolicitedNA(t, got[0], a, b.ll)

	otherSNM, _ := ndp.SolicitedNodeMulticast(vip6Other)
	solicit(t, peer, vip6Other, otherSNM, b.mac)
	if got := readNAs(t, peer, vip6Other, 500*time.Millisecond, nil); len(got) != 0 {
		t.Fatalf("unowned %s was advertised: %+v", vip6Other, got[0].na)
	}

	ann.SetOwned(nil)
	if g := groups(t, a); strings.Contains(g, group) {
		t.Fatalf("still in %s after the last address needing it went:\n%s", group, g)
	}
	solicit(t, peer, vip6, snm, b.mac)
	if got := readNAs(t, peer, vip6, 500*time.Millisecond, nil); len(got) != 0 {
		t.Fatalf("%s advertised after it was removed", vip6)
	}
	if s := ann.Stats(); s.NDPAnswered != 1 {
		t.Errorf("stats %+v: want 1 NDP answer", s)
	}
}

// checkSolicitedNA checks an answer of a's Announcer to a solicitation from
// peer address to.
func checkSolicitedNA(t *testing.T, r received, a host, to netip.Addr) {
	t.Helper()
	if !r.na.Solicited || !r.na.Override || r.na.Router {
		t.Errorf("NA flags S=%v O=%v R=%v, want S and O only", r.na.Solicited, r.na.Override, r.na.Router)
	}
	if lla := linkLayerOption(r.na.Options, ndp.Target); !bytes.Equal(lla, a.mac) {
		t.Errorf("NA target link-layer address %v, want %v", lla, a.mac)
	}
	if r.src != r.na.TargetAddress {
		t.Errorf("NA from %s, want the target %s", r.src, r.na.TargetAddress)
	}
	if r.dst != to {
		t.Errorf("NA sent to %s, want the solicitor %s", r.dst, to)
	}
}

func TestNDPAnswersUnicastNUD(t *testing.T) {
	a, b := newLab(t)
	ann := startAnnouncer(t, a, noBurst)
	ann.SetOwned([]netip.Addr{vip6})
	peer := peerNDP(t, b)

	// A peer in NUD's PROBE state sends its solicitation to the cached MAC
	// and to the address itself; a permanent entry makes the peer's kernel
	// do exactly that, without multicast resolution first.
	for _, ip := range []netip.Addr{vip6, vip6Other} {
		run(t, "ip", "-n", b.ns, "-6", "neigh", "replace", ip.String(), "lladdr", a.mac.String(),
			"dev", b.ifname, "nud", "permanent")
	}
	// Watch what reaches a, to prove the solicitation was unicast.
	var capture *packet.Conn
	if err := inNS(a.ns, func() error {
		ifi, err := net.InterfaceByName(a.ifname)
		if err != nil {
			return err
		}
		capture, err = packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeIPv6), nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer capture.Close()

	solicit(t, peer, vip6, vip6, nil)
	got := readNAs(t, peer, vip6, 2*time.Second, func([]received) bool { return true })
	if len(got) != 1 {
		t.Fatalf("no advertisement for the unicast solicitation of %s", vip6)
	}
	checkSolicitedNA(t, got[0], a, b.ll)

	sawUnicast := false
	buf := make([]byte, 2048)
	_ = capture.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	for !sawUnicast {
		n, _, err := capture.ReadFrom(buf)
		if err != nil {
			break
		}
		f := buf[:n]
		if n >= 14+40+24 && f[14+6] == protoICMPv6 && f[14+40] == icmpTypeNS &&
			bytes.Equal(f[0:6], a.mac) && netip.AddrFrom16([16]byte(f[14+24:14+40])) == vip6 {
			sawUnicast = true
		}
	}
	if !sawUnicast {
		t.Error("the solicitation that was answered did not reach the announcer as unicast")
	}

	solicit(t, peer, vip6Other, vip6Other, nil)
	if got := readNAs(t, peer, vip6Other, 500*time.Millisecond, nil); len(got) != 0 {
		t.Fatalf("unowned %s was advertised to a unicast solicitation", vip6Other)
	}
}

func TestNDPUnsolicitedAdvertisementOnTakeover(t *testing.T) {
	a, b := newLab(t)
	const count, interval = 3, 100 * time.Millisecond
	ann := startAnnouncer(t, a, Options{GratuitousCount: count, GratuitousInterval: interval})
	peer := peerNDP(t, b)

	ann.SetOwned([]netip.Addr{vip6})
	got := readNAs(t, peer, vip6, count*interval+time.Second, nil)
	if len(got) != count {
		t.Fatalf("saw %d unsolicited advertisements for %s, want %d", len(got), vip6, count)
	}
	for _, r := range got {
		if r.na.Solicited || !r.na.Override {
			t.Errorf("NA flags S=%v O=%v, want O only", r.na.Solicited, r.na.Override)
		}
		if lla := linkLayerOption(r.na.Options, ndp.Target); !bytes.Equal(lla, a.mac) {
			t.Errorf("NA target link-layer address %v, want %v", lla, a.mac)
		}
		if r.dst != allNodes || r.src != vip6 {
			t.Errorf("NA %s -> %s, want %s -> %s", r.src, r.dst, vip6, allNodes)
		}
	}
	if s := ann.Stats(); s.GratuitousSent != count {
		t.Errorf("stats %+v: want %d gratuitous frames", s, count)
	}
}

func TestProbeFindsOtherOwners(t *testing.T) {
	a, b := newLab(t)
	annA := startAnnouncer(t, a, noBurst)
	annB := startAnnouncer(t, b, noBurst)
	ctx := context.Background()
	const timeout = 500 * time.Millisecond

	probe := func(ann *Announcer, ip netip.Addr) []net.HardwareAddr {
		t.Helper()
		macs, err := ann.Probe(ctx, ip, timeout)
		if err != nil {
			t.Fatalf("Probe(%s): %v", ip, err)
		}
		return macs
	}
	both := []netip.Addr{vip4, vip6}

	// One owner: nobody else answers.
	annA.SetOwned(both)
	for _, ip := range both {
		if macs := probe(annA, ip); len(macs) != 0 {
			t.Errorf("Probe(%s) by the only owner: %v, want nobody", ip, macs)
		}
		if macs := probe(annB, ip); len(macs) != 1 || !bytes.Equal(macs[0], a.mac) {
			t.Errorf("Probe(%s) by a non-owner: %v, want [%v]", ip, macs, a.mac)
		}
	}

	// Split brain: both answer, each sees the other and not itself.
	annB.SetOwned(both)
	for _, ip := range both {
		if macs := probe(annA, ip); len(macs) != 1 || !bytes.Equal(macs[0], b.mac) {
			t.Errorf("Probe(%s) by a with b also owning: %v, want [%v]", ip, macs, b.mac)
		}
		if macs := probe(annB, ip); len(macs) != 1 || !bytes.Equal(macs[0], a.mac) {
			t.Errorf("Probe(%s) by b with a also owning: %v, want [%v]", ip, macs, a.mac)
		}
	}

	// Nobody owns: nobody answers.
	annA.SetOwned(nil)
	annB.SetOwned(nil)
	for _, ip := range both {
		if macs := probe(annA, ip); len(macs) != 0 {
			t.Errorf("Probe(%s) with no owner: %v", ip, macs)
		}
	}

	// One batch: each address gets its own answers, the same address
	// given twice is probed once, an address b does not own has none, and
	// one that cannot be probed is named in the error without spoiling
	// the others.
	other4, other6 := vip4.Next(), vip6.Next()
	multicast := netip.MustParseAddr("224.0.0.1")
	annB.SetOwned([]netip.Addr{vip4, other6})
	found, err := annA.ProbeAll(ctx, []netip.Addr{vip4, vip6, other4, multicast, other6, vip4}, timeout)
	if err == nil || !strings.Contains(err.Error(), multicast.String()) {
		t.Errorf("ProbeAll with %s: error %v, want one naming it", multicast, err)
	}
	want := map[netip.Addr][]net.HardwareAddr{vip4: {b.mac}, other6: {b.mac}}
	if len(found) != len(want) {
		t.Errorf("ProbeAll: %v, want %v", found, want)
	}
	for ip, macs := range want {
		if !sameMACs(found[ip], macs) {
			t.Errorf("ProbeAll: %s answered by %v, want %v", ip, found[ip], macs)
		}
	}

	// Several probes of one address at once all get the answer.
	annB.SetOwned(both)
	results := make(chan []net.HardwareAddr, 3)
	for range cap(results) {
		go func() {
			macs, _ := annA.Probe(ctx, vip4, timeout)
			results <- macs
		}()
	}
	for range cap(results) {
		if macs := <-results; !sameMACs(macs, []net.HardwareAddr{b.mac}) {
			t.Errorf("concurrent Probe: %v, want [%v]", macs, b.mac)
		}
	}
}

// TestClientToolsAcceptAnswers asks the Announcer with the resolvers an
// operator runs on a LAN client, iputils arping and ndisc6, which check
// more than a kernel does. ndisc6 (1.0.5, Debian 12) drops a Neighbor
// Advertisement for a unicast target unless its IPv6 source is the target
// itself, as it is when a kernel answers for its own address; an answer
// from the link-local address is received and then ignored ("Timed out").
func TestClientToolsAcceptAnswers(t *testing.T) {
	_, arpingErr := exec.LookPath("arping")
	_, ndisc6Err := exec.LookPath("ndisc6")
	if arpingErr != nil && ndisc6Err != nil {
		t.Skip("skipped: neither arping nor ndisc6 is installed (Debian packages iputils-arping and ndisc6)")
	}
	a, b := newLab(t)
	ann := startAnnouncer(t, a, noBurst)
	ann.SetOwned([]netip.Addr{vip4, vip6})

	t.Run("arping", func(t *testing.T) {
		if arpingErr != nil {
			t.Skip("skipped: arping is not installed (Debian package iputils-arping)")
		}
		if got := arping(t, b, vip4, 2*time.Second); !bytes.Equal(got, a.mac) {
			t.Errorf("arping %s: answered by %v, want %v", vip4, got, a.mac)
		}
	})

	t.Run("ndisc6", func(t *testing.T) {
		if ndisc6Err != nil {
			t.Skip("skipped: ndisc6 is not installed (Debian package ndisc6)")
		}
		// Control: the tool works in this lab, for the address a's kernel
		// answers for.
		if got, out := ndisc6(t, b, a.v6.Addr(), netip.Addr{}, 2); !bytes.Equal(got, a.mac) {
			t.Fatalf("ndisc6 %s (a's own address, answered by its kernel): got %v, want %v\n%s", a.v6.Addr(), got, a.mac, out)
		}
		// From the link-local address the kernel picks, and from a global
		// one (then the answer goes to that address).
		for _, src := range []netip.Addr{{}, b.v6.Addr()} {
			from := "the kernel's choice"
			if src.IsValid() {
				from = src.String()
			}
			if got, out := ndisc6(t, b, vip6, src, 2); !bytes.Equal(got, a.mac) {
				t.Errorf("ndisc6 %s from %s: got %v (none: no answer it accepted), want %v\n%s", vip6, from, got, a.mac, out)
			}
		}
	})
}
