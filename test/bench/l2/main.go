// Command l2 measures layer-2 failover in the lab, as a client sees it: a
// client on the LAN opens a new TCP connection every 20 ms to a
// LoadBalancer address whose backends live on a node that never
// announces, and each trial takes the announcing node away.
//
//   - l2_failover_crash_p50_ms, l2_failover_crash_p95_ms: the node crashes
//     (every process killed, links down); time from the crash to the first
//     successful new connection.
//   - l2_failover_nic_down_p95_ms: the node's LAN interface goes down.
//   - l2_graceful_failed_requests: failed requests during a rolling restart
//     of every speaker (SIGTERM, then start again).
//   - l2_false_failovers_stress_10min: the times the address moved, as
//     the client's ARP sees it, while its announcing node was stressed for
//     -stress (10 minutes): a CPU hog on every core, 5 % loss and 20 ms
//     jitter on its link, its speaker paused 100 ms about every second;
//     with l2_stress_failed_requests of l2_stress_requests.
//   - speaker_rss_mib_1000, speaker_cpu_pct_idle_1000: the largest speaker
//     RSS and CPU use (percent of one core, idle for 30 s) with 1,000
//     announced addresses; speaker_cpu_pct_idle_1000_baseline the same, in
//     the same run, with the speakers restarted with the settings Pharos
//     had before the fast heartbeats (memberlist alone, probe 120 ms), and
//     speaker_cpu_idle_ratio_to_baseline the ratio.
//
// It needs root, like the lab.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pharos-lb/pharos/test/bench/figures"

	"github.com/pharos-lb/pharos/test/lab/cluster"
	"github.com/pharos-lb/pharos/test/lab/probe"
)

