//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
)

const probeApp = `apiVersion: apps/v1
kind: Deployment
metadata: {name: probe, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {run: probe}}
  template:
    metadata: {labels: {run: probe}}
    spec:
      containers:
      - {name: probe, image: echo, ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: probe, namespace: default}
spec:
  type: NodePort
  selector: {run: probe}
  ports: [{port: 80, protocol: TCP}]
`

// TestFaultControls checks the controls that later failover tests rely
// on: each one must really cut or restore what it says.
func TestFaultControls(t *testing.T) {
	ctx := context.Background()
	if err := lab.Apply(ctx, probeApp); err != nil {
		t.Fatal(err)
	}
	nodePort := ""
	cluster.Eventually(t, 60*time.Second, func() error {
		nodePort = strings.TrimSpace(lab.MustKubectl(t, "get", "svc", "probe", "-o", "jsonpath={.spec.ports[0].nodePort}"))
		eps := lab.MustKubectl(t, "get", "endpointslices", "-l", "kubernetes.io/service-name=probe", "-o", "jsonpath={.items[*].endpoints[*].conditions.ready}")
		if nodePort == "" || !strings.Contains(eps, "true") {
			return fmt.Errorf("probe not ready: nodePort %q endpoints %q", nodePort, eps)
		}
		return nil
	})
	n := lab.Nodes[len(lab.Nodes)-1]
	url := "http://" + net.JoinHostPort(n.V4.String(), nodePort) + "/"
	// Reachable means the NodePort answers, and the node answers on its
	// IPv6 address too: a restore that forgets that address (Linux drops
	// it with the link) must not pass.
	reachable := func() error {
		if _, err := lab.HTTPGet(ctx, lab.Client.Name, url); err != nil {
			return err
		}
		_, err := lab.Exec(ctx, lab.Client.Name, "ping", "-6", "-c", "1", "-W", "1", n.V6.String())
		return err
	}
	unreachable := func() error {
		if reachable() == nil {
			return fmt.Errorf("%s still answers", url)
		}
		return nil
	}
	cluster.Eventually(t, 30*time.Second, reachable)

	if err := lab.Partition(n.Name); err != nil {
		t.Fatal(err)
	}
	cluster.Eventually(t, 10*time.Second, unreachable)
	if err := lab.Heal(n.Name); err != nil {
		t.Fatal(err)
	}
	cluster.Eventually(t, 10*time.Second, reachable)

	if err := lab.LinkDown(n.Name); err != nil {
		t.Fatal(err)
	}
	cluster.Eventually(t, 10*time.Second, unreachable)
	if err := lab.LinkUp(n.Name); err != nil {
		t.Fatal(err)
	}
	cluster.Eventually(t, 10*time.Second, reachable)

	if err := lab.CrashNode(n.Name); err != nil {
		t.Fatal(err)
	}
	cluster.Eventually(t, 10*time.Second, unreachable)
	for _, c := range []string{"-agent", "-proxy"} {
		if lab.Running(n.Name + c) {
			t.Errorf("%s%s survived the crash", n.Name, c)
		}
	}
	if err := lab.RecoverNode(ctx, n.Name); err != nil {
		t.Fatal(err)
	}
	cluster.Eventually(t, 30*time.Second, reachable)

	if err := lab.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if out := lab.MustKubectl(t, "get", "nodes", "-o", "name"); strings.Count(out, "node/") != len(lab.Nodes) {
		t.Errorf("after the apiserver restart: %q", out)
	}
}
