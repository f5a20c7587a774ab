// Command helm times a user's first minute with the chart in the lab
// (warm: binaries built, nothing of Pharos installed):
// helm_install_to_ready_s runs from `helm install` (with a pool in values)
// until a LoadBalancer Service created right after it answers on its
// addresses from the LAN; helm_uninstall_s is `helm uninstall --wait`.
// Each is the median of -runs trials in one lab. The machine is noisy, so
// the same run also times a baseline, the tutorial's Deployment alone
// going from apply to available (helm_baseline_app_ready_s), and reports
// helm_install_to_ready_ratio against it. It needs root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
)

func main() {
	runs := flag.Int("runs", 3, "trials")
	flag.Parse()
	if err := run(*runs); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

func run(runs int) error {
	if err := cluster.CheckHost(); err != nil {
		return err
	}
	helm, err := cluster.HelmBinary()
	if err != nil {
		return err
	}
	root, _ := os.Getwd()
	out := filepath.Join(root, "_output", "bench", "helm")
	opts, err := cluster.Prepare(root, out, nil)
	if err != nil {
		return err
	}
	opts.Prefix, opts.Dir, opts.Pharos = "pbenchh", filepath.Join(out, "lab"), cluster.PharosNone
	l, err := cluster.New(opts)
	if err != nil {
		return err
	}
	defer func() { _ = l.Down() }()
	ctx := context.Background()
	if err := l.Up(ctx); err != nil {
		return err
	}
	chart := filepath.Join(root, "charts", "pharos")
	var baseline, ready, uninstall []float64
	for i := 0; i < runs; i++ {
		start := time.Now()
		if err := l.Apply(ctx, cluster.DemoApp); err != nil {
			return err
		}
		if _, err := l.Kubectl(ctx, "rollout", "status", "deploy/my-nginx", "--timeout=120s"); err != nil {
			return err
		}
		baseline = append(baseline, time.Since(start).Seconds())
		if _, err := l.Kubectl(ctx, "delete", "deploy,svc", "my-nginx", "--wait"); err != nil {
			return err
		}
	}
	for i := 0; i < runs; i++ {
		start := time.Now()
		args := append([]string{"install", "pharos", chart, "-n", "pharos-system", "--create-namespace", "--timeout", "3m"}, cluster.ChartValuesDemoPool()...)
		if out, err := l.Helm(ctx, helm, args...); err != nil {
			return fmt.Errorf("helm install: %w\n%s", err, out)
		}
		if err := l.Apply(ctx, cluster.DemoApp); err != nil {
			return err
		}
		if _, err := l.WaitDemoAnswers(ctx, 2*time.Minute); err != nil {
			return err
		}
		ready = append(ready, time.Since(start).Seconds())
		fmt.Fprintf(os.Stderr, "trial %d: ready after %.2fs\n", i+1, ready[i])

		start = time.Now()
		if out, err := l.Helm(ctx, helm, "uninstall", "pharos", "-n", "pharos-system", "--wait", "--timeout", "3m"); err != nil {
			return fmt.Errorf("helm uninstall: %w\n%s", err, out)
		}
		uninstall = append(uninstall, time.Since(start).Seconds())
		if _, err := l.Kubectl(ctx, "delete", "deploy,svc", "my-nginx", "--wait"); err != nil {
			return err
		}
	}
	fmt.Printf("BenchmarkHelmInstallToReady 1 0 ns/op %.4g helm_install_to_ready_s\n", median(ready))
	fmt.Printf("BenchmarkHelmUninstall 1 0 ns/op %.4g helm_uninstall_s\n", median(uninstall))
	fmt.Printf("BenchmarkHelmBaselineAppReady 1 0 ns/op %.4g helm_baseline_app_ready_s\n", median(baseline))
	fmt.Printf("BenchmarkHelmInstallToReadyRatio 1 0 ns/op %.4g helm_install_to_ready_ratio\n", median(ready)/median(baseline))
	return nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
