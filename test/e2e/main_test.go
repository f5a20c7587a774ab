//go:build e2e

// Package e2e tests Pharos in the lab: a real multi-node cluster in network
// namespaces (test/lab). It needs root on Linux; `make e2e` runs it.
package e2e

import (
	"context"
	"os"
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
	root := repoRoot()
	return cluster.RunSuite(m, root, cluster.SuiteOptions{Name: "e2e", Prefix: "pe2e", Out: filepath.Join(root, "_output", "e2e")}, &lab)
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
