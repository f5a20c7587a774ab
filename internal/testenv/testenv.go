// Package testenv starts a real kube-apiserver and etcd for integration
// tests, with Pharos's CRDs installed. The binaries are the pinned
// Kubernetes v1.37.2 ones that hack/kube-bins/ensure.sh builds and caches;
// `make test` provides them through KUBEBUILDER_ASSETS.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Addresses used by the apiserver for ClusterIPs: inside the benchmarking
// range 198.18.0.0/15 and the documentation range 2001:db8::/32, like every
// address Pharos's tests use.
const (
	ServiceCIDRv4 = "198.19.0.0/16"
	ServiceCIDRv6 = "2001:db8:ffff::/112"
)

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Assets returns the directory with kube-apiserver and etcd: the
// KUBEBUILDER_ASSETS variable, else the version cache that `make test`
// fills.
func Assets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	out, err := exec.Command(filepath.Join(RepoRoot(), "hack", "kube-bins", "ensure.sh"), "kube-apiserver").Output()
	if err != nil {
		// ensure.sh says on stderr what is missing (etcd, say): pass it on,
		// "exit status 1" alone says nothing.
		var exit *exec.ExitError
		if errors.As(err, &exit) && len(exit.Stderr) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(exit.Stderr)))
		}
		return "", fmt.Errorf("no kube-apiserver/etcd for the integration tests: run `make test`, or set KUBEBUILDER_ASSETS to a directory with both: %w", err)
	}
	dir := string(out)
	for len(dir) > 0 && (dir[len(dir)-1] == '\n') {
		dir = dir[:len(dir)-1]
	}
	return dir, nil
}

// Start starts etcd and a dual-stack kube-apiserver with the CRDs of
// config/crd/bases. Stop the returned environment when done.
func Start() (*envtest.Environment, *rest.Config, error) {
	assets, err := Assets()
	if err != nil {
		return nil, nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	env.ControlPlane.GetAPIServer().Configure().
		Set("service-cluster-ip-range", ServiceCIDRv4+","+ServiceCIDRv6)
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	// Tests create thousands of objects; the apiserver's own flow control
	// is the limit we want to see, not the client's.
	cfg.QPS, cfg.Burst = 1000, 2000
	return env, cfg, nil
}
