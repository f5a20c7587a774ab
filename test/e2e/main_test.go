//go:build e2e

// Package e2e tests Pharos in the lab: a real multi-node cluster in network
// namespaces (test/lab). It needs root on Linux; `make e2e` runs it.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
)

var lab *cluster.Lab

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func TestMain(m *testing.M) {
	os.Exit(setupAndRun(m))
}

func setupAndRun(m *testing.M) int {
	if err := cluster.CheckHost(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	root := repoRoot()
	out := filepath.Join(root, "_output", "e2e")
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		return 1
	}
	opts, err := cluster.Prepare(root, out, nil)
	if err != nil {
		return fail(err)
	}
	opts.Prefix, opts.Dir = "pe2e", filepath.Join(out, "lab")
	lab, err = cluster.New(opts)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := lab.Up(ctx); err != nil {
		return fail(err)
	}
	code := m.Run()
	if code != 0 {
		// Keep the evidence: the lab's directory goes away with it.
		kept := filepath.Join(out, "logs-"+time.Now().UTC().Format("20060102T150405"))
		_ = exec.Command("cp", "-r", lab.LogDir(), kept).Run()
		fmt.Fprintf(os.Stderr, "e2e failed; component logs are in %s\n", kept)
	}
	if os.Getenv("PHAROS_E2E_KEEP") != "" {
		fmt.Fprintf(os.Stderr, "PHAROS_E2E_KEEP set: the lab stays up; tear it down with: go run ./test/lab down --prefix pe2e --dir %s\n", lab.Dir)
		return code
	}
	if err := lab.Down(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e teardown:", err)
		return 1
	}
	return code
}

// eventually polls f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("after %s: %v", timeout, err)
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := lab.Kubectl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
