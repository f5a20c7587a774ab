package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// HelmBinary finds the pinned helm: $HELM, else the one `make tools`
// installs under the user's cache.
func HelmBinary() (string, error) {
	if h := os.Getenv("HELM"); h != "" {
		return h, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	h := filepath.Join(cache, "pharos", "tools", "bin", "helm")
	if _, err := os.Stat(h); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("helm not found at %s: run `make tools` (or set HELM)", h)
	}
	return h, nil
}

// Helm runs helm as admin from the client namespace (the apiserver is on
// the lab's LAN), with its config and cache inside the lab's directory.
func (l *Lab) Helm(ctx context.Context, helm string, args ...string) (string, error) {
	home := filepath.Join(l.Dir, "helm")
	argv := []string{"env",
		"KUBECONFIG=" + l.Kubeconfig(),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
		helm}
	return l.Exec(ctx, l.Client.Name, append(argv, args...)...)
}

// ChartValuesDemoPool are helm flags that give the chart the demo's pool
// (both families) and its L2Advertisement.
func ChartValuesDemoPool() []string {
	return []string{"--set", "pools[0].name=demo", "--set", fmt.Sprintf("pools[0].addresses={%s,%s}", DemoPoolV4, DemoPoolV6)}
}
