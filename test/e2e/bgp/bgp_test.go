//go:build e2e

// Package bgp runs Pharos's BGP in a lab of its own, with real routers:
// FRR (zebra, bfdd, bgpd) in the router namespace and BIRD behind it.
package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
	"github.com/pharos-lb/pharos/test/lab/probe"
	"github.com/pharos-lb/pharos/test/lab/routers"
)

var lab *cluster.Lab

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	os.Exit(cluster.RunSuite(m, root, cluster.SuiteOptions{Name: "e2e-bgp", Prefix: "pbgp",
		Out: filepath.Join(root, "_output", "e2e-bgp")}, &lab))
}

// The BGP tests peer the lab's nodes with a real FRR (zebra, bfdd, bgpd) in
// the router namespace, iBGP in AS 64512, and judge from FRR's own JSON
// and kernel FIB, and from the remote client, which reaches the Service
// through the router. The pool lies outside the LAN, so only BGP routes
// lead to it.
const (
	bgpASN    = 64512
	bgpPoolV4 = "198.18.150.0/24"
	bgpPoolV6 = "2001:db8:150::/120"
)

func bgpManifest(router string) string {
	return fmt.Sprintf(`apiVersion: pharos.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
spec: {receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}
---
apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata: {name: router}
spec: {myASN: %[1]d, peerASN: %[1]d, peerAddress: %[2]q, bfdProfile: fast, enableGracefulRestart: true, holdTime: 9s, connectTime: 2s}
---
apiVersion: pharos.io/v1beta1
kind: Community
metadata: {name: aliases}
spec:
  communities: [{name: tenant, value: "65000:100"}]
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp}
spec: {addresses: [%[3]q, %[4]q], autoAssign: false}
---
apiVersion: pharos.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp}
spec:
  ipAddressPools: [bgp]
  localPref: 200
  communities: [tenant, "large:64512:1:2"]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: bgp-web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {run: bgp-web}}
  template:
    metadata: {labels: {run: bgp-web}}
    spec:
      containers:
      - {name: bgp-web, image: echo, ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: bgp-web, namespace: default, annotations: {pharos.io/address-pool: bgp}}
spec:
  type: LoadBalancer
  ipFamilyPolicy: PreferDualStack
  ipFamilies: [IPv4, IPv6]
  selector: {run: bgp-web}
  ports: [{port: 80, protocol: TCP}]
`, bgpASN, lab.Router.V4, bgpPoolV4, bgpPoolV6)
}

