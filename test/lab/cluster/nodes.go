package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// startNodes starts each node's agent and kube-proxy.
func (l *Lab) startNodes(context.Context) error {
	for _, n := range l.Nodes {
		argv := []string{
			l.LabBinary, "agent",
			"--kubeconfig", filepath.Join(l.Dir, "node-agent.kubeconfig"),
			"--node", n.Name,
			"--node-ips", n.V4.String() + "," + n.V6.String(),
			"--pod-cidrs", n.PodV4.String() + "," + n.PodV6.String(),
			"--bridge", "cbr0",
			"--pod-netns-prefix", n.Name + "-p",
			"--log-dir", l.LogDir(),
		}
		if l.IPv6First {
			argv = append(argv, "--ipv6-first")
		}
		withPharos := func(args ...string) {
			argv = append(append(argv, args...),
				"--apiserver", l.APIServer(),
				"--apiserver-ca", l.CAFile(),
				"--state-dir", filepath.Join(l.PodStateDir(), n.Name),
			)
		}
		if im := l.image; im != nil {
			withPharos("--pharos-image", im.repository,
				"--pharos-rootfs", l.ImageRootfs(),
				"--pharos-image-ref", im.ref,
				"--pharos-user", fmt.Sprintf("%d:%d", im.uid, im.gid))
		} else if bins := l.pharosBinaries(); bins != "" {
			withPharos("--pharos-image", PharosImage,
				"--pharos-binaries", bins,
				"--pharos-user", fmt.Sprintf("%d:%d", PharosImageUser, PharosImageUser))
		}
		if err := l.Start(Process{Name: n.Name + "-agent", Netns: n.Name, MountRoot: true, Argv: argv}); err != nil {
			return err
		}
		if l.NoKubeProxy {
			continue
		}
		cfg := filepath.Join(l.Dir, n.Name+"-proxy.yaml")
		if err := os.WriteFile(cfg, []byte(l.kubeProxyConfig(n)), 0o644); err != nil {
			return err
		}
		if err := l.Start(Process{Name: n.Name + "-proxy", Netns: n.Name, Argv: []string{l.bin("kube-proxy"), "--config", cfg}}); err != nil {
			return err
		}
	}
	return nil
}

// pharosBinaries is the agents' --pharos-binaries: which binary stands in
// for each path of Pharos's image; empty if the lab has none.
func (l *Lab) pharosBinaries() string {
	var kv []string
	if l.ControllerBinary != "" {
		kv = append(kv, "/controller="+l.ControllerBinary)
	}
	if l.SpeakerBinary != "" {
		kv = append(kv, "/speaker="+l.SpeakerBinary)
	}
	return strings.Join(kv, ",")
}

func (l *Lab) kubeProxyConfig(n Node) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: %s
clientConnection:
  kubeconfig: %s
clusterCIDR: %s,%s
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, n.Name, filepath.Join(l.Dir, "kube-proxy.kubeconfig"), ClusterV4, ClusterV6)
}
