// Command bgp measures Pharos's BGP in the lab against a real FRR router
// (zebra, bfdd, bgpd in the router namespace), judged from FRR's own
// JSON and kernel FIB and from a client behind the router:
//
//   - bgp_bfd_withdraw_p50_ms, bgp_bfd_withdraw_p95_ms: a node that does not
//     hold the backends crashes (every process killed, links down); time
//     until FRR's kernel FIB no longer routes the Service's /32 through it
//     (BFD 300 ms x 3).
//   - bgp_failover_failed_requests_p95: failed requests of a client loop
//     (a new TCP connection every 20 ms, through the router, ECMP) per
//     crash, same trials.
//   - bgp_advertise_10000_s: with 10,000 Services allocated and served,
//     from applying the BGPAdvertisement to FRR holding 10,000 prefixes
//     from a node; bgp_frr_advertise_10000_s: the same 10,000 prefixes
//     originated by a second FRR (static networks) to the same router, from
//     its start, in the same run; bgp_advertise_ratio_to_frr is the first
//     over the second.
//   - speaker_rss_mib_bgp_10000: the largest speaker RSS (VmHWM) then.
//
// It needs root, like the lab.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pharos-lb/pharos/test/bench/figures"

	"github.com/pharos-lb/pharos/test/lab/cluster"
	"github.com/pharos-lb/pharos/test/lab/probe"
	"github.com/pharos-lb/pharos/test/lab/routers"
)

var (
	trials   = flag.Int("trials", 12, "crash trials (0 skips them)")
	prefixes = flag.Int("prefixes", 10000, "Services (one /32 each) for the scale figures (0 skips them)")
	heapOut  = flag.String("heap-profile", "", "after the scale figures, write the first node's speaker heap profile (go tool pprof) to this file")
)

const asn = 64512

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

const setup = `apiVersion: pharos.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
spec: {receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}
---
apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata: {name: router}
spec: {myASN: %[1]d, peerASN: %[1]d, peerAddress: %[2]q, bfdProfile: fast, holdTime: 9s, connectTime: 2s}
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: bench}
spec: {addresses: ["198.18.150.0/24"], autoAssign: false}
---
apiVersion: pharos.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bench}
spec: {ipAddressPools: [bench]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: pinned, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {run: pinned}}
  template:
    metadata: {labels: {run: pinned}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %[3]s}
      containers: [{name: pinned, image: echo, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: pinned, namespace: default, annotations: {pharos.io/address-pool: bench}}
spec: {type: LoadBalancer, selector: {run: pinned}, ports: [{port: 80}]}
`

type bench struct {
	l       *cluster.Lab
	ctx     context.Context
	frr     *routers.FRR
	backend string
	prefix  netip.Prefix
	url     string
}

func run() error {
	if err := cluster.CheckHost(); err != nil {
		return err
	}
	root, _ := os.Getwd()
	out := filepath.Join(root, "_output", "bench", "bgp")
	opts, err := cluster.Prepare(root, out, nil)
	if err != nil {
		return err
	}
	opts.Prefix, opts.Dir = "pbbg", filepath.Join(out, "lab")
	if *heapOut != "" {
		opts.SpeakerArgs = cluster.SpeakerPprofArgs
	}
	l, err := cluster.New(opts)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := l.Up(ctx); err != nil {
		return err
	}
	defer func() { _ = l.Down() }()
	b := &bench{l: l, ctx: ctx, backend: l.Nodes[len(l.Nodes)-1].Name}
	if b.frr, err = startRouter(ctx, l); err != nil {
		return err
	}
	defer func() { _ = b.frr.Stop() }()
	if err := l.Apply(ctx, fmt.Sprintf(setup, asn, l.Router.V4, b.backend)); err != nil {
		return err
	}
	ip, err := b.waitIP("pinned")
	if err != nil {
		return err
	}
	b.prefix, b.url = netip.PrefixFrom(ip, 32), "http://"+ip.String()+"/"
	if err := b.waitFIB(b.allNodes(), 60*time.Second); err != nil {
		return err
	}
	if err := b.waitServing(60 * time.Second); err != nil {
		return err
	}

	if *trials > 0 {
		withdraw, failed, err := b.crashes(*trials)
		if err != nil {
			return err
		}
		figures.Report("BGPBFDWithdrawP50", "bgp_bfd_withdraw_p50_ms", figures.Percentile(withdraw, 50))
		figures.Report("BGPBFDWithdrawP95", "bgp_bfd_withdraw_p95_ms", figures.Percentile(withdraw, 95))
		figures.Report("BGPFailoverFailedRequestsP95", "bgp_failover_failed_requests_p95", figures.Percentile(failed, 95))
	}

	if *prefixes == 0 {
		return nil
	}
	pharos, rss, err := b.scale(*prefixes)
	if err != nil {
		return err
	}
	frrSecs, err := b.frrBaseline(*prefixes)
	if err != nil {
		return err
	}
	figures.Report("BGPAdvertise", fmt.Sprintf("bgp_advertise_%d_s", *prefixes), pharos)
	figures.Report("BGPFRRAdvertise", fmt.Sprintf("bgp_frr_advertise_%d_s", *prefixes), frrSecs)
	figures.Report("BGPAdvertiseRatioToFRR", "bgp_advertise_ratio_to_frr", pharos/frrSecs)
	figures.Report("SpeakerRSSBGP", fmt.Sprintf("speaker_rss_mib_bgp_%d", *prefixes), rss)
	return nil
}