// startFRR runs FRR in the router namespace, peering with every node.
func startFRR(t *testing.T) *routers.FRR {
	t.Helper()
	dir := filepath.Join(lab.Dir, "frr")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := routers.FRRConfig{Namespace: lab.Router.Name, Dir: dir, RouterID: lab.Router.V4, ASN: bgpASN, Forwarding: true}
	for _, n := range lab.Nodes {
		cfg.Neighbors = append(cfg.Neighbors, routers.FRRNeighbor{Address: n.V4, RemoteASN: bgpASN, BFD: &routers.BFDTimers{}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	frr, err := routers.StartFRR(ctx, cfg)
	if err != nil {
		if frr != nil {
			_ = frr.Stop()
		}
		t.Fatalf("starting FRR in %s: %v", lab.Router.Name, err)
	}
	t.Cleanup(func() { _ = frr.Stop() })
	return frr
}

func nodeV4(name string) netip.Addr {
	for _, n := range lab.Nodes {
		if n.Name == name {
			return n.V4
		}
	}
	return netip.Addr{}
}

// sortedAddrs renders next hops for comparison.
func sortedAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

// waitFIB waits until FRR's kernel FIB routes prefix over exactly want.
func waitFIB(t *testing.T, frr *routers.FRR, fam routers.Family, prefix netip.Prefix, want []netip.Addr, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	cluster.Eventually(t, timeout, func() error {
		fib, err := frr.FIBRoutes(context.Background(), fam)
		if err != nil {
			return err
		}
		if got := sortedAddrs(fib[prefix]); got != sortedAddrs(want) {
			return fmt.Errorf("FRR's FIB routes %s via %q, want %q", prefix, got, sortedAddrs(want))
		}
		return nil
	})
	return time.Since(start)
}

// podNodes returns the nodes running a Ready pod of the label.
func podNodes(t *testing.T, label string) []string {
	out := lab.MustKubectl(t, "get", "pods", "-l", label, "-o", `jsonpath={range .items[*]}{.spec.nodeName} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	var nodes []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "True" && !slices.Contains(nodes, f[0]) {
			nodes = append(nodes, f[0])
		}
	}
	sort.Strings(nodes)
	return nodes
}

// TestBGPAdvertisesToFRR: every node advertises the Service's addresses to
// a real FRR with itself as next hop; FRR installs an ECMP route over all
// of them in its kernel; the attributes (communities, large communities,
// localPref) are FRR's to see; the remote client reaches the Service
// through the router in both families; the status object shows the
// sessions; with Local policy only the endpoints' nodes stay next hops; a
// crashed node is withdrawn by BFD.
func TestBGPAdvertisesToFRR(t *testing.T) {
	frr := startFRR(t)
	ctx := context.Background()
	if err := lab.Apply(ctx, bgpManifest(lab.Router.V4.String())); err != nil {
		t.Fatal(err)
	}
	var ingress []string
	cluster.Eventually(t, 60*time.Second, func() error {
		ingress = strings.Fields(lab.MustKubectl(t, "get", "svc", "bgp-web", "-o", `jsonpath={.status.loadBalancer.ingress[*].ip}`))
		if len(ingress) != 2 {
			return fmt.Errorf("ingress %v, want one address per family", ingress)
		}
		return nil
	})
	v4, v6 := netip.MustParseAddr(ingress[0]), netip.MustParseAddr(ingress[1])
	p4, p6 := netip.PrefixFrom(v4, 32), netip.PrefixFrom(v6, 128)
	var all4, all6 []netip.Addr
	for _, n := range lab.Nodes {
		all4, all6 = append(all4, n.V4), append(all6, n.V6)
	}

	// Sessions up, from FRR's side.
	cluster.Eventually(t, 60*time.Second, func() error {
		ns, err := frr.Neighbors(ctx)
		if err != nil {
			return err
		}
		for _, n := range lab.Nodes {
			if ns[n.V4].State != "Established" {
				return fmt.Errorf("FRR's session with %s (%s) is %q", n.Name, n.V4, ns[n.V4].State)
			}
		}
		return nil
	})
	// ECMP over every node, in FRR's kernel FIB, both families (IPv6 over
	// the IPv4 sessions, next hop the node's IPv6 address).
	waitFIB(t, frr, routers.IPv4, p4, all4, 30*time.Second)
	waitFIB(t, frr, routers.IPv6, p6, all6, 30*time.Second)

	attrs, err := frr.RouteAttrs(ctx, p4)
	if err != nil || len(attrs) == 0 {
		t.Fatalf("route attributes of %s: %v %v", p4, attrs, err)
	}
	a := attrs[0]
	if !slices.Contains(a.Communities, "65000:100") || !slices.Contains(a.LargeCommunities, "64512:1:2") || a.LocalPref == nil || *a.LocalPref != 200 {
		t.Errorf("FRR sees %s with communities %v, large %v, localPref %v; want 65000:100, 64512:1:2 and 200", p4, a.Communities, a.LargeCommunities, a.LocalPref)
	}

	// BFD up for every node.
	cluster.Eventually(t, 30*time.Second, func() error {
		peers, err := frr.BFDPeers(ctx)
		if err != nil {
			return err
		}
		for _, n := range lab.Nodes {
			if peers[n.V4].Status != "up" {
				return fmt.Errorf("FRR's BFD session with %s is %q", n.Name, peers[n.V4].Status)
			}
		}
		return nil
	})

	// The remote client, behind the router, reaches the Service.
	for _, ip := range ingress {
		cluster.Eventually(t, 30*time.Second, func() error {
			body, err := lab.HTTPGet(ctx, lab.Remote.Name, "http://"+net.JoinHostPort(ip, "80")+"/")
			if err != nil {
				return err
			}
			if !strings.Contains(body, "pod=bgp-web-") {
				return fmt.Errorf("the remote client got %q from %s", body, ip)
			}
			return nil
		})
	}

	// Each node's status object shows its session, established, with
	// prefixes sent; the Service's condition says BGP.
	cluster.Eventually(t, 20*time.Second, func() error {
		out := lab.MustKubectl(t, "get", "bgpnodestatuses", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.established} {.status.sessions[0].state} {.status.sessions[0].bfdState} {.status.sessions[0].prefixesSent}{"\n"}{end}`)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(lab.Nodes) {
			return fmt.Errorf("BGPNodeStatuses:\n%s", out)
		}
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) != 5 || f[1] != "1/1" || f[2] != "Established" || f[3] != "Up" || f[4] == "0" {
				return fmt.Errorf("BGPNodeStatus %q, want 1/1 Established, BFD Up, prefixes sent", l)
			}
		}
		return nil
	})
	cond := lab.MustKubectl(t, "get", "svc", "bgp-web", "-o", `jsonpath={.status.conditions[?(@.type=="pharos.io/Announced")].message}`)
	if !strings.Contains(cond, "by BGP from node") || !strings.Contains(cond, "to peer router") {
		t.Errorf("Announced condition %q does not name the BGP nodes and peer", cond)
	}

	// Local policy: only the nodes with a ready endpoint are next hops.
	lab.MustKubectl(t, "patch", "svc", "bgp-web", "-p", `{"spec":{"externalTrafficPolicy":"Local"}}`)
	var want []netip.Addr
	for _, n := range podNodes(t, "run=bgp-web") {
		want = append(want, nodeV4(n))
	}
	if len(want) == 0 || len(want) == len(lab.Nodes) {
		t.Logf("the pods run on %v: Local cannot be told from Cluster here", want)
	}
	waitFIB(t, frr, routers.IPv4, p4, want, 20*time.Second)
	lab.MustKubectl(t, "patch", "svc", "bgp-web", "-p", `{"spec":{"externalTrafficPolicy":"Cluster"}}`)
	waitFIB(t, frr, routers.IPv4, p4, all4, 20*time.Second)

	// A node without pods crashes: BFD withdraws it at FRR well before
	// the 9 s hold time.
	victim := ""
	pods := podNodes(t, "run=bgp-web")
	for _, n := range lab.Nodes {
		if !slices.Contains(pods, n.Name) {
			victim = n.Name
		}
	}
	if victim == "" {
		victim = lab.Nodes[0].Name
	}
	var rest []netip.Addr
	for _, n := range lab.Nodes {
		if n.Name != victim {
			rest = append(rest, n.V4)
		}
	}
	if err := lab.CrashNode(victim); err != nil {
		t.Fatal(err)
	}
	took := waitFIB(t, frr, routers.IPv4, p4, rest, 5*time.Second)
	t.Logf("crash of %s: FRR withdrew its next hop after %s (BFD 300 ms x 3)", victim, took)
	if took > 2*time.Second {
		t.Errorf("withdrawal took %s, want BFD's ~1 s", took)
	}
	if err := lab.RecoverNode(ctx, victim); err != nil {
		t.Fatal(err)
	}
	waitFIB(t, frr, routers.IPv4, p4, all4, 60*time.Second)
}

