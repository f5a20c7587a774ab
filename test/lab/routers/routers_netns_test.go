package routers

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test below needs root, iproute2, FRR (zebra, bfdd, bgpd, vtysh) and
// BIRD 2 (bird, birdc); it skips without them. Everything it creates is a
// network namespace named prt-<pid>-*, with addresses from 198.18.0.0/15
// and 2001:db8::/32 inside it; nothing is added to the root namespace.
// Namespaces left by an earlier run that died (their pid is gone) are
// removed first, with whatever still runs in them.
const nsPrefix = "prt-"

func requireNetnsLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("short mode: this test starts FRR and BIRD in network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: it creates network namespaces and runs FRR and BIRD in them")
	}
	var missing []string
	for _, p := range []string{"ip", "vtysh", "bird", "birdc"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, d := range frrDaemons {
		if _, err := os.Stat(filepath.Join(DefaultFRRBinDir, d)); err != nil {
			missing = append(missing, filepath.Join(DefaultFRRBinDir, d))
		}
	}
	if len(missing) > 0 {
		t.Skipf("missing %s (Debian: apt-get install frr bird2 iproute2)", strings.Join(missing, ", "))
	}
}

func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// removeNamespace kills the processes left in ns, by pid, and deletes it.
func removeNamespace(ns string) {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_ = exec.Command("ip", "netns", "delete", ns).Run()
}

// removeLeftovers deletes prt-<pid>-* namespaces whose test process is
// gone. Those of a live process belong to a test running beside this one.
func removeLeftovers(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		pidText, _, _ := strings.Cut(strings.TrimPrefix(f[0], nsPrefix), "-")
		if pid, err := strconv.Atoi(pidText); err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == nil {
			continue
		}
		t.Logf("removing leftover namespace %s", f[0])
		removeNamespace(f[0])
	}
}

// addNamespace creates a namespace, removed at the end of the test. DAD is
// off in it so that addresses, link-local ones included, are usable at
// once: FRR uses the peer's link-local address as the IPv6 next hop.
func addNamespace(t *testing.T, name string) string {
	ns := fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), name)
	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() { removeNamespace(ns) })
	for _, k := range []string{"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"} {
		if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", k).CombinedOutput(); err != nil {
			t.Fatalf("sysctl %s in %s: %v: %s", k, ns, err, out)
		}
	}
	ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	return ns
}

// veth joins two namespaces with a veth pair and addresses both ends. It is
// created in the namespaces directly: it never exists in the root one.
func veth(t *testing.T, nsA, ifA, a4, a6, nsB, ifB, b4, b6 string) {
	t.Helper()
	ipCmd(t, "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	for _, e := range [][3]string{{nsA, ifA, a4}, {nsA, ifA, a6}, {nsB, ifB, b4}, {nsB, ifB, b6}} {
		ipCmd(t, "-n", e[0], "addr", "add", e[2], "dev", e[1], "nodad")
	}
	ipCmd(t, "-n", nsA, "link", "set", ifA, "up")
	ipCmd(t, "-n", nsB, "link", "set", ifB, "up")
}

// workDir makes the routers' parent directory, removed at the end. It is
// 0755 because the FRR daemons run as user frr.
func workDir(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "prt-routers-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// ROUTERS_KEEP=1 keeps configurations and logs for a look.
		if os.Getenv("ROUTERS_KEEP") != "" {
			t.Logf("kept %s", base)
			return
		}
		_ = os.RemoveAll(base)
	})
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	return base
}

// eventually polls f until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dumpLogs shows the routers' logs when the test failed.
func dumpLogs(t *testing.T, dirs ...string) {
	if !t.Failed() {
		return
	}
	for _, d := range dirs {
		for _, pat := range []string{"*.log", "*.out", "*.conf"} {
			files, _ := filepath.Glob(filepath.Join(d, pat))
			for _, f := range files {
				b, _ := os.ReadFile(f)
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("=== %s\n%s", f, b)
			}
		}
	}
}

