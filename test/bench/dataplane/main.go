// Command dataplane measures Pharos's direct forwarding path (nftables
// DNAT from the Service IP to the endpoints), judged from a client
// namespace with plain HTTP requests, each on a new connection, against
// baselines measured in the same run:
//
//   - dnat_rps_ratio: requests per second through a direct Service's IP
//     over requests per second straight to its pod's IP, routed through
//     the same announcing node (the same hops, no NAT), 8 clients with a
//     keep-alive connection each (new connections at this rate fill the
//     pod's TIME_WAIT table and slow whichever path runs later); the
//     order of the paths rotates each round;
//   - dnat_new_conn_rps_ratio, dnat_new_conn_rps_ratio_vs_kube_proxy: the
//     same with a new connection per request;
//   - dnat_rps_ratio_vs_kube_proxy: through the direct Service's IP over
//     through a twin Service that kube-proxy carries (ipMode VIP), both
//     announced by the same node to the same pod;
//   - dnat_resync_1000_ms: one Sync of 1,000 frontends (two backends each)
//     into an empty namespace, median of 5; dnat_resync_ratio_to_nft is
//     that over `nft -f` loading the same table's text;
//   - dead_node_backend_failed_requests: a client loop (a new connection
//     every 20 ms for 60 s) to a direct Service with two backends on two
//     nodes, neither of which announces it; one of them crashes.
//     dead_node_backend_failed_requests_kube_proxy is the same loop, in the
//     same crash, to a twin Service that kube-proxy carries.
//   - failover_connections_kept_pct_graceful and _crash: of 50 long-lived
//     HTTP keep-alive connections (a request every 100 ms each) through a
//     direct Service whose backend lives on neither candidate node, how
//     many survive the announcing node being cordoned, then crashing.
//
// It needs root, like the lab.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pharos-lb/pharos/internal/dataplane"
	"github.com/pharos-lb/pharos/test/bench/figures"
	"github.com/pharos-lb/pharos/test/lab/cluster"
	"github.com/pharos-lb/pharos/test/lab/probe"
)

var (
	loadFor     = flag.Duration("load", 5*time.Second, "length of each throughput run")
	rounds      = flag.Int("rounds", 3, "throughput runs per path (interleaved; the median counts)")
	concurrency = flag.Int("concurrency", 8, "parallel clients per throughput run")
	crashLoop   = flag.Duration("crash-loop", 60*time.Second, "length of the client loops around the backend node's crash")
	holdConns   = flag.Int("hold-conns", 50, "long-lived connections across each move of the address")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

func run() error {
	if err := cluster.CheckHost(); err != nil {
		return err
	}
	if err := resync(); err != nil {
		return err
	}
	root, _ := os.Getwd()
	out := filepath.Join(root, "_output", "bench", "dataplane")
	opts, err := cluster.Prepare(root, out, nil)
	if err != nil {
		return err
	}
	opts.Prefix, opts.Dir = "pbdp", filepath.Join(out, "lab")
	l, err := cluster.New(opts)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := l.Up(ctx); err != nil {
		return err
	}
	defer func() { _ = l.Down() }()
	b := &bench{l: l, ctx: ctx}
	return b.lab()
}

// resync times Sync of 1,000 frontends in a namespace of its own, against
// nft loading the same table.
func resync() error {
	const ns = "pbdp-resync"
	_ = exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %w: %s", ns, err, out)
	}
	defer func() { _ = exec.Command("ip", "netns", "del", ns).Run() }()
	fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	dp, err := dataplane.New(dataplane.Options{NetNS: fd, Table: "pharos"})
	if err != nil {
		return err
	}
	var cfg dataplane.Config
	for i := range 1000 {
		vip := netip.AddrFrom4([4]byte{198, 18, 128 + byte(i/250), byte(i % 250)})
		cfg.Frontends = append(cfg.Frontends, dataplane.Frontend{Service: fmt.Sprintf("bench/s%04d", i), VIP: vip, Protocol: dataplane.TCP, Port: 80,
			Backends: []dataplane.Backend{{Addr: netip.AddrFrom4([4]byte{198, 19, byte(i / 250), byte(i % 250)}), Port: 8080},
				{Addr: netip.AddrFrom4([4]byte{198, 19, 4 + byte(i/250), byte(i % 250)}), Port: 8080, Local: true}}})
	}
	var ours, theirs []float64
	rs, err := dataplane.Plan(cfg)
	if err != nil {
		return err
	}
	file := filepath.Join(os.TempDir(), "pbdp-resync.nft")
	if err := os.WriteFile(file, []byte(rs.Render("nftbaseline")), 0o644); err != nil {
		return err
	}
	defer os.Remove(file)
	nftOK := true
	for range 5 {
		start := time.Now()
		if err := dp.Sync(cfg); err != nil {
			return err
		}
		ours = append(ours, float64(time.Since(start).Microseconds())/1000)
		if !nftOK {
			continue
		}
		_ = exec.Command("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "nftbaseline").Run()
		start = time.Now()
		if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-f", file).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "nft -f of the same table failed, no baseline: %v: %.300s\n", err, out)
			nftOK = false
			continue
		}
		theirs = append(theirs, float64(time.Since(start).Microseconds())/1000)
	}
	if err := dp.Close(); err != nil {
		return err
	}
	med := figures.Percentile(ours, 50)
	fmt.Fprintf(os.Stderr, "Sync of 1,000 frontends: %v ms (median %.1f)\n", ours, med)
	figures.Report("DNATResync1000", "dnat_resync_1000_ms", med)
	if nftOK {
		nft := figures.Percentile(theirs, 50)
		fmt.Fprintf(os.Stderr, "nft -f of the same table: %v ms (median %.1f)\n", theirs, nft)
		figures.Report("DNATResyncRatioToNft", "dnat_resync_ratio_to_nft", med/nft)
	}
	return nil
}