// startRouter runs FRR in the router namespace, peering with every node.
func startRouter(ctx context.Context, l *cluster.Lab) (*routers.FRR, error) {
	dir := filepath.Join(l.Dir, "frr")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := routers.FRRConfig{Namespace: l.Router.Name, Dir: dir, RouterID: l.Router.V4, ASN: asn, Forwarding: true,
		Neighbors: []routers.FRRNeighbor{{Address: l.Client.V4, RemoteASN: asn}}}
	for _, n := range l.Nodes {
		cfg.Neighbors = append(cfg.Neighbors, routers.FRRNeighbor{Address: n.V4, RemoteASN: asn, BFD: &routers.BFDTimers{}})
	}
	f, err := routers.StartFRR(ctx, cfg)
	if err != nil {
		_ = f.Stop()
		return nil, err
	}
	return f, nil
}

func (b *bench) allNodes() []netip.Addr {
	var out []netip.Addr
	for _, n := range b.l.Nodes {
		out = append(out, n.V4)
	}
	return out
}

func (b *bench) waitIP(svc string) (netip.Addr, error) {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, err := b.l.Kubectl(b.ctx, "get", "svc", svc, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if ip, perr := netip.ParseAddr(strings.TrimSpace(out)); err == nil && perr == nil {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no address for Service %s", svc)
}

func (b *bench) waitServing(timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if body, err := b.l.HTTPGet(b.ctx, b.l.Remote.Name, b.url); err == nil && strings.Contains(body, "pod=pinned") {
			return nil
		}
	}
	return fmt.Errorf("%s does not answer the remote client", b.url)
}

// fibHops reads FRR's kernel next hops for the bench prefix, sorted.
//
// It reads the router namespace's kernel table with iproute2 (what zebra
// installed for FRR) rather than through vtysh, whose round trip would add
// tens of milliseconds to every measurement.
func (b *bench) fibHops() (string, error) {
	out, err := exec.CommandContext(b.ctx, "ip", "-n", b.l.Router.Name, "-4", "route", "show", b.prefix.String()).Output()
	if err != nil {
		return "", err
	}
	var hops []netip.Addr
	for _, f := range strings.Split(strings.ReplaceAll(string(out), "\n", " "), " via ")[1:] {
		if a, err := netip.ParseAddr(strings.Fields(f)[0]); err == nil {
			hops = append(hops, a)
		}
	}
	return sorted(hops), nil
}

func sorted(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

func (b *bench) waitFIB(want []netip.Addr, timeout time.Duration) error {
	w := sorted(want)
	got := ""
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var err error
		if got, err = b.fibHops(); err == nil && got == w {
			return nil
		}
	}
	return fmt.Errorf("FRR's FIB routes %s via %q, want %q", b.prefix, got, w)
}

// crashes crashes a node without backends, in turn, and measures how long
// FRR keeps routing through it and how many client requests fail.
func (b *bench) crashes(n int) ([]float64, []float64, error) {
	var victims []cluster.Node
	for _, node := range b.l.Nodes {
		if node.Name != b.backend {
			victims = append(victims, node)
		}
	}
	var withdraw, failed []float64
	for i := 0; i < n; i++ {
		v := victims[i%len(victims)]
		var rest []netip.Addr
		for _, node := range b.l.Nodes {
			if node.Name != v.Name {
				rest = append(rest, node.V4)
			}
		}
		p, err := b.l.StartProbe(b.l.Remote.Name, b.url, 20*time.Millisecond)
		if err != nil {
			return nil, nil, err
		}
		time.Sleep(500 * time.Millisecond)
		at := time.Now()
		if err := b.l.CrashNode(v.Name); err != nil {
			p.Stop()
			return nil, nil, err
		}
		if err := b.waitFIB(rest, 10*time.Second); err != nil {
			p.Stop()
			return nil, nil, fmt.Errorf("trial %d: %w", i, err)
		}
		took := time.Since(at)
		time.Sleep(2 * time.Second)
		attempts, err := probe.Parse(strings.NewReader(p.Stop()))
		if err != nil {
			return nil, nil, err
		}
		f := probe.Failures(attempts)
		withdraw = append(withdraw, float64(took.Milliseconds()))
		failed = append(failed, float64(f))
		fmt.Fprintf(os.Stderr, "trial %d: %s crashed, FRR withdrew it after %s; %d of %d requests failed\n", i, v.Name, took, f, len(attempts))
		if err := b.l.RecoverNode(b.ctx, v.Name); err != nil {
			return nil, nil, err
		}
		if err := b.waitFIB(b.allNodes(), 60*time.Second); err != nil {
			return nil, nil, fmt.Errorf("trial %d: after recovery: %w", i, err)
		}
	}
	return withdraw, failed, nil
}

// scale creates n Services without selectors, each with an EndpointSlice
// naming a backend pod (kube-controller-manager's default 20 requests per
// second would take minutes to write 10,000 slices), waits until every one
// has its address, then applies their BGPAdvertisement and times FRR
// receiving every prefix from one node.
func (b *bench) scale(n int) (float64, float64, error) {
	out, err := b.l.Kubectl(b.ctx, "get", "pods", "-l", "run=pinned", "-o", "jsonpath={.items[0].status.podIP}")
	podIP := strings.TrimSpace(out)
	if err != nil {
		return 0, 0, fmt.Errorf("the backends' pod IP: %w", err)
	}
	if podIP == "" {
		return 0, 0, fmt.Errorf("no pod IP for the backends")
	}
	pool := `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: scale}
spec: {addresses: ["198.18.64.0/19", "198.18.160.0/19"], autoAssign: false}
`
	if err := b.l.Apply(b.ctx, pool); err != nil {
		return 0, 0, err
	}
	// The speakers are paused while the Services go in: each would
	// otherwise recompute every address on every one of 20,000 changes,
	// which on two cores starves the apiserver for a quarter of an hour.
	// They catch up in one pass when resumed, before the measurement.
	b.signalSpeakers(syscall.SIGSTOP)
	resumed := false
	defer func() {
		if !resumed {
			b.signalSpeakers(syscall.SIGCONT)
		}
	}()
	const chunk = 500
	for start := 0; start < n; start += chunk {
		var m strings.Builder
		for i := start; i < min(start+chunk, n); i++ {
			fmt.Fprintf(&m, `---
apiVersion: v1
kind: Service
metadata: {name: s%05d, namespace: default, annotations: {pharos.io/address-pool: scale}}
spec: {type: LoadBalancer, allocateLoadBalancerNodePorts: false, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s%05d, namespace: default, labels: {kubernetes.io/service-name: s%05d, endpointslice.kubernetes.io/managed-by: pharos-bench}}
addressType: IPv4
ports: [{port: 80, protocol: TCP}]
endpoints: [{addresses: [%q], conditions: {ready: true}, nodeName: %s}]
`, i, i, i, podIP, b.backend)
		}
		if err := b.l.Apply(b.ctx, m.String()); err != nil {
			return 0, 0, err
		}
	}
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(2 * time.Second) {
		out, err := b.l.Kubectl(b.ctx, "get", "svc", "-o", `jsonpath={range .items[*]}{.status.loadBalancer.ingress[0].ip}{"\n"}{end}`)
		got := 0
		for _, line := range strings.Split(out, "\n") {
			if a, perr := netip.ParseAddr(line); perr == nil && (netip.MustParsePrefix("198.18.64.0/19").Contains(a) || netip.MustParsePrefix("198.18.160.0/19").Contains(a)) {
				got++
			}
		}
		if err == nil && got >= n {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%d of %d Services have their addresses after 10 minutes", got, n)
		}
	}
	b.signalSpeakers(syscall.SIGCONT)
	resumed = true
	// Let them catch up (lists, one reconcile, status writes) before the
	// clock starts.
	time.Sleep(20 * time.Second)
	node := b.l.Nodes[0]
	start := time.Now()
	if err := b.l.Apply(b.ctx, `apiVersion: pharos.io/v1beta1
kind: BGPAdvertisement
metadata: {name: scale}
spec: {ipAddressPools: [scale]}
`); err != nil {
		return 0, 0, err
	}
	var took time.Duration
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		ns, err := b.frr.Neighbors(b.ctx)
		if err == nil && ns[node.V4].PrefixesReceived[routers.IPv4] >= n+1 { // +1: the pinned Service
			took = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("FRR has %d prefixes from %s after 5 minutes, want %d", ns[node.V4].PrefixesReceived[routers.IPv4], node.Name, n+1)
		}
	}
	time.Sleep(3 * time.Second)
	var rss float64
	for _, nd := range b.l.Nodes {
		pid, _ := b.l.PID(nd.Name + "-speaker")
		if r := figures.ProcStatusKB(pid, "VmHWM:") / 1024; r > rss {
			rss = r
		}
	}
	fmt.Fprintf(os.Stderr, "%d prefixes at FRR from %s %s after the BGPAdvertisement; speaker peak RSS %.0f MiB\n", n, node.Name, took, rss)
	if *heapOut != "" {
		if err := b.l.SpeakerHeapProfile(b.ctx, node.Name, *heapOut); err != nil {
			return 0, 0, err
		}
		fmt.Fprintf(os.Stderr, "heap profile of %s's speaker in %s\n", node.Name, *heapOut)
	}
	return took.Seconds(), rss, nil
}

