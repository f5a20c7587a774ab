package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// SuiteOptions describe a test suite that runs in a lab of its own.
type SuiteOptions struct {
	// Name appears in messages, e.g. "e2e".
	Name string
	// Prefix names the lab's namespaces; two suites that may run one after
	// the other use different ones.
	Prefix string
	// Out is where binaries, the lab's state and kept logs go.
	Out string
	// Pharos is Options.Pharos for the lab.
	Pharos string
	// IPv6First is Options.IPv6First for the lab.
	IPv6First bool
	// NoKubeProxy, SpeakerArgs and ControllerArgs are the lab's Options
	// of the same names.
	NoKubeProxy                 bool
	SpeakerArgs, ControllerArgs []string
	// Image runs Pharos's pods from its image (Options.PharosImageArchive):
	// the archive in $PHAROS_IMAGE_ARCHIVE, else one that hack/image
	// builds into Out/image/pharos.tar (buildah, as make image-archive).
	Image bool
}

// RunSuite is a TestMain body: it builds what the lab needs, brings the
// lab up, stores it in *lab, runs the tests, keeps the component logs if
// they failed, and tears the lab down unless PHAROS_E2E_KEEP is set. It
// returns the exit code.
func RunSuite(m interface{ Run() int }, repoRoot string, o SuiteOptions, lab **Lab) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s setup: %v\n", o.Name, err)
		return 1
	}
	if err := CheckHost(); err != nil {
		return fail(err)
	}
	opts, err := Prepare(repoRoot, o.Out, nil)
	if err != nil {
		return fail(err)
	}
	if o.Image {
		opts.PharosImageArchive = os.Getenv("PHAROS_IMAGE_ARCHIVE")
		if opts.PharosImageArchive == "" {
			if opts.PharosImageArchive, err = BuildImage(repoRoot, filepath.Join(o.Out, "image", "pharos.tar")); err != nil {
				return fail(err)
			}
		}
	}
	opts.Prefix, opts.Dir, opts.Pharos, opts.IPv6First = o.Prefix, filepath.Join(o.Out, "lab"), o.Pharos, o.IPv6First
	opts.NoKubeProxy, opts.SpeakerArgs, opts.ControllerArgs = o.NoKubeProxy, o.SpeakerArgs, o.ControllerArgs
	l, err := New(opts)
	if err != nil {
		return fail(err)
	}
	*lab = l
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := l.Up(ctx); err != nil {
		_ = l.Down()
		return fail(err)
	}
	code := m.Run()
	if code != 0 {
		// Keep the evidence: the lab's directory goes away with it.
		kept := filepath.Join(o.Out, "logs-"+time.Now().UTC().Format("20060102T150405"))
		_ = exec.Command("cp", "-r", l.LogDir(), kept).Run()
		fmt.Fprintf(os.Stderr, "%s failed; component logs are in %s\n", o.Name, kept)
	}
	if os.Getenv("PHAROS_E2E_KEEP") != "" {
		fmt.Fprintf(os.Stderr, "PHAROS_E2E_KEEP set: the lab stays up; tear it down with: go run ./test/lab down --prefix %s --dir %s\n", o.Prefix, l.Dir)
		return code
	}
	if err := l.Down(); err != nil {
		fmt.Fprintf(os.Stderr, "%s teardown: %v\n", o.Name, err)
		return 1
	}
	return code
}

// Eventually polls f every 250 ms until it returns nil, and fails the test
// with f's last error once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
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

// MustKubectl runs kubectl as admin and fails the test if it fails.
func (l *Lab) MustKubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := l.Kubectl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
