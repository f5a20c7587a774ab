// Command lab times the lab: lab_up_warm_s is a full `lab up` (network,
// control plane, nodes, Pharos, every node Ready) with the Kubernetes
// binaries already cached; demo_external_ip_warm_s adds the tutorial until
// its Service has an EXTERNAL-IP from Pharos and its pods answer. Each is
// the median of -runs trials. It needs root, like the lab.
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
	runs := flag.Int("runs", 3, "trials per figure")
	cold := flag.Bool("cold", false, "measure lab_up_cold_s instead: build the Kubernetes binaries into an empty cache (and an empty Go build cache), then bring the lab up once")
	flag.Parse()
	if *cold {
		if err := runCold(); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*runs); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

func run(runs int) error {
	if err := cluster.CheckHost(); err != nil {
		return err
	}
	root, _ := os.Getwd()
	opts, err := cluster.Prepare(root, filepath.Join(root, "_output", "bench", "lab"), nil)
	if err != nil {
		return err
	}
	opts.Prefix, opts.Dir = "pbench", filepath.Join(root, "_output", "bench", "lab", "lab")
	l, err := cluster.New(opts)
	if err != nil {
		return err
	}
	defer func() { _ = l.Down() }()
	ctx := context.Background()
	var up, demo []float64
	for i := 0; i < runs; i++ {
		start := time.Now()
		if err := l.Up(ctx); err != nil {
			return err
		}
		up = append(up, time.Since(start).Seconds())
		if err := l.Apply(ctx, cluster.DemoManifest); err != nil {
			return err
		}
		if _, err := l.WaitDemoAnswers(ctx, 120*time.Second); err != nil {
			return err
		}
		demo = append(demo, time.Since(start).Seconds())
	}
	fmt.Printf("BenchmarkLabUpWarm 1 0 ns/op %.4g lab_up_warm_s\n", median(up))
	fmt.Printf("BenchmarkDemoExternalIPWarm 1 0 ns/op %.4g demo_external_ip_warm_s\n", median(demo))
	return nil
}

// runCold times what a newcomer's first `make lab` costs: building the
// pinned Kubernetes binaries with nothing cached, then the lab.
func runCold() error {
	if err := cluster.CheckHost(); err != nil {
		return err
	}
	root, _ := os.Getwd()
	tmp, err := os.MkdirTemp("", "pharos-cold-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	opts, err := cluster.Prepare(root, tmp, []string{"XDG_CACHE_HOME=" + filepath.Join(tmp, "cache"), "GOCACHE=" + filepath.Join(tmp, "gocache")})
	if err != nil {
		return fmt.Errorf("cold build: %w", err)
	}
	opts.Prefix, opts.Dir = "pbench", filepath.Join(root, "_output", "bench", "lab", "lab")
	l, err := cluster.New(opts)
	if err != nil {
		return err
	}
	defer func() { _ = l.Down() }()
	if err := l.Up(context.Background()); err != nil {
		return err
	}
	fmt.Printf("BenchmarkLabUpCold 1 0 ns/op %.4g lab_up_cold_s\n", time.Since(start).Seconds())
	return nil
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}
