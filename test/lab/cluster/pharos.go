package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// installPharos installs the CRDs and RBAC from config/ and starts the
// controller and speakers under their own identities, bound only to their
// ClusterRoles and Roles.
func (l *Lab) installPharos(ctx context.Context) error {
	if l.ControllerBinary == "" || l.Pharos == PharosNone {
		return nil
	}
	// The namespace first: config/rbac has Roles in it.
	if err := l.apply(ctx, "apiVersion: v1\nkind: Namespace\nmetadata: {name: pharos-system}\n"); err != nil {
		return err
	}
	for _, dir := range []string{"config/crd/bases", "config/rbac", "config/rbac/speaker"} {
		if _, err := l.Kubectl(ctx, "apply", "-f", filepath.Join(l.RepoRoot, dir)); err != nil {
			return err
		}
	}
	// Each identity gets its ClusterRole, and the Roles that config/rbac
	// has for it. The memberlist key Secret is the controller's to create.
	var manifest strings.Builder
	for _, b := range []struct{ identity, kind, namespace string }{
		{"pharos-controller", "ClusterRole", ""},
		{"pharos-speaker", "ClusterRole", ""},
		{"pharos-controller", "Role", "pharos-system"},
		{"pharos-controller", "Role", "kube-system"},
		{"pharos-speaker", "Role", "pharos-system"},
	} {
		ns := ""
		if b.namespace != "" {
			ns = ", namespace: " + b.namespace
		}
		fmt.Fprintf(&manifest, `---
apiVersion: rbac.authorization.k8s.io/v1
kind: %sBinding
metadata: {name: %s%s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: %s, name: %s}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: %s}
`, b.kind, b.identity, ns, b.kind, b.identity, b.identity)
	}
	if err := l.apply(ctx, manifest.String()); err != nil {
		return err
	}
	if _, err := l.Kubectl(ctx, "wait", "--for=condition=Established", "crd/ipaddresspools.pharos.io", "--timeout=30s"); err != nil {
		return err
	}
	if err := l.Start(Process{Name: "pharos-controller", Netns: l.Control.Name, Restart: true, Argv: append([]string{l.ControllerBinary,
		"--kubeconfig", filepath.Join(l.Dir, "pharos-controller.kubeconfig"),
		"--leader-election-namespace", "pharos-system",
		// Metrics on the LAN, for the lab's Prometheus (prometheus.go).
		"--metrics-bind-address", l.ControllerMetricsAddr(), "--health-probe-bind-address", "127.0.0.1:7473",
	}, l.ControllerArgs...)}); err != nil {
		return err
	}
	if l.SpeakerBinary == "" {
		return nil
	}
	for _, n := range l.Nodes {
		argv := []string{l.SpeakerBinary,
			"--node-name", n.Name,
			"--kubeconfig", filepath.Join(l.Dir, "pharos-speaker.kubeconfig"),
			"--memberlist-secret", "pharos-system/pharos-memberlist",
			"--metrics-bind-address", l.SpeakerMetricsAddr(n),
		}
		if !l.IPv6First {
			argv = append(argv, "--bind-addr", n.V4.String())
		}
		// Otherwise the speaker binds memberlist to the Node's first
		// InternalIP, as it does when the chart runs it: IPv6 here.
		argv = append(argv, l.SpeakerArgs...)
		if err := l.Start(Process{Name: n.Name + "-speaker", Netns: n.Name, Restart: true, Argv: argv}); err != nil {
			return err
		}
	}
	return nil
}