// frrBaseline starts a second FRR in the LAN client's namespace that
// originates n static /32s to the same router, and times the router
// receiving them all, from the second FRR's start.
func (b *bench) frrBaseline(n int) (float64, error) {
	dir := filepath.Join(b.l.Dir, "frr-origin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	// Addresses no lab subnet uses: 198.18.0.0/19, then 198.18.128.0/20.
	var nets []netip.Prefix
	a := netip.MustParseAddr("198.18.0.0")
	for i := 0; i < n; i++ {
		if i == 8192 {
			a = netip.MustParseAddr("198.18.128.0")
		}
		nets = append(nets, netip.PrefixFrom(a, 32))
		a = a.Next()
	}
	start := time.Now()
	f, err := routers.StartFRR(b.ctx, routers.FRRConfig{Namespace: b.l.Client.Name, Dir: dir, RouterID: b.l.Client.V4, ASN: asn,
		Neighbors: []routers.FRRNeighbor{{Address: b.l.Router.V4, RemoteASN: asn, Families: []routers.Family{routers.IPv4}}}, Networks: nets})
	if err != nil {
		_ = f.Stop()
		return 0, err
	}
	defer func() { _ = f.Stop() }()
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		ns, err := b.frr.Neighbors(b.ctx)
		if err == nil && ns[b.l.Client.V4].PrefixesReceived[routers.IPv4] >= n {
			took := time.Since(start)
			fmt.Fprintf(os.Stderr, "baseline: %d static prefixes from a second FRR at the router %s after its start\n", n, took)
			return took.Seconds(), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the router has %d of the baseline's %d prefixes after 5 minutes", ns[b.l.Client.V4].PrefixesReceived[routers.IPv4], n)
		}
	}
}

// signalSpeakers sends sig to every node's speaker process.
func (b *bench) signalSpeakers(sig syscall.Signal) {
	for _, n := range b.l.Nodes {
		if pid, ok := b.l.PID(n.Name + "-speaker"); ok {
			_ = syscall.Kill(pid, sig)
		}
	}
}