// TestFRRAndBIRD peers FRR and BIRD over a veth (eBGP, MD5, BFD, IPv4 and
// IPv6 over one IPv4 session), checks each side's view of the other's
// routes, then freezes BIRD so that only BFD can notice, and crashes it.
func TestFRRAndBIRD(t *testing.T) {
	requireNetnsLab(t)
	removeLeftovers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	frrNS := addNamespace(t, "frr")
	birdNS := addNamespace(t, "bird")
	veth(t, frrNS, "prt-f", "198.18.0.1/30", "2001:db8:0:1::1/64", birdNS, "prt-b", "198.18.0.2/30", "2001:db8:0:1::2/64")
	base := workDir(t)
	frrDir, birdDir := filepath.Join(base, "frr"), filepath.Join(base, "bird")
	t.Cleanup(func() { dumpLogs(t, frrDir, birdDir) })

	var (
		frrAddr  = netip.MustParseAddr("198.18.0.1")
		birdAddr = netip.MustParseAddr("198.18.0.2")
		birdV6   = netip.MustParseAddr("2001:db8:0:1::2")
		frrV6    = netip.MustParseAddr("2001:db8:0:1::1")
		birdPfx4 = netip.MustParsePrefix("198.18.100.1/32")
		birdPfx6 = netip.MustParsePrefix("2001:db8:100::1/128")
		frrPfx4  = netip.MustParsePrefix("198.18.50.0/24")
		frrPfx6  = netip.MustParsePrefix("2001:db8:50::/48")
	)
	const password = "prt-secret"

	start := time.Now()
	frr, err := StartFRR(ctx, FRRConfig{
		Namespace: frrNS,
		Dir:       frrDir,
		RouterID:  frrAddr,
		ASN:       64512,
		Neighbors: []FRRNeighbor{{
			Address:   birdAddr,
			RemoteASN: 64513,
			Password:  password,
			BFD:       &BFDTimers{ReceiveMs: 300, TransmitMs: 300, Multiplier: 3},
		}},
		Networks: []netip.Prefix{frrPfx4, frrPfx6},
	})
	if frr != nil {
		t.Cleanup(func() { _ = frr.Stop() })
	}
	if err != nil {
		t.Fatal(err)
	}
	bird, err := StartBIRD(ctx, BIRDConfig{
		Namespace: birdNS,
		Dir:       birdDir,
		RouterID:  birdAddr,
		ASN:       64513,
		Neighbors: []BIRDNeighbor{{Address: frrAddr, RemoteASN: 64512, Password: password, BFD: true}},
		Static: []BIRDStatic{
			{Prefix: birdPfx4, Communities: []string{"64513:100"}, LargeCommunities: []string{"64513:1:2"}},
			{Prefix: birdPfx6, Communities: []string{"64513:100"}},
		},
	})
	if bird != nil {
		t.Cleanup(func() { _ = bird.Stop() })
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FRR and BIRD started in %v", time.Since(start).Round(time.Millisecond))

	// FRR's BGP table: both routes, BIRD as the next hop; for IPv6 (over
	// the IPv4 session) BIRD's global address on the link.
	birdRoutesInFRR := func() error {
		r4, err := frr.Routes(ctx, IPv4)
		if err != nil {
			return err
		}
		r6, err := frr.Routes(ctx, IPv6)
		if err != nil {
			return err
		}
		if got := r4[birdPfx4]; !slices.Equal(got, []netip.Addr{birdAddr}) {
			return fmt.Errorf("FRR: %v via %v, want via %v", birdPfx4, got, birdAddr)
		}
		if got := r6[birdPfx6]; !slices.Equal(got, []netip.Addr{birdV6}) {
			return fmt.Errorf("FRR: %v via %v, want via %v", birdPfx6, got, birdV6)
		}
		return nil
	}
	// Both sides connect: a collision can cost a few seconds on a busy
	// machine.
	eventually(t, 20*time.Second, "BIRD's routes in FRR", birdRoutesInFRR)
	t.Logf("routes in FRR %v after start", time.Since(start).Round(time.Millisecond))

	bfdUp := func() error {
		peers, err := frr.BFDPeers(ctx)
		if err != nil {
			return err
		}
		if p := peers[birdAddr]; p.Status != "up" || p.ReceiveInterval != 300 || p.TransmitInterval != 300 || p.DetectMultiplier != 3 ||
			p.RemoteReceiveInterval != 300 || p.RemoteTransmitInterval != 300 || p.RemoteDetectMultiplier != 3 {
			return fmt.Errorf("BFD peer %v: %+v", birdAddr, p)
		}
		return nil
	}
	eventually(t, 5*time.Second, "BFD up", bfdUp)
	nbs, err := frr.Neighbors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := nbs[birdAddr]; n.State != "Established" || n.PrefixesReceived[IPv4] != 1 || n.PrefixesReceived[IPv6] != 1 || n.BFDStatus != "Up" {
		t.Errorf("neighbor %v: %+v", birdAddr, n)
	}

	for _, pfx := range []netip.Prefix{birdPfx4, birdPfx6} {
		paths, err := frr.RouteAttrs(ctx, pfx)
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) != 1 || !paths[0].Best || !slices.Contains(paths[0].Communities, "64513:100") || paths[0].ASPath != "64513" || paths[0].PeerID != birdAddr.String() {
			t.Errorf("FRR's paths to %v: %+v", pfx, paths)
		}
		if pfx == birdPfx4 && !slices.Equal(paths[0].LargeCommunities, []string{"64513:1:2"}) {
			t.Errorf("large communities of %v: %v", pfx, paths[0].LargeCommunities)
		}
		if paths[0].LocalPref != nil {
			t.Errorf("eBGP path to %v has a LOCAL_PREF %d", pfx, *paths[0].LocalPref)
		}
	}
	if paths, err := frr.RouteAttrs(ctx, netip.MustParsePrefix("198.18.99.0/24")); err != nil || len(paths) != 0 {
		t.Errorf("RouteAttrs of an unknown prefix: %+v, %v", paths, err)
	}

	// zebra installed both in the kernel of FRR's namespace.
	fib4, err := frr.FIBRoutes(ctx, IPv4)
	if err != nil {
		t.Fatal(err)
	}
	if got := fib4[birdPfx4]; !slices.Equal(got, []netip.Addr{birdAddr}) {
		t.Errorf("FRR's FIB: %v via %v, want via %v", birdPfx4, got, birdAddr)
	}
	fib6, err := frr.FIBRoutes(ctx, IPv6)
	if err != nil {
		t.Fatal(err)
	}
	if got := fib6[birdPfx6]; len(got) != 1 || !got[0].IsLinkLocalUnicast() {
		t.Errorf("FRR's FIB: %v via %v, want via BIRD's link-local address", birdPfx6, got)
	}
	if out := ipCmd(t, "-n", frrNS, "route", "show", birdPfx4.String()); !strings.Contains(out, "via 198.18.0.2 dev prt-f proto bgp") {
		t.Errorf("kernel route to %v in %s: %q", birdPfx4, frrNS, out)
	}
	if out := ipCmd(t, "-n", frrNS, "-6", "route", "show", birdPfx6.String()); !strings.Contains(out, "dev prt-f proto bgp") {
		t.Errorf("kernel route to %v in %s: %q", birdPfx6, frrNS, out)
	}

	// BIRD's view of FRR's networks, and its kernel.
	eventually(t, 5*time.Second, "FRR's routes in BIRD", func() error {
		r, err := bird.Routes(ctx)
		if err != nil {
			return err
		}
		if got := r[frrPfx4]; !slices.Equal(got, []netip.Addr{frrAddr}) {
			return fmt.Errorf("BIRD: %v via %v, want via %v", frrPfx4, got, frrAddr)
		}
		if got := r[frrPfx6]; !slices.Equal(got, []netip.Addr{frrV6}) {
			return fmt.Errorf("BIRD: %v via %v, want via %v", frrPfx6, got, frrV6)
		}
		if _, ok := r[birdPfx4]; ok {
			return fmt.Errorf("BIRD's static %v listed as a BGP route", birdPfx4)
		}
		return nil
	})
	details, err := bird.RouteDetails(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range details {
		if r.Prefix == birdPfx4 && (r.Type != "static univ" || r.Kind != "blackhole" || !r.Primary || !slices.Equal(r.Communities, []string{"64513:100"}) || !slices.Equal(r.LargeCommunities, []string{"64513:1:2"})) {
			t.Errorf("BIRD's static route: %+v", r)
		}
		if r.Prefix == frrPfx4 && (r.Protocol != "n0" || r.ASPath != "64512" || !slices.Equal(r.Interfaces, []string{"prt-b"})) {
			t.Errorf("BIRD's route from FRR: %+v", r)
		}
	}
	if out := ipCmd(t, "-n", birdNS, "route", "show", frrPfx4.String()); !strings.Contains(out, "via 198.18.0.1 dev prt-b proto bird") {
		t.Errorf("kernel route to %v in %s: %q", frrPfx4, birdNS, out)
	}
	protos, err := bird.Protocols(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := protos["n0"]; p.Proto != "BGP" || p.Info != "Established" {
		t.Errorf("BIRD's session: %+v", p)
	}
	if _, err := bird.Birdc(ctx, "show", "protocols", "all", "nosuch"); err == nil {
		t.Error("birdc about a protocol that does not exist: no error")
	}

	// A frozen BIRD keeps its TCP session open: FRR withdraws its routes
	// only because BFD (300 ms × 3) declares it down, within about 1.5 s
	// (900 ms to detect, then bfdd → zebra → bgpd → zebra). With both
	// cores busy that took up to 1.6 s, so the bound is on the best of up
	// to three freezes; each must end within 5 s, which the hold timer
	// (180 s) could never do.
	goneFromFRR := func() error {
		r4, err := frr.Routes(ctx, IPv4)
		if err != nil {
			return err
		}
		r6, err := frr.Routes(ctx, IPv6)
		if err != nil {
			return err
		}
		if nh, ok := r4[birdPfx4]; ok {
			return fmt.Errorf("%v still via %v", birdPfx4, nh)
		}
		if nh, ok := r6[birdPfx6]; ok {
			return fmt.Errorf("%v still via %v", birdPfx6, nh)
		}
		return nil
	}
	const bfdBound = 1500 * time.Millisecond
	var best time.Duration
	for attempt := 1; attempt <= 3; attempt++ {
		if attempt > 1 {
			if err := bird.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			eventually(t, 20*time.Second, "BIRD's routes back in FRR", birdRoutesInFRR)
			eventually(t, 5*time.Second, "BFD up again", bfdUp)
		}
		if err := bird.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		eventually(t, 5*time.Second, "withdrawal after BIRD froze", goneFromFRR)
		took := time.Since(stopped)
		t.Logf("BIRD frozen: FRR withdrew its routes in %v", took.Round(time.Millisecond))
		if best == 0 || took < best {
			best = took
		}
		if best <= bfdBound {
			break
		}
	}
	if best > bfdBound {
		t.Errorf("FRR withdrew BIRD's routes in %v at best, want within %v of BIRD freezing", best, bfdBound)
	}
	nbs, err = frr.Neighbors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := nbs[birdAddr]; n.State == "Established" || n.LastNotificationReason != "Cease/BFD Down" {
		t.Errorf("neighbor after BFD down: %+v", n)
	}
	peers, err := frr.BFDPeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := peers[birdAddr]; p.Status != "down" || p.Diagnostic != "control detection time expired" {
		t.Errorf("BFD peer after BIRD froze: %+v", p)
	}
	eventually(t, time.Second, "kernel route removed", func() error {
		if out := ipCmd(t, "-n", frrNS, "route", "show", birdPfx4.String()); out != "" {
			return fmt.Errorf("kernel route to %v in %s: %q", birdPfx4, frrNS, out)
		}
		return nil
	})

	// Thawed, BIRD comes back (its error wait is 1 s in the lab).
	if err := bird.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	thawed := time.Now()
	eventually(t, 10*time.Second, "BIRD's routes back in FRR", birdRoutesInFRR)
	t.Logf("BIRD thawed: routes back in %v", time.Since(thawed).Round(time.Millisecond))

	// A bgpd crash and restart: the session comes back on its own.
	if err := frr.RestartBGPD(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	eventually(t, 10*time.Second, "BIRD's routes in FRR after a bgpd restart", birdRoutesInFRR)
	t.Logf("bgpd restarted: routes back in %v", time.Since(restarted).Round(time.Millisecond))
	eventually(t, 5*time.Second, "BFD up after the bgpd restart", bfdUp)

	// A crashed BIRD: the kernel closes its sockets, FRR withdraws.
	if err := bird.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	eventually(t, 1500*time.Millisecond, "withdrawal after BIRD was killed", goneFromFRR)
	t.Logf("BIRD killed: FRR withdrew its routes in %v", time.Since(killed).Round(time.Millisecond))

	if err := frr.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := frr.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(frrDir, "zserv.api")); !os.IsNotExist(err) {
		t.Errorf("zserv.api after Stop: %v", err)
	}
	if err := bird.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// TestFRRECMP has two BIRD routers in different ASes announce the same
// prefixes to FRR: with maximum-paths and as-path multipath-relax, FRR
// selects both paths and zebra installs a two-way ECMP route. When one
// router dies, one next hop remains.
func TestFRRECMP(t *testing.T) {
	requireNetnsLab(t)
	removeLeftovers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	frrNS := addNamespace(t, "ecmp")
	aNS := addNamespace(t, "ecmp-a")
	bNS := addNamespace(t, "ecmp-b")
	veth(t, frrNS, "prt-a", "198.18.0.1/30", "2001:db8:0:1::1/64", aNS, "prt-f", "198.18.0.2/30", "2001:db8:0:1::2/64")
	veth(t, frrNS, "prt-b", "198.18.0.5/30", "2001:db8:0:2::1/64", bNS, "prt-f", "198.18.0.6/30", "2001:db8:0:2::2/64")
	base := workDir(t)
	t.Cleanup(func() { dumpLogs(t, filepath.Join(base, "frr"), filepath.Join(base, "a"), filepath.Join(base, "b")) })

	var (
		a4, a6 = netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("2001:db8:0:1::2")
		b4, b6 = netip.MustParseAddr("198.18.0.6"), netip.MustParseAddr("2001:db8:0:2::2")
		pfx4   = netip.MustParsePrefix("198.18.100.1/32")
		pfx6   = netip.MustParsePrefix("2001:db8:100::1/128")
	)
	frr, err := StartFRR(ctx, FRRConfig{
		Namespace: frrNS,
		Dir:       filepath.Join(base, "frr"),
		RouterID:  netip.MustParseAddr("198.18.0.1"),
		ASN:       64512,
		Neighbors: []FRRNeighbor{{Address: a4, RemoteASN: 64513}, {Address: b4, RemoteASN: 64514}},
	})
	if frr != nil {
		t.Cleanup(func() { _ = frr.Stop() })
	}
	if err != nil {
		t.Fatal(err)
	}
	var birds []*BIRD
	for i, r := range []struct {
		ns, name string
		addr     netip.Addr
		peer     string
		asn      uint32
	}{{aNS, "a", a4, "198.18.0.1", 64513}, {bNS, "b", b4, "198.18.0.5", 64514}} {
		bird, err := StartBIRD(ctx, BIRDConfig{
			Namespace: r.ns,
			Dir:       filepath.Join(base, r.name),
			RouterID:  r.addr,
			ASN:       r.asn,
			Neighbors: []BIRDNeighbor{{Address: netip.MustParseAddr(r.peer), RemoteASN: 64512}},
			Static:    []BIRDStatic{{Prefix: pfx4}, {Prefix: pfx6}},
		})
		if bird != nil {
			t.Cleanup(func() { _ = bird.Stop() })
		}
		if err != nil {
			t.Fatalf("BIRD %d: %v", i, err)
		}
		birds = append(birds, bird)
	}

	want := func(want4, want6 []netip.Addr) func() error {
		return func() error {
			r4, err := frr.Routes(ctx, IPv4)
			if err != nil {
				return err
			}
			r6, err := frr.Routes(ctx, IPv6)
			if err != nil {
				return err
			}
			if !slices.Equal(r4[pfx4], want4) || !slices.Equal(r6[pfx6], want6) {
				return fmt.Errorf("FRR: %v via %v, %v via %v; want %v and %v", pfx4, r4[pfx4], pfx6, r6[pfx6], want4, want6)
			}
			return nil
		}
	}
	eventually(t, 15*time.Second, "ECMP routes in FRR", want([]netip.Addr{a4, b4}, []netip.Addr{a6, b6}))

	paths, err := frr.Paths(ctx, IPv4)
	if err != nil {
		t.Fatal(err)
	}
	// FRR 8.4 flags the best path bestpath and the other members of the
	// ECMP set multipath.
	best, multi := 0, 0
	for _, p := range paths[pfx4] {
		if p.Best {
			best++
		}
		if p.Multipath {
			multi++
		}
	}
	if len(paths[pfx4]) != 2 || best != 1 || multi != 1 {
		t.Errorf("paths to %v: %+v", pfx4, paths[pfx4])
	}
	eventually(t, 2*time.Second, "ECMP routes in the kernel", func() error {
		fib4, err := frr.FIBRoutes(ctx, IPv4)
		if err != nil {
			return err
		}
		fib6, err := frr.FIBRoutes(ctx, IPv6)
		if err != nil {
			return err
		}
		if !slices.Equal(fib4[pfx4], []netip.Addr{a4, b4}) || len(fib6[pfx6]) != 2 {
			return fmt.Errorf("FRR's FIB: %v via %v, %v via %v", pfx4, fib4[pfx4], pfx6, fib6[pfx6])
		}
		out := ipCmd(t, "-n", frrNS, "route", "show", pfx4.String())
		if !strings.Contains(out, "nexthop via 198.18.0.2 dev prt-a") || !strings.Contains(out, "nexthop via 198.18.0.6 dev prt-b") {
			return fmt.Errorf("kernel route to %v: %q", pfx4, out)
		}
		return nil
	})

	if err := birds[0].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "one path left after BIRD a died", want([]netip.Addr{b4}, []netip.Addr{b6}))
	eventually(t, 2*time.Second, "one next hop left in the kernel", func() error {
		if out := ipCmd(t, "-n", frrNS, "route", "show", pfx4.String()); !strings.Contains(out, "via 198.18.0.6 dev prt-b proto bgp") || strings.Contains(out, "198.18.0.2") {
			return fmt.Errorf("kernel route to %v: %q", pfx4, out)
		}
		return nil
	})
}
