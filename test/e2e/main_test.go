//go:build e2e

// Package e2e tests Pharos in the lab: a real multi-node cluster in network
// namespaces (test/lab). It needs root on Linux; `make e2e` runs it.
package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

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
