package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Kubectl runs the lab's kubectl as admin from inside the client
// namespace (the root namespace cannot reach the LAN).
func (l *Lab) Kubectl(ctx context.Context, args ...string) (string, error) {
	return l.Exec(ctx, l.Client.Name, append([]string{l.bin("kubectl"), "--kubeconfig", l.Kubeconfig()}, args...)...)
}

// announcedFrom finds the node in a pharos.io/Announced message
// ("198.18.100.0 from node plab-n1 on eth0 (ARP); ...").
var announcedFrom = regexp.MustCompile(`(\S+) from node (\S+) on`)

// AnnouncingNode returns the node that the Announced condition of Service
// default/svc names for ip.
func (l *Lab) AnnouncingNode(ctx context.Context, svc, ip string) (string, error) {
	msg, err := l.Kubectl(ctx, "get", "svc", svc, "-o", `jsonpath={.status.conditions[?(@.type=="pharos.io/Announced")].message}`)
	if err != nil {
		return "", err
	}
	for _, m := range announcedFrom.FindAllStringSubmatch(msg, -1) {
		if m[1] == ip {
			return m[2], nil
		}
	}
	return "", fmt.Errorf("%s of Service %s is not announced: %q", ip, svc, msg)
}

// Exec runs a command in one of the lab's namespaces.
func (l *Lab) Exec(ctx context.Context, ns string, argv ...string) (string, error) {
	var out strings.Builder
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), ns, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// KubectlPlugin runs `kubectl pharos ARGS` as admin from the client
// namespace, found by kubectl's own plugin lookup on PATH as a user's
// would be. (kubectl takes no flags before a plugin's name: they go to
// the plugin.)
func (l *Lab) KubectlPlugin(ctx context.Context, args ...string) (string, error) {
	if l.PluginBinary == "" {
		return "", fmt.Errorf("the lab has no kubectl-pharos binary (Options.PluginBinary)")
	}
	path := filepath.Dir(l.PluginBinary) + ":" + os.Getenv("PATH")
	return l.Exec(ctx, l.Client.Name, append([]string{"env", "PATH=" + path, l.bin("kubectl"), "pharos", "--kubeconfig", l.Kubeconfig()}, args...)...)
}

// Apply applies a manifest as admin.
func (l *Lab) Apply(ctx context.Context, manifest string) error { return l.apply(ctx, manifest) }

func (l *Lab) apply(ctx context.Context, manifest string) error {
	f, err := os.CreateTemp(l.Dir, "manifest-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(manifest); err != nil {
		return err
	}
	_ = f.Close()
	_, err = l.Kubectl(ctx, "apply", "-f", f.Name())
	return err
}
