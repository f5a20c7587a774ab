// Command plugin measures kubectl pharos in the lab (as root): how long
// `kubectl pharos explain` takes with 1,000 Services, against `kubectl get
// svc NAME -o json` timed in the same run (the same process start, kubectl
// plugin lookup aside, and one apiserver round trip), and the size of the
// plugin binary as released (stripped), against kubectl's own.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pharos-lb/pharos/test/bench/figures"
	"github.com/pharos-lb/pharos/test/lab/cluster"
)

var (
	services = flag.Int("services", 1000, "LoadBalancer Services in the cluster")
	runs     = flag.Int("runs", 40, "timed runs of each command")
)

const setup = `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: bench}
spec: {addresses: ["198.18.104.0/22"]}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: bench}
spec: {ipAddressPools: [bench]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {run: web}}
  template:
    metadata: {labels: {run: web}}
    spec:
      containers: [{name: web, image: echo, ports: [{containerPort: 80}]}]
`

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-plugin:", err)
		os.Exit(1)
	}
}

func run() error {
	if err := cluster.CheckHost(); err != nil {
		return err
	}
	root, _ := os.Getwd()
	out := filepath.Join(root, "_output", "bench", "plugin")
	opts, err := cluster.Prepare(root, out, nil)
	if err != nil {
		return err
	}
	// The size as released: stripped, as the release builds it.
	stripped := filepath.Join(out, "kubectl-pharos-stripped")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", stripped, "./kubectl-pharos")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the plugin: %w\n%s", err, b)
	}
	size, err := mib(stripped)
	if err != nil {
		return err
	}
	kubectl, err := mib(filepath.Join(opts.KubeBinDir, "kubectl"))
	if err != nil {
		return err
	}
	opts.Prefix, opts.Dir = "pbpl", filepath.Join(out, "lab")
	l, err := cluster.New(opts)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := l.Up(ctx); err != nil {
		return err
	}
	defer func() { _ = l.Down() }()
	if err := l.Apply(ctx, setup); err != nil {
		return err
	}
	var m strings.Builder
	for i := 0; i < *services; i++ {
		fmt.Fprintf(&m, "---\napiVersion: v1\nkind: Service\nmetadata: {name: scale-%04d, namespace: default}\nspec: {type: LoadBalancer, selector: {run: web}, ports: [{port: 80}]}\n", i)
	}
	if err := l.Apply(ctx, m.String()); err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
		out, err := l.Kubectl(ctx, "get", "svc", "-o", `jsonpath={range .items[*]}{.status.conditions[?(@.type=="pharos.io/Announced")].status}{"\n"}{end}`)
		if got := strings.Count(out, "True"); err == nil && got >= *services {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d Services announced after 5 minutes", got, *services)
		}
	}
	target := fmt.Sprintf("scale-%04d", *services/2)
	// Interleaved, so that both see the same load on this noisy machine.
	var explain, get []float64
	for i := 0; i < *runs; i++ {
		t0 := time.Now()
		if out, err := l.KubectlPlugin(ctx, "explain", "svc/"+target); err != nil || !strings.Contains(out, "served:") {
			return fmt.Errorf("kubectl pharos explain svc/%s: %w\n%s", target, err, out)
		}
		explain = append(explain, float64(time.Since(t0).Microseconds())/1000)
		t0 = time.Now()
		if _, err := l.Kubectl(ctx, "get", "svc", target, "-o", "json"); err != nil {
			return err
		}
		get = append(get, float64(time.Since(t0).Microseconds())/1000)
	}
	p95, base := figures.Percentile(explain, 95), figures.Percentile(get, 95)
	figures.Report("ExplainP95", "explain_p95_ms", p95)
	figures.Report("ExplainP50", "explain_p50_ms", figures.Percentile(explain, 50))
	figures.Report("KubectlGetP95", "kubectl_get_svc_p95_ms", base)
	figures.Report("ExplainP95Ratio", "explain_p95_ratio_to_kubectl_get", p95/base)
	figures.Report("PluginBinary", "kubectl_pharos_binary_mib", size)
	figures.Report("PluginBinaryRatio", "kubectl_pharos_binary_ratio_to_kubectl", size/kubectl)
	return nil
}

func mib(path string) (float64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return float64(st.Size()) / (1 << 20), nil
}