var (
	trials      = flag.Int("trials", 20, "failover trials per kind")
	services    = flag.Int("services", 1000, "announced addresses for the memory and CPU figures; 0 skips them")
	speakerArgs = flag.String("speaker-args", "", "extra speaker flags, space-separated (another --failover-detection, say)")
	settle      = flag.Duration("settle", 3*time.Second, "how long a failover trial waits for the first success (memberlist alone needs more)")
	stressFor   = flag.Duration("stress", 10*time.Minute, "how long to stress the announcing node for l2_false_failovers_stress_10min; 0 skips it")
	stressSeed  = flag.Int64("stress-seed", 1, "seed of the speaker pauses' timing")
	keepLogs    = flag.String("keep-logs", "", "copy the lab's logs to this directory before taking the lab down")
	heapOut     = flag.String("heap-profile", "", "after the memory figure, write the first node's speaker heap profile (go tool pprof) to this file")
	cpuOut      = flag.String("cpu-profile", "", "after the CPU figure, record the busiest speaker for 30 s and write its CPU profile (go tool pprof) to this file")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

const setup = `apiVersion: apps/v1
kind: Deployment
metadata: {name: pinned, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {run: pinned}}
  template:
    metadata: {labels: {run: pinned}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %[1]s}
      containers: [{name: pinned, image: echo, ports: [{containerPort: 80}]}]
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: bench}
spec: {addresses: ["198.18.104.0/22"]}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: bench}
spec:
  nodeSelectors:
  - matchExpressions: [{key: kubernetes.io/hostname, operator: NotIn, values: [%[1]s]}]
---
apiVersion: v1
kind: Service
metadata: {name: pinned, namespace: default}
spec: {type: LoadBalancer, selector: {run: pinned}, ports: [{port: 80}]}
`

type bench struct {
	l       *cluster.Lab
	ctx     context.Context
	ip      string
	url     string
	backend string
}

func run() error {
	if err := cluster.CheckHost(); err != nil {
		return err
	}
	root, _ := os.Getwd()
	opts, err := cluster.Prepare(root, filepath.Join(root, "_output", "bench", "l2"), nil)
	if err != nil {
		return err
	}
	opts.Prefix, opts.Dir = "pbl2", filepath.Join(root, "_output", "bench", "l2", "lab")
	if *heapOut != "" || *cpuOut != "" {
		opts.SpeakerArgs = cluster.SpeakerPprofArgs
	}
	opts.SpeakerArgs = append(opts.SpeakerArgs, strings.Fields(*speakerArgs)...)
	l, err := cluster.New(opts)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := l.Up(ctx); err != nil {
		return err
	}
	defer func() {
		if *keepLogs != "" {
			_ = exec.Command("cp", "-r", l.LogDir(), *keepLogs).Run()
		}
		_ = l.Down()
	}()
	b := &bench{l: l, ctx: ctx, backend: l.Nodes[len(l.Nodes)-1].Name}
	if err := l.Apply(ctx, fmt.Sprintf(setup, b.backend)); err != nil {
		return err
	}
	if b.ip, err = b.waitIP("pinned"); err != nil {
		return err
	}
	b.url = "http://" + b.ip + "/"
	if err := b.waitServing(60 * time.Second); err != nil {
		return err
	}

	// -trials 0: only the memory and CPU figures (and a heap profile).
	if *trials > 0 {
		if err := b.failoverFigures(); err != nil {
			return err
		}
	}
	if *stressFor > 0 {
		r, err := b.stress(*stressFor, *stressSeed)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "stress: %d moves (MACs %v), %d of %d requests failed (to the NodePort on the same node: %d of %d), %d pauses; announcing node %s before, %s after\n",
			r.Moves, r.MACs, r.Failed, r.Requests, r.ControlFailed, r.ControlRequests, r.Pauses, r.Owner, r.OwnerAfter)
		moves := r.Moves
		if r.OwnerAfter != r.Owner && moves == 0 {
			moves = 1 // moved without the client's ARP seeing it
		}
		figures.Report("L2FalseFailoversStress", "l2_false_failovers_stress_10min", float64(moves))
		figures.Report("L2StressFailedRequests", "l2_stress_failed_requests", float64(r.Failed))
		figures.Report("L2StressRequests", "l2_stress_requests", float64(r.Requests))
		figures.Report("L2StressControlFailedRequests", "l2_stress_control_failed_requests", float64(r.ControlFailed))
	}
	if *services == 0 {
		return nil
	}
	rss, cpu, err := b.scale(*services)
	if err != nil {
		return err
	}
	figures.Report("SpeakerRSS", "speaker_rss_mib_1000", rss)
	figures.Report("SpeakerCPUIdle", "speaker_cpu_pct_idle_1000", cpu)
	base, err := b.baselineCPU(*services)
	if err != nil {
		return err
	}
	figures.Report("SpeakerCPUIdleBaseline", "speaker_cpu_pct_idle_1000_baseline", base)
	if base > 0 {
		figures.Report("SpeakerCPUIdleRatio", "speaker_cpu_idle_ratio_to_baseline", cpu/base)
	}
	return nil
}

// failoverFigures times crashes and NIC-downs of the announcing node, and
// counts failed requests over a rolling restart.
func (b *bench) failoverFigures() error {
	l, ctx := b.l, b.ctx
	crash, err := b.failovers(*trials, l.CrashNode, func(n string) error { return l.RecoverNode(ctx, n) })
	if err != nil {
		return err
	}
	figures.Report("L2FailoverCrashP50", "l2_failover_crash_p50_ms", figures.Percentile(crash, 50))
	figures.Report("L2FailoverCrashP95", "l2_failover_crash_p95_ms", figures.Percentile(crash, 95))
	nic, err := b.failovers(*trials, l.LinkDown, l.LinkUp)
	if err != nil {
		return err
	}
	figures.Report("L2FailoverNICDownP50", "l2_failover_nic_down_p50_ms", figures.Percentile(nic, 50))
	figures.Report("L2FailoverNICDownP95", "l2_failover_nic_down_p95_ms", figures.Percentile(nic, 95))

	failed, total, err := b.rollingRestart()
	if err != nil {
		return err
	}
	figures.Report("L2GracefulFailedRequests", "l2_graceful_failed_requests", float64(failed))
	fmt.Fprintf(os.Stderr, "rolling restart: %d of %d requests failed\n", failed, total)
	return nil
}

func (b *bench) waitIP(svc string) (string, error) {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, err := b.l.Kubectl(b.ctx, "get", "svc", svc, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if ip := strings.TrimSpace(out); err == nil && ip != "" {
			return ip, nil
		}
	}
	return "", fmt.Errorf("no address for Service %s", svc)
}

