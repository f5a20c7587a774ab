package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

func (l *Lab) bin(name string) string { return filepath.Join(l.KubeBinDir, name) }

// startControlPlane starts etcd, kube-apiserver, kube-controller-manager
// and kube-scheduler in the control-plane namespace.
func (l *Lab) startControlPlane(ctx context.Context) error {
	cp := l.Control.Name
	pki := l.pkiDir()
	servingCert, servingKey := l.servingCert()
	if err := l.Start(Process{Name: "etcd", Netns: cp, Argv: []string{l.bin("etcd"),
		"--data-dir", filepath.Join(l.Dir, "etcd"),
		"--listen-client-urls", etcdClient, "--advertise-client-urls", etcdClient,
		"--listen-peer-urls", etcdPeerURL, "--initial-advertise-peer-urls", etcdPeerURL,
		"--initial-cluster", "default=" + etcdPeerURL,
	}}); err != nil {
		return err
	}
	if err := l.Start(Process{Name: "kube-apiserver", Netns: cp, Argv: []string{l.bin("kube-apiserver"),
		"--etcd-servers", etcdClient,
		"--bind-address", l.Control.V4.String(), "--advertise-address", l.Control.V4.String(),
		"--secure-port", fmt.Sprint(APIPort), "--cert-dir", pki,
		"--tls-cert-file", servingCert, "--tls-private-key-file", servingKey,
		// Webhooks and aggregated APIs are called at their endpoints'
		// pod addresses: the control plane's namespace has routes to the
		// pod CIDRs but no kube-proxy for ClusterIPs.
		"--enable-aggregator-routing=true",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(pki, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(pki, "sa.key"),
		"--token-auth-file", filepath.Join(pki, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", ServiceV4.String() + "," + ServiceV6.String(),
		"--service-node-port-range", "30000-32767",
		"--allow-privileged=true",
	}}); err != nil {
		return err
	}
	if err := l.waitAPIServer(ctx, 90*time.Second); err != nil {
		return err
	}
	if err := l.Start(Process{Name: "kube-controller-manager", Netns: cp, Argv: []string{l.bin("kube-controller-manager"),
		"--kubeconfig", filepath.Join(l.Dir, "kube-controller-manager.kubeconfig"),
		"--authentication-kubeconfig", filepath.Join(l.Dir, "kube-controller-manager.kubeconfig"),
		"--authorization-kubeconfig", filepath.Join(l.Dir, "kube-controller-manager.kubeconfig"),
		"--leader-elect=false", "--bind-address", "127.0.0.1",
		"--service-account-private-key-file", filepath.Join(pki, "sa.key"),
		"--root-ca-file", l.CAFile(),
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range", ServiceV4.String() + "," + ServiceV6.String(),
		"--allocate-node-cidrs=false",
		// Pod CIDRs come from the node agents; there is no storage.
		"--controllers", "*,-node-ipam-controller,-certificatesigningrequest-signing-controller,-certificatesigningrequest-approving-controller,-persistentvolume-binder-controller,-persistentvolume-attach-detach-controller",
	}}); err != nil {
		return err
	}
	return l.Start(Process{Name: "kube-scheduler", Netns: cp, Argv: []string{l.bin("kube-scheduler"),
		"--kubeconfig", filepath.Join(l.Dir, "kube-scheduler.kubeconfig"),
		"--authentication-kubeconfig", filepath.Join(l.Dir, "kube-scheduler.kubeconfig"),
		"--authorization-kubeconfig", filepath.Join(l.Dir, "kube-scheduler.kubeconfig"),
		"--leader-elect=false", "--bind-address", "127.0.0.1",
	}})
}

// waitAPIServer polls /readyz from inside the LAN until it answers ok.
func (l *Lab) waitAPIServer(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if !l.Running("kube-apiserver") {
			return fmt.Errorf("kube-apiserver exited; see %s", filepath.Join(l.LogDir(), "kube-apiserver.log"))
		}
		out, err := l.Kubectl(ctx, "get", "--raw", "/readyz")
		if err == nil && strings.TrimSpace(out) == "ok" {
			return nil
		}
		last = strings.TrimSpace(out)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("kube-apiserver not ready after %s: %s", timeout, last)
}
