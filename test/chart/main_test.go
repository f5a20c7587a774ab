// Package chart tests the Helm chart charts/pharos: helm lint, what
// `helm template` renders for the values users set, a server-side dry-run of
// every rendered object against a real kube-apiserver, a real install and
// upgrade through helm, and the chart's RBAC against the kubebuilder:rbac
// markers of the code.
//
// helm comes from $HELM, else from the tools directory that `make tools`
// fills ($XDG_CACHE_HOME or ~/.cache, then /pharos/tools/bin/helm).
package chart_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/pharos-lb/pharos/internal/testenv"
)

const (
	release   = "pharos"
	releaseNS = "pharos-system"
	// kubeVersion is what `helm template` assumes in these tests: the
	// pinned one of the repository (Helm's own default is v1.20).
	kubeVersion = "1.37.2"
)

var (
	chartDir = filepath.Join(testenv.RepoRoot(), "charts", "pharos")
	// fullValues turns on every optional part of the chart (also used by
	// `make helm-lint`).
	fullValues = filepath.Join(testenv.RepoRoot(), "test", "chart", "testdata", "full-values.yaml")

	env     *envtest.Environment
	restCfg *rest.Config
	k8s     client.Client
	scheme  = runtime.NewScheme()
)

// TestMain starts one kube-apiserver and etcd for the package, with the
// chart's CRDs, and creates the release namespace.
func TestMain(m *testing.M) {
	_ = clientgoscheme.AddToScheme(scheme)
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	if err := start(); err != nil {
		fmt.Fprintln(os.Stderr, "test/chart needs a real kube-apiserver:", err)
		if env != nil {
			_ = env.Stop()
		}
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func start() error {
	assets, err := testenv.Assets()
	if err != nil {
		return err
	}
	env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		// The chart's copy, which is what helm installs.
		CRDDirectoryPaths:     []string{filepath.Join(chartDir, "crds")},
		ErrorIfCRDPathMissing: true,
	}
	env.ControlPlane.GetAPIServer().Configure().
		Set("service-cluster-ip-range", testenv.ServiceCIDRv4+","+testenv.ServiceCIDRv6).
		// A webhook Service is then reached through its endpoints, not its
		// ClusterIP: with no endpoints (no controller runs here) a call
		// fails at once, and nothing is ever sent off this machine.
		Set("enable-aggregator-routing", "true")
	if restCfg, err = env.Start(); err != nil {
		return fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	if k8s, err = client.New(restCfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	return k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNS}})
}

// helmBin returns the helm binary, or fails the test saying how to get it.
func helmBin(t *testing.T) string {
	t.Helper()
	path := os.Getenv("HELM")
	if path == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatalf("no $HELM and no home directory to find helm in: %v", err)
			}
			cache = filepath.Join(home, ".cache")
		}
		path = filepath.Join(cache, "pharos", "tools", "bin", "helm")
	}
	if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("helm not found at %s: run `make tools`, which installs helm v3.22.0 there, or set HELM to a helm binary", path)
	}
	return path
}

// runHelm runs helm with args and returns its standard output; on failure
// the error holds its standard error.
func runHelm(t *testing.T, extraEnv []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Keep helm's own files (repositories, cache) out of the user's.
	dir := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HELM_DATA_HOME="+filepath.Join(dir, "data"))
	cmd.Env = append(cmd.Env, extraEnv...)
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// render runs `helm template` for release "pharos" in "pharos-system" with
// extra arguments (--set, -f, --is-upgrade, ...) and returns the objects.
func render(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := tryRender(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func tryRender(t *testing.T, args ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	return tryRenderRelease(t, release, args...)
}

func tryRenderRelease(t *testing.T, name string, args ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	out, err := runHelm(t, nil, append([]string{"template", name, chartDir, "-n", releaseNS, "--kube-version", kubeVersion}, args...)...)
	if err != nil {
		return nil, err
	}
	return decodeYAML(out)
}

// decodeYAML splits a multi-document YAML stream into objects, skipping
// empty documents.
func decodeYAML(s string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(s), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("decoding YAML: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// find returns the object of that kind and name, or fails.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	if o := lookup(objs, kind, name); o != nil {
		return o
	}
	var have []string
	for _, o := range objs {
		have = append(have, o.GetKind()+"/"+o.GetName())
	}
	t.Fatalf("no %s %q rendered; have %v", kind, name, have)
	return nil
}

func lookup(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// into converts an unstructured object into a typed one.
func into[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &v, true); err != nil {
		t.Fatalf("%s/%s: %v", o.GetKind(), o.GetName(), err)
	}
	return &v
}