type bench struct {
	l   *cluster.Lab
	ctx context.Context
}

const manifest = `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: bench}
spec: {addresses: ["198.18.101.0/28"]}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: bench}
spec:
  ipAddressPools: [bench]
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: %[1]s}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: rps, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {run: rps}}
  template:
    metadata: {labels: {run: rps}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %[3]s}
      containers: [{name: rps, image: echo, ports: [{containerPort: 80}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dead-a, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {run: dead, half: a}}
  template:
    metadata: {labels: {run: dead, half: a}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %[2]s}
      containers: [{name: dead, image: echo, ports: [{containerPort: 80}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dead-b, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {run: dead, half: b}}
  template:
    metadata: {labels: {run: dead, half: b}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %[3]s}
      containers: [{name: dead, image: echo, ports: [{containerPort: 80}]}]
`

// moveManifest is a pool that nodes 1 and 2 may announce, and a direct
// Service on it whose one backend runs on node 3.
const moveManifest = `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: move}
spec: {addresses: ["198.18.101.16/28"]}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: move}
spec:
  ipAddressPools: [move]
  nodeSelectors: [{matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [%[1]s, %[2]s]}]}]
---
apiVersion: v1
kind: Service
metadata: {name: hold, namespace: default, annotations: {pharos.io/forwarding: direct, pharos.io/address-pool: move}}
spec: {type: LoadBalancer, selector: {run: rps}, ports: [{port: 80}]}
`

const services = `apiVersion: v1
kind: Service
metadata: {name: %[1]s-direct, namespace: default, annotations: {pharos.io/forwarding: direct}}
spec: {type: LoadBalancer, selector: {run: %[1]s}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s-proxy, namespace: default}
spec: {type: LoadBalancer, selector: {run: %[1]s}, ports: [{port: 80}]}
`

