// Command outage measures Pharos through a control-plane outage in the lab
// (as root): requests that fail while kube-apiserver and etcd are down
// (-outage, 10 minutes by default, as issue #13 asks), and a cold start:
// every Pharos process started while the apiserver is down, then the time
// from the apiserver's return (ready) until the address answers a client
// that had to ask for it by ARP again. The baseline, measured in the same
// run, is the apiserver's own start-up.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pharos-lb/pharos/test/bench/figures"
	"github.com/pharos-lb/pharos/test/lab/cluster"
	"github.com/pharos-lb/pharos/test/lab/probe"
)

var outage = flag.Duration("outage", 10*time.Minute, "how long the control plane stays down")

const setup = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {run: web}}
  template:
    metadata: {labels: {run: web}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %[1]s}
      containers: [{name: web, image: echo, ports: [{containerPort: 80}]}]
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: outage}
spec: {addresses: ["198.18.120.0/28"]}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: outage}
spec:
  ipAddressPools: [outage]
  nodeSelectors: [{matchExpressions: [{key: kubernetes.io/hostname, operator: NotIn, values: [%[1]s]}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, selector: {run: web}, ports: [{port: 80, protocol: TCP}]}
`

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-outage:", err)
		os.Exit(1)
	}
}

func run() error {
	if err := cluster.CheckHost(); err != nil {
		return err
	}
	root, _ := os.Getwd()
	out := filepath.Join(root, "_output", "bench", "outage")
	opts, err := cluster.Prepare(root, out, nil)
	if err != nil {
		return err
	}
	opts.Prefix, opts.Dir = "pbou", filepath.Join(out, "lab")
	l, err := cluster.New(opts)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := l.Up(ctx); err != nil {
		return err
	}
	defer func() { _ = l.Down() }()
	backend := l.Nodes[len(l.Nodes)-1].Name
	if err := l.Apply(ctx, fmt.Sprintf(setup, backend)); err != nil {
		return err
	}
	var ip string
	for deadline := time.Now().Add(2 * time.Minute); ip == ""; time.Sleep(time.Second) {
		o, _ := l.Kubectl(ctx, "get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		ip = strings.TrimSpace(o)
		if time.Now().After(deadline) {
			return fmt.Errorf("no address for Service web")
		}
	}
	url := "http://" + ip + "/"
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if _, err := l.HTTPGet(ctx, l.Client.Name, url); err == nil {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer: %w", url, err)
		}
	}

	// The outage.
	p, err := l.StartProbe(l.Client.Name, url, 50*time.Millisecond)
	if err != nil {
		return err
	}
	if err := l.StopControlPlane(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "control plane down for %s\n", *outage)
	time.Sleep(*outage)
	attempts, _ := probe.Parse(strings.NewReader(p.Stop()))
	failed := probe.Failures(attempts)
	fmt.Fprintf(os.Stderr, "outage: %d of %d requests failed\n", failed, len(attempts))
	// When, relative to the outage's start: each run of failures.
	down := attempts[0].Start
	for i := 0; i < len(attempts); i++ {
		if attempts[i].OK {
			continue
		}
		j := i
		for j+1 < len(attempts) && !attempts[j+1].OK {
			j++
		}
		fmt.Fprintf(os.Stderr, "  failed from %+.1fs to %+.1fs (%d requests)\n", attempts[i].Start.Sub(down).Seconds(), attempts[j].Start.Sub(down).Seconds(), j-i+1)
		i = j
	}
	keepLogs(l, filepath.Join(out, "logs-outage"))
	t0 := time.Now()
	if err := l.StartControlPlane(ctx); err != nil {
		return err
	}
	apiStart := time.Since(t0)
	figures.Report("OutageFailedRequests", "outage_failed_requests", float64(failed))
	figures.Report("OutageRequests", "outage_requests", float64(len(attempts)))

	// The cold start.
	if err := l.StopControlPlane(); err != nil {
		return err
	}
	names := []string{"pharos-controller"}
	for _, n := range l.Nodes {
		names = append(names, n.Name+"-speaker")
	}
	for _, name := range names {
		if err := l.Stop(name, syscall.SIGKILL); err != nil {
			return err
		}
		if err := l.Restart(name); err != nil {
			return err
		}
	}
	time.Sleep(10 * time.Second)
	if _, err := l.Exec(ctx, l.Client.Name, "ip", "neigh", "flush", "all"); err != nil {
		return err
	}
	p, err = l.StartProbe(l.Client.Name, url, 20*time.Millisecond)
	if err != nil {
		return err
	}
	back := time.Now()
	if err := l.StartControlPlane(ctx); err != nil {
		return err
	}
	ready := time.Now()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if _, err := l.HTTPGet(ctx, l.Client.Name, url); err == nil {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer a minute after the cold start", url)
		}
	}
	attempts, _ = probe.Parse(strings.NewReader(p.Stop()))
	answered, _, ok := probe.Outage(attempts, ready)
	if !ok {
		return fmt.Errorf("no probe succeeded after the cold start")
	}
	for _, n := range l.Nodes {
		fmt.Fprintf(os.Stderr, "%s after the apiserver was ready: %s\n", n.Name, milestones(filepath.Join(l.LogDir(), n.Name+"-speaker.log"), ready))
	}
	figures.Report("ColdStartAnnounce", "cold_start_announce_s", answered.Seconds())
	figures.Report("ColdStartAPIServerStart", "cold_start_apiserver_start_s", ready.Sub(back).Seconds())
	figures.Report("OutageAPIServerStart", "outage_apiserver_start_s", apiStart.Seconds())
	return nil
}

// keepLogs copies the lab's logs (the lab's directory goes at teardown).
func keepLogs(l *cluster.Lab, dir string) {
	_ = os.RemoveAll(dir)
	_ = os.MkdirAll(dir, 0o755)
	entries, _ := os.ReadDir(l.LogDir())
	for _, e := range entries {
		if data, err := os.ReadFile(filepath.Join(l.LogDir(), e.Name())); err == nil {
			_ = os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644)
		}
	}
}

// milestones lists the speaker's log lines after t, with their offsets.
func milestones(log string, t time.Time) string {
	f, err := os.Open(log)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			// The supervisor's lines and a crash's output.
			out = append(out, sc.Text())
			continue
		}
		if line.Time.Before(t.Add(-30 * time.Second)) {
			continue
		}
		out = append(out, fmt.Sprintf("%+.1fs %s", line.Time.Sub(t).Seconds(), line.Msg))
	}
	return strings.Join(out, "; ")
}