func (b *bench) waitServing(timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if body, err := b.l.HTTPGet(b.ctx, b.l.Client.Name, b.url); err == nil && strings.Contains(body, "pod=pinned") {
			return nil
		}
	}
	return fmt.Errorf("%s does not answer the LAN client", b.url)
}

// owner waits until the Service's condition names one announcing node.
func (b *bench) owner() (string, error) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if node, err := b.l.AnnouncingNode(b.ctx, "pinned", b.ip); err == nil {
			return node, nil
		}
	}
	return "", fmt.Errorf("nobody announces %s", b.ip)
}

// failovers runs trials of fault/recover on the announcing node and
// returns each outage in milliseconds.
func (b *bench) failovers(n int, fault, recover func(string) error) ([]float64, error) {
	var out []float64
	for i := 0; i < n; i++ {
		if err := b.waitServing(30 * time.Second); err != nil {
			return nil, err
		}
		owner, err := b.owner()
		if err != nil {
			return nil, err
		}
		p, err := b.l.StartProbe(b.l.Client.Name, b.url, 20*time.Millisecond)
		if err != nil {
			return nil, err
		}
		time.Sleep(500 * time.Millisecond)
		at := time.Now()
		if err := fault(owner); err != nil {
			p.Stop()
			return nil, err
		}
		time.Sleep(*settle)
		attempts, err := probe.Parse(strings.NewReader(p.Stop()))
		if err != nil {
			return nil, err
		}
		outage, failed, ok := probe.Outage(attempts, at)
		if !ok {
			return nil, fmt.Errorf("trial %d: no success within %s of taking %s away (%d failed)", i, *settle, owner, failed)
		}
		out = append(out, float64(outage.Milliseconds()))
		fmt.Fprintf(os.Stderr, "trial %d: %s away, first success after %s (%d failed)\n", i, owner, outage, failed)
		if err := recover(owner); err != nil {
			return nil, err
		}
		// Let the node rejoin before the next trial takes its peer away.
		if err := b.waitMember(owner); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// waitMember waits until the node's speaker runs and the cluster has had
// time to see it alive again.
func (b *bench) waitMember(node string) error {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b.l.Running(node + "-speaker") {
			time.Sleep(3 * time.Second)
			return nil
		}
	}
	return fmt.Errorf("the speaker of %s did not come back", node)
}

// rollingRestart stops and restarts every speaker in turn while a client
// loop runs, and counts its failed requests.
func (b *bench) rollingRestart() (int, int, error) {
	if err := b.waitServing(30 * time.Second); err != nil {
		return 0, 0, err
	}
	p, err := b.l.StartProbe(b.l.Client.Name, b.url, 20*time.Millisecond)
	if err != nil {
		return 0, 0, err
	}
	for _, n := range b.l.Nodes {
		name := n.Name + "-speaker"
		if err := b.l.Stop(name, syscall.SIGTERM); err != nil {
			p.Stop()
			return 0, 0, err
		}
		if err := b.l.Restart(name); err != nil {
			p.Stop()
			return 0, 0, err
		}
		time.Sleep(3 * time.Second)
	}
	attempts, err := probe.Parse(strings.NewReader(p.Stop()))
	return probe.Failures(attempts), len(attempts), err
}

// scale creates Services until n addresses are announced, then reads the
// speakers' peak RSS and their CPU use over 10 idle seconds.
func (b *bench) scale(n int) (float64, float64, error) {
	var m strings.Builder
	for i := 1; i < n; i++ {
		fmt.Fprintf(&m, "---\napiVersion: v1\nkind: Service\nmetadata: {name: scale-%04d, namespace: default}\nspec: {type: LoadBalancer, selector: {run: pinned}, ports: [{port: 80}]}\n", i)
	}
	if err := b.l.Apply(b.ctx, m.String()); err != nil {
		return 0, 0, err
	}
	if err := b.waitAnnounced(n); err != nil {
		return 0, 0, err
	}
	time.Sleep(5 * time.Second)
	rss, cpu, busiest := b.idle()
	if *cpuOut != "" {
		// After the figure: the profiler's own sampling costs CPU. The
		// heap profiles around it tell what was allocated meanwhile (go
		// tool pprof -sample_index=alloc_space -base FILE.heap0
		// FILE.heap1): at rest, allocation is what makes the GC work.
		if err := b.l.SpeakerHeapProfile(b.ctx, busiest, *cpuOut+".heap0"); err != nil {
			return 0, 0, err
		}
		if err := b.l.SpeakerCPUProfile(b.ctx, busiest, *cpuOut, 30*time.Second); err != nil {
			return 0, 0, err
		}
		if err := b.l.SpeakerHeapProfile(b.ctx, busiest, *cpuOut+".heap1"); err != nil {
			return 0, 0, err
		}
		fmt.Fprintf(os.Stderr, "CPU profile of %s's speaker (%.2f %% of a core at rest) in %s, heap profiles around it in %[3]s.heap0 and .heap1\n", busiest, cpu, *cpuOut)
	}
	if *heapOut != "" {
		node := b.l.Nodes[0].Name
		if err := b.l.SpeakerHeapProfile(b.ctx, node, *heapOut); err != nil {
			return 0, 0, err
		}
		fmt.Fprintf(os.Stderr, "heap profile of %s's speaker in %s\n", node, *heapOut)
	}
	return rss, cpu, nil
}

// baselineSettings are the speaker's failure-detection settings before the
// fast heartbeats: memberlist alone, tuned for speed.
var baselineSettings = []string{"--failover-detection=0", "--probe-interval=120ms", "--probe-timeout=70ms", "--suspicion-mult=3", "--gossip-interval=150ms"}

// baselineCPU restarts every speaker with baselineSettings, waits until the
// n addresses are announced again, and measures their idle CPU the same
// way as scale.
func (b *bench) baselineCPU(n int) (float64, error) {
	for _, node := range b.l.Nodes {
		name := node.Name + "-speaker"
		if err := b.l.Stop(name, syscall.SIGTERM); err != nil {
			return 0, err
		}
		if err := b.l.RestartWith(name, func(argv []string) []string { return append(argv, baselineSettings...) }); err != nil {
			return 0, err
		}
		time.Sleep(3 * time.Second)
	}
	// The conditions stay True across the restarts: give the speakers
	// time to rejoin and announce before checking them.
	time.Sleep(10 * time.Second)
	if err := b.waitAnnounced(n); err != nil {
		return 0, err
	}
	time.Sleep(5 * time.Second)
	_, cpu, _ := b.idle()
	return cpu, nil
}

// waitAnnounced waits until n Services are announced.
func (b *bench) waitAnnounced(n int) error {
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
		out, err := b.l.Kubectl(b.ctx, "get", "svc", "-o", `jsonpath={range .items[*]}{.status.conditions[?(@.type=="pharos.io/Announced")].status}{"\n"}{end}`)
		if got := strings.Count(out, "True"); err == nil && got >= n {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d Services announced after 5 minutes", got, n)
		}
	}
}

// idle returns the largest speaker RSS (peak, MiB) and CPU use (percent
// of a core) over 30 idle seconds, and the node whose speaker used most.
func (b *bench) idle() (rss, cpu float64, busiest string) {
	busiest = b.l.Nodes[0].Name
	before := map[string]float64{}
	for _, node := range b.l.Nodes {
		before[node.Name] = cpuSeconds(b.l, node.Name+"-speaker")
	}
	// 30 s covers one periodic resync of every speaker.
	time.Sleep(30 * time.Second)
	for _, node := range b.l.Nodes {
		name := node.Name + "-speaker"
		if pct := (cpuSeconds(b.l, name) - before[node.Name]) / 30 * 100; pct > cpu {
			cpu, busiest = pct, node.Name
		}
		if r := figures.ProcStatusKB(speakerPID(b.l, name), "VmHWM:") / 1024; r > rss {
			rss = r
		}
	}
	return rss, cpu, busiest
}

// speakerPID is the speaker's pid, or 0 if it does not run.
func speakerPID(l *cluster.Lab, name string) int {
	pid, _ := l.PID(name)
	return pid
}

func cpuSeconds(l *cluster.Lab, name string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", speakerPID(l, name)))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}