// lab measures throughput and the dead backend's cost in the lab: node 1
// announces every address; the throughput pod runs on node 3, the two
// halves of the dead-node Service on nodes 2 and 3.
func (b *bench) lab() error {
	n1, n2, n3 := b.l.Nodes[0], b.l.Nodes[1], b.l.Nodes[2]
	m := fmt.Sprintf(manifest, n1.Name, n2.Name, n3.Name) + "---\n" + fmt.Sprintf(services, "rps") + "---\n" + fmt.Sprintf(services, "dead")
	if err := b.l.Apply(b.ctx, m); err != nil {
		return err
	}
	ips := map[string]string{}
	for _, svc := range []string{"rps-direct", "rps-proxy", "dead-direct", "dead-proxy"} {
		ip, err := b.waitServing(svc, 90*time.Second)
		if err != nil {
			return err
		}
		ips[svc] = ip
	}
	podIP, err := b.l.Kubectl(b.ctx, "get", "pods", "-l", "run=rps", "-o", "jsonpath={.items[0].status.podIP}")
	if err != nil || podIP == "" {
		return fmt.Errorf("the throughput pod's IP %q: %w", podIP, err)
	}
	// The client reaches the pod's IP through the announcing node, as it
	// reaches the Service's: the same hops, without the NAT.
	if out, err := b.l.Exec(b.ctx, b.l.Client.Name, "ip", "route", "replace", n3.PodV4.String(), "via", n1.V4.String()); err != nil {
		return fmt.Errorf("route to the pods: %w: %s", err, out)
	}
	urls := map[string]string{
		"pod":    "http://" + net.JoinHostPort(podIP, "80") + "/",
		"direct": "http://" + net.JoinHostPort(ips["rps-direct"], "80") + "/",
		"proxy":  "http://" + net.JoinHostPort(ips["rps-proxy"], "80") + "/",
	}
	for _, keepAlive := range []bool{true, false} {
		rps := map[string][]float64{}
		paths := []string{"pod", "direct", "proxy"}
		for round := range *rounds {
			for _, path := range paths {
				r, err := b.load(urls[path], keepAlive)
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "keep-alive %v, round %d %-6s %s: %.0f requests/s, %d failed\n", keepAlive, round, path, urls[path], r.RPS(), r.Failed)
				rps[path] = append(rps[path], r.RPS())
			}
			paths = append(paths[1:], paths[0])
		}
		pod, direct, proxy := figures.Percentile(rps["pod"], 50), figures.Percentile(rps["direct"], 50), figures.Percentile(rps["proxy"], 50)
		if keepAlive {
			figures.Report("DNATRPSRatio", "dnat_rps_ratio", direct/pod)
			figures.Report("DNATRPSRatioVsKubeProxy", "dnat_rps_ratio_vs_kube_proxy", direct/proxy)
		} else {
			figures.Report("DNATNewConnRPSRatio", "dnat_new_conn_rps_ratio", direct/pod)
			figures.Report("DNATNewConnRPSRatioVsKubeProxy", "dnat_new_conn_rps_ratio_vs_kube_proxy", direct/proxy)
		}
	}

	// Both loops run through the same crash of node 3, which holds one of
	// the two backends and announces nothing.
	loops := map[string]*cluster.ProbeRun{}
	for _, svc := range []string{"dead-direct", "dead-proxy"} {
		p, err := b.l.StartProbe(b.l.Client.Name, "http://"+net.JoinHostPort(ips[svc], "80")+"/", 20*time.Millisecond)
		if err != nil {
			return err
		}
		loops[svc] = p
	}
	time.Sleep(5 * time.Second)
	if err := b.l.CrashNode(n3.Name); err != nil {
		return err
	}
	time.Sleep(*crashLoop - 5*time.Second)
	failed := map[string]int{}
	for svc, p := range loops {
		attempts, err := probe.Parse(strings.NewReader(p.Stop()))
		if err != nil {
			return err
		}
		for _, a := range attempts {
			if !a.OK {
				failed[svc]++
			}
		}
		fmt.Fprintf(os.Stderr, "%s: %d of %d requests failed around the crash of %s\n", svc, failed[svc], len(attempts), n3.Name)
	}
	if err := b.l.RecoverNode(b.ctx, n3.Name); err != nil {
		return err
	}
	// The throughput pod on node 3 is the backend of the moves.
	if _, err := b.waitServing("rps-direct", 120*time.Second); err != nil {
		return err
	}
	figures.Report("DeadNodeBackendFailedRequests", "dead_node_backend_failed_requests", float64(failed["dead-direct"]))
	figures.Report("DeadNodeBackendFailedRequestsKubeProxy", "dead_node_backend_failed_requests_kube_proxy", float64(failed["dead-proxy"]))
	return b.moves()
}

