package cluster

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRepo makes a repository root whose hack/kube-bins/ensure.sh is body.
func fakeRepo(t *testing.T, body string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "hack", "kube-bins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ensure.sh"), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// The error of a failed ensure.sh carries its own message (here the one it
// prints when etcd is missing), and its progress still reaches the user.
func TestEnsureKubeBinsFailureCarriesStderr(t *testing.T) {
	root := fakeRepo(t, `echo "building kube-apiserver" >&2
echo "etcd not found: install Debian's etcd-server" >&2
exit 1
`)
	var progress bytes.Buffer
	_, err := EnsureKubeBins(root, nil, &progress)
	if err == nil {
		t.Fatal("EnsureKubeBins succeeded; want the script's failure")
	}
	for _, want := range []string{"hack/kube-bins/ensure.sh", "exit status 1", "etcd not found: install Debian's etcd-server"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Errorf("error %q does not wrap the *exec.ExitError with code 1", err)
	}
	if got := progress.String(); !strings.Contains(got, "building kube-apiserver\n") {
		t.Errorf("progress = %q; want the script's stderr as it came", got)
	}
}

func TestEnsureKubeBinsReturnsDirectory(t *testing.T) {
	root := fakeRepo(t, `echo "building" >&2; echo "/cache/kube/v1"`)
	dir, err := EnsureKubeBins(root, []string{"X=1"}, nil)
	if err != nil || dir != "/cache/kube/v1" {
		t.Fatalf("EnsureKubeBins = %q, %v; want /cache/kube/v1 (stdout only, trimmed)", dir, err)
	}
}

func TestEnsureKubeBinsOutsideRepository(t *testing.T) {
	_, err := EnsureKubeBins(t.TempDir(), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "run from the repository root") {
		t.Fatalf("error %v; want a hint to run from the repository root", err)
	}
}

// A long stderr is cut to its end, from a line start; a multi-line one is
// set on lines of its own.
func TestRunHelperKeepsTheEndOfStderr(t *testing.T) {
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 2000 ]; do echo "line $i" >&2; i=$((i+1)); done; echo "the real cause" >&2; exit 3`)
	_, err := runHelper(cmd, nil)
	if err == nil {
		t.Fatal("runHelper succeeded")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "exit status 3; its output ends with:\n...\nline ") {
		t.Errorf("error starts %q", msg[:min(len(msg), 80)])
	}
	if !strings.HasSuffix(msg, "line 1999\nthe real cause") {
		t.Errorf("error ends %q", msg[max(0, len(msg)-80):])
	}
	if len(msg) > helperStderrMax+100 {
		t.Errorf("error is %d bytes; want about %d", len(msg), helperStderrMax)
	}
}

func TestRunHelperSilentFailure(t *testing.T) {
	_, err := runHelper(exec.Command("sh", "-c", "exit 2"), nil)
	if err == nil || err.Error() != "exit status 2" {
		t.Fatalf("error %v; want exit status 2 alone", err)
	}
}
