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
	"strings"
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
	bins := filepath.Join(out, "bin")
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		return 1
	}
	for pkg, name := range map[string]string{"./test/lab": "lab", "./controller": "controller", "./speaker": "speaker"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bins, name), pkg)
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fail(fmt.Errorf("building %s: %w", pkg, err))
		}
	}
	kube, err := exec.Command(filepath.Join(root, "hack", "kube-bins", "ensure.sh")).Output()
	if err != nil {
		return fail(fmt.Errorf("hack/kube-bins/ensure.sh: %w", err))
	}
	lab, err = cluster.New(cluster.Options{
		Prefix:           "pe2e",
		Dir:              filepath.Join(out, "lab"),
		KubeBinDir:       strings.TrimSpace(string(kube)),
		LabBinary:        filepath.Join(bins, "lab"),
		ControllerBinary: filepath.Join(bins, "controller"),
		SpeakerBinary:    filepath.Join(bins, "speaker"),
		RepoRoot:         root,
		Out:              os.Stderr,
	})
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