// moves measures long-lived connections across a graceful move (the
// announcing node cordoned) and a crash of the announcing node.
func (b *bench) moves() error {
	n1, n2 := b.l.Nodes[0], b.l.Nodes[1]
	if err := b.l.Apply(b.ctx, fmt.Sprintf(moveManifest, n1.Name, n2.Name)); err != nil {
		return err
	}
	ip, err := b.waitServing("hold", 120*time.Second)
	if err != nil {
		return err
	}
	url := "http://" + net.JoinHostPort(ip, "80") + "/"
	for _, move := range []string{"graceful", "crash"} {
		owner, err := b.l.AnnouncingNode(b.ctx, "hold", ip)
		if err != nil {
			return err
		}
		hold := exec.Command("ip", "netns", "exec", b.l.Client.Name, b.l.LabBinary, "hold", "--url", url,
			"--conns", strconv.Itoa(*holdConns), "--interval", "100ms", "--duration", "25s")
		var out strings.Builder
		hold.Stdout = &out
		if err := hold.Start(); err != nil {
			return err
		}
		time.Sleep(5 * time.Second)
		if move == "graceful" {
			_, err = b.l.Kubectl(b.ctx, "cordon", owner)
		} else {
			err = b.l.CrashNode(owner)
		}
		if err != nil {
			_ = hold.Process.Kill()
			return err
		}
		// The address must have moved, or the figure means nothing.
		var now string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if now, _ = b.l.AnnouncingNode(b.ctx, "hold", ip); now != "" && now != owner {
				break
			}
			if time.Now().After(deadline) {
				msg, _ := b.l.Kubectl(b.ctx, "get", "svc", "hold", "-o", `jsonpath={.status.conditions[?(@.type=="pharos.io/Announced")].message}`)
				_ = hold.Process.Kill()
				return fmt.Errorf("%s move: %s did not leave %s: %s", move, ip, owner, msg)
			}
		}
		if err := hold.Wait(); err != nil {
			return fmt.Errorf("hold: %w", err)
		}
		var kept, conns int
		if _, err := fmt.Sscanf(out.String(), "%d %d", &kept, &conns); err != nil || conns == 0 {
			return fmt.Errorf("hold printed %q", out.String())
		}
		fmt.Fprintf(os.Stderr, "%s move of %s from %s (now %s): %d of %d long-lived connections kept\n", move, ip, owner, now, kept, conns)
		figures.Report("FailoverConnectionsKept"+map[string]string{"graceful": "Graceful", "crash": "Crash"}[move], "failover_connections_kept_pct_"+move, 100*float64(kept)/float64(conns))
		if move == "graceful" {
			if _, err := b.l.Kubectl(b.ctx, "uncordon", owner); err != nil {
				return err
			}
		} else if err := b.l.RecoverNode(b.ctx, owner); err != nil {
			return err
		}
		if _, err := b.waitServing("hold", 120*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// load runs the lab's load client in the client namespace.
func (b *bench) load(url string, keepAlive bool) (probe.LoadResult, error) {
	out, err := b.l.Exec(b.ctx, b.l.Client.Name, b.l.LabBinary, "load", "--url", url, "--keepalive="+strconv.FormatBool(keepAlive),
		"--concurrency", strconv.Itoa(*concurrency), "--duration", loadFor.String())
	if err != nil {
		return probe.LoadResult{}, fmt.Errorf("load %s: %w: %s", url, err, out)
	}
	f := strings.Fields(out)
	if len(f) != 3 {
		return probe.LoadResult{}, fmt.Errorf("load %s printed %q", url, out)
	}
	ok, _ := strconv.ParseInt(f[0], 10, 64)
	failed, _ := strconv.ParseInt(f[1], 10, 64)
	secs, _ := strconv.ParseFloat(f[2], 64)
	return probe.LoadResult{OK: ok, Failed: failed, Elapsed: time.Duration(secs * float64(time.Second))}, nil
}

// waitServing waits until the Service has an IPv4 address that answers
// the LAN client, and returns it.
func (b *bench) waitServing(svc string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		ip, _ := b.l.Kubectl(b.ctx, "get", "svc", svc, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if ip != "" {
			if _, err := b.l.HTTPGet(b.ctx, b.l.Client.Name, "http://"+net.JoinHostPort(ip, "80")+"/"); err == nil {
				return ip, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the Service %s has no answering address after %s (address %q)", svc, timeout, ip)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