const birdASN = 64514

// TestBGPBIRDMultihopPeersPasswordASNAndGracefulRestart: a second router,
// BIRD, sits behind the FRR router (eBGP multihop, AS 64514); an
// advertisement that names only BIRD in spec.peers reaches BIRD and never
// FRR; the FRR session uses a TCP MD5 password, and a wrong password or a
// wrong ASN shows in each node's BGPNodeStatus with the reason; a speaker
// restart with graceful restart keeps the node's route at FRR and fails no
// request of a client loop through the router.
func TestBGPBIRDMultihopPeersPasswordASNAndGracefulRestart(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(lab.Dir, "frr2")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := routers.FRRConfig{Namespace: lab.Router.Name, Dir: dir, RouterID: lab.Router.V4, ASN: bgpASN, Forwarding: true}
	for _, n := range lab.Nodes {
		cfg.Neighbors = append(cfg.Neighbors, routers.FRRNeighbor{Address: n.V4, RemoteASN: bgpASN, Password: "s3cret-md5", BFD: &routers.BFDTimers{}})
	}
	frr, err := routers.StartFRR(ctx, cfg)
	if err != nil {
		_ = frr.Stop()
		t.Fatal(err)
	}
	defer frr.Stop()
	birdDir := filepath.Join(lab.Dir, "bird")
	if err := os.MkdirAll(birdDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bcfg := routers.BIRDConfig{Namespace: lab.Remote.Name, Dir: birdDir, RouterID: lab.Remote.V4, ASN: birdASN, NoKernel: true}
	for i, n := range lab.Nodes {
		bcfg.Neighbors = append(bcfg.Neighbors, routers.BIRDNeighbor{Name: fmt.Sprintf("n%d", i+1), Address: n.V4, RemoteASN: bgpASN, Multihop: 2})
	}
	bird, err := routers.StartBIRD(ctx, bcfg)
	if err != nil {
		_ = bird.Stop()
		t.Fatal(err)
	}
	defer bird.Stop()

	manifest := fmt.Sprintf(`apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata: {name: router}
spec: {myASN: %[1]d, peerASN: %[1]d, peerAddress: %[2]q, password: s3cret-md5, enableGracefulRestart: true, holdTime: 9s, connectTime: 2s}
---
apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata: {name: bird}
spec: {myASN: %[1]d, peerASN: %[3]d, peerAddress: %[4]q, ebgpMultiHop: true, connectTime: 2s}
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: bird-only}
spec: {addresses: ["198.18.151.0/28"], autoAssign: false}
---
apiVersion: pharos.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bird-only}
spec: {ipAddressPools: [bird-only], peers: [bird]}
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: gr}
spec: {addresses: ["198.18.152.0/28"], autoAssign: false}
---
apiVersion: pharos.io/v1beta1
kind: BGPAdvertisement
metadata: {name: gr}
spec: {ipAddressPools: [gr], peers: [router]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gr-web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {run: gr-web}}
  template:
    metadata: {labels: {run: gr-web}}
    spec:
      containers:
      - {name: gr-web, image: echo, ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: gr-web, namespace: default, annotations: {pharos.io/address-pool: gr}}
spec:
  type: LoadBalancer
  selector: {run: gr-web}
  ports: [{port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: bird-web, namespace: default, annotations: {pharos.io/address-pool: bird-only}}
spec:
  type: LoadBalancer
  selector: {run: gr-web}
  ports: [{port: 80, protocol: TCP}]
`, bgpASN, lab.Router.V4, birdASN, lab.Remote.V4)
	if err := lab.Apply(ctx, manifest); err != nil {
		t.Fatal(err)
	}
	ipOf := func(svc string) netip.Addr {
		var ip netip.Addr
		cluster.Eventually(t, 60*time.Second, func() (err error) {
			s := strings.TrimSpace(lab.MustKubectl(t, "get", "svc", svc, "-o", `jsonpath={.status.loadBalancer.ingress[0].ip}`))
			ip, err = netip.ParseAddr(s)
			return err
		})
		return ip
	}
	grIP, birdIP := ipOf("gr-web"), ipOf("bird-web")
	grP, birdP := netip.PrefixFrom(grIP, 32), netip.PrefixFrom(birdIP, 32)
	var all4 []netip.Addr
	for _, n := range lab.Nodes {
		all4 = append(all4, n.V4)
	}

	// MD5 sessions up; the gr route at FRR over every node.
	waitFIB(t, frr, routers.IPv4, grP, all4, 60*time.Second)
	// BIRD (multihop, behind the router) gets the bird-only route from
	// every node, and not the route meant for FRR only; FRR never gets
	// the bird-only route.
	// Multihop routes resolve through the router, so the judge is each
	// route's BGP.next_hop attribute, one route per node's session.
	cluster.Eventually(t, 60*time.Second, func() error {
		rs, err := bird.RouteDetails(ctx)
		if err != nil {
			return err
		}
		var hops []netip.Addr
		for _, r := range rs {
			if r.Prefix == grP {
				return fmt.Errorf("BIRD got %s, which is advertised to FRR only", grP)
			}
			if r.Prefix != birdP {
				continue
			}
			if nh, err := netip.ParseAddr(strings.Fields(r.Attrs["BGP.next_hop"] + " x")[0]); err == nil {
				hops = append(hops, nh)
			}
		}
		if got := sortedAddrs(hops); got != sortedAddrs(all4) {
			return fmt.Errorf("BIRD has %s from next hops %q, want %q", birdP, got, sortedAddrs(all4))
		}
		return nil
	})
	if rs, err := frr.Routes(ctx, routers.IPv4); err != nil || len(rs[birdP]) != 0 {
		t.Errorf("FRR has %s (advertised to BIRD only): %v %v", birdP, rs[birdP], err)
	}

	// Graceful restart: a speaker restarts (SIGTERM, as a rolling update
	// does) while the remote client loops through the router.
	url := "http://" + grIP.String() + "/"
	cluster.Eventually(t, 30*time.Second, func() error {
		body, err := lab.HTTPGet(ctx, lab.Remote.Name, url)
		if err != nil {
			return fmt.Errorf("remote client: %w", err)
		}
		if !strings.Contains(body, "pod=gr-web-") {
			return fmt.Errorf("remote client got %q", body)
		}
		return nil
	})
	victim := lab.Nodes[0]
	p, err := lab.StartProbe(lab.Remote.Name, url, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := lab.Stop(victim.Name+"-speaker", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stale := false
	for range 10 { // the route stays at FRR while the speaker is away
		rs, err := frr.Routes(ctx, routers.IPv4)
		if err == nil && !slices.Contains(rs[grP], victim.V4) {
			t.Errorf("FRR dropped %s's route during its speaker's restart: %v", victim.Name, rs[grP])
			break
		}
		stale = true
		time.Sleep(100 * time.Millisecond)
	}
	if err := lab.Restart(victim.Name + "-speaker"); err != nil {
		t.Fatal(err)
	}
	waitFIB(t, frr, routers.IPv4, grP, all4, 60*time.Second)
	time.Sleep(2 * time.Second)
	attempts, err := probe.Parse(strings.NewReader(p.Stop()))
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, a := range attempts {
		if !a.OK {
			failed++
		}
	}
	t.Logf("graceful restart of %s's speaker: route kept at FRR: %v; %d of %d requests failed", victim.Name, stale, failed, len(attempts))
	if failed > 0 || len(attempts) < 50 {
		t.Errorf("%d of %d requests failed during a graceful speaker restart, want 0", failed, len(attempts))
	}

	statusHas := func(peer string, wants ...string) {
		t.Helper()
		cluster.Eventually(t, 60*time.Second, func() error {
			out := lab.MustKubectl(t, "get", "bgpnodestatuses", "-o", fmt.Sprintf(`jsonpath={range .items[*]}{.metadata.name}: {.status.sessions[?(@.peer==%q)].state} {.status.sessions[?(@.peer==%q)].lastError}{"\n"}{end}`, peer, peer))
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != len(lab.Nodes) {
				return fmt.Errorf("statuses:\n%s", out)
			}
			for _, l := range lines {
				found := false
				for _, w := range wants {
					found = found || strings.Contains(strings.ToLower(l), w)
				}
				if strings.Contains(l, "Established") || !found {
					return fmt.Errorf("status %q lacks any of %q", l, wants)
				}
			}
			return nil
		})
	}
	// A wrong ASN: GoBGP's reason (the router's OPEN carries another AS).
	lab.MustKubectl(t, "patch", "bgppeer", "router", "--type=merge", "-p", fmt.Sprintf(`{"spec":{"peerASN":%d}}`, bgpASN+100))
	statusHas("router", "peer as", "peer-as")
	cluster.Eventually(t, 20*time.Second, func() error {
		evs := lab.MustKubectl(t, "get", "events", "--field-selector", "involvedObject.kind=BGPPeer,involvedObject.name=router,reason=BGPSessionProblem", "-o", "jsonpath={.items[*].message}")
		if !strings.Contains(strings.ToLower(evs), "bad peer as") {
			return fmt.Errorf("no BGPSessionProblem event naming the bad peer AS on BGPPeer router: %q", evs)
		}
		return nil
	})
	lab.MustKubectl(t, "patch", "bgppeer", "router", "--type=merge", "-p", fmt.Sprintf(`{"spec":{"peerASN":%d}}`, bgpASN))
	waitFIB(t, frr, routers.IPv4, grP, all4, 60*time.Second)
	// A wrong password: the session drops and every node's status says
	// the router does not complete it; the right one brings it back.
	lab.MustKubectl(t, "patch", "bgppeer", "router", "--type=merge", "-p", `{"spec":{"password":"wrong"}}`)
	statusHas("router", "does not complete the session")
	lab.MustKubectl(t, "patch", "bgppeer", "router", "--type=merge", "-p", `{"spec":{"password":"s3cret-md5"}}`)
	waitFIB(t, frr, routers.IPv4, grP, all4, 60*time.Second)

	// The password was set, changed and failed: no log of a Pharos
	// process, no event and no status carries it.
	logs, err := filepath.Glob(filepath.Join(lab.LogDir(), "*"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range logs {
		base := filepath.Base(f)
		if base != "pharos-controller.log" && !strings.HasSuffix(base, "-speaker.log") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		if strings.Contains(string(data), "s3cret-md5") {
			t.Errorf("%s logs the BGP password", base)
		}
	}
	if checked < len(lab.Nodes)+1 {
		t.Errorf("read %d Pharos logs, want the controller's and %d speakers'", checked, len(lab.Nodes))
	}
	for _, what := range []string{"events", "bgpnodestatuses"} {
		if out := lab.MustKubectl(t, "get", what, "-A", "-o", "json"); strings.Contains(out, "s3cret-md5") {
			t.Errorf("the %s carry the BGP password", what)
		}
	}
}

// TestBGPAndLayer2Together: a pool selected by an L2Advertisement and a
// BGPAdvertisement is announced both ways: exactly one MAC answers ARP on
// the LAN, FRR routes the /32 over every node, and the condition names both.
func TestBGPAndLayer2Together(t *testing.T) {
	frr := startFRR(t)
	ctx := context.Background()
	if err := lab.Apply(ctx, cluster.DemoManifest+fmt.Sprintf(`---
apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata: {name: router}
spec: {myASN: %[1]d, peerASN: %[1]d, peerAddress: %[2]q, holdTime: 9s, connectTime: 2s}
---
apiVersion: pharos.io/v1beta1
kind: BGPAdvertisement
metadata: {name: demo}
spec: {ipAddressPools: [demo]}
`, bgpASN, lab.Router.V4)); err != nil {
		t.Fatal(err)
	}
	ips, err := lab.WaitDemoAnswers(ctx, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr(ips[0])
	var all4 []netip.Addr
	macs := map[string]bool{}
	for _, n := range lab.Nodes {
		all4 = append(all4, n.V4)
		out, err := lab.Exec(ctx, n.Name, "cat", "/sys/class/net/eth0/address")
		if err != nil {
			t.Fatal(err)
		}
		macs[strings.ToUpper(strings.TrimSpace(out))] = true
	}
	waitFIB(t, frr, routers.IPv4, netip.PrefixFrom(ip, 32), all4, 60*time.Second)
	cluster.Eventually(t, 10*time.Second, func() error {
		got, out := lab.LANMACs(ctx, ip.String())
		if len(got) != 1 {
			return fmt.Errorf("%d MACs answer ARP for %s, want one:\n%s", len(got), ip, out)
		}
		for m := range got {
			if !macs[m] {
				return fmt.Errorf("MAC %s is no node's", m)
			}
		}
		return nil
	})
	cluster.Eventually(t, 20*time.Second, func() error {
		cond := lab.MustKubectl(t, "get", "svc", "my-nginx", "-o", `jsonpath={.status.conditions[?(@.type=="pharos.io/Announced")].message}`)
		if !strings.Contains(cond, "(ARP)") || !strings.Contains(cond, "by BGP from node") {
			return fmt.Errorf("Announced condition %q, want both ARP and BGP", cond)
		}
		return nil
	})
}
