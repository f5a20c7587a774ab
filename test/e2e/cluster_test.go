//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
)

// tutorial is the lab's demo (its pool, and my-nginx with its LoadBalancer
// Service) plus a NodePort Service for the same pods.
var tutorial = cluster.DemoManifest + `---
apiVersion: v1
kind: Service
metadata: {name: my-nginx-np, namespace: default}
spec:
  type: NodePort
  ipFamilyPolicy: PreferDualStack
  selector: {run: my-nginx}
  ports: [{port: 80, protocol: TCP}]
`

func TestEveryNodeIsReady(t *testing.T) {
	out := lab.MustKubectl(t, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.spec.podCIDRs}{"\n"}{end}`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(lab.Nodes) {
		t.Fatalf("nodes:\n%s", out)
	}
	for _, line := range lines {
		if f := strings.Fields(line); len(f) < 2 || f[1] != "True" {
			t.Errorf("node not Ready: %s", line)
		}
	}
}

func TestTutorialThroughKubeProxyAndPharos(t *testing.T) {
	ctx := context.Background()
	if err := lab.Apply(ctx, tutorial); err != nil {
		t.Fatal(err)
	}
	// Real scheduler, ReplicaSet and EndpointSlice controllers decide the
	// backends; the node agents only run the pods.
	cluster.Eventually(t, 90*time.Second, func() error {
		out, err := lab.Kubectl(ctx, "get", "pods", "-l", "run=my-nginx", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.conditions[?(@.type=="Ready")].status} {.status.podIPs[*].ip}{"\n"}{end}`)
		if err != nil {
			return err
		}
		ready := 0
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) >= 4 && f[2] == "True" {
				ready++
			}
		}
		if ready != 2 {
			return fmt.Errorf("%d of 2 pods ready:\n%s", ready, out)
		}
		return nil
	})
	cluster.Eventually(t, 60*time.Second, func() error {
		out, err := lab.Kubectl(ctx, "get", "endpointslices", "-l", "kubernetes.io/service-name=my-nginx-np", "-o", `jsonpath={range .items[*].endpoints[*]}{.addresses[0]} {.conditions.ready}{"\n"}{end}`)
		if err != nil {
			return err
		}
		if n := strings.Count(out, " true"); n < 2 {
			return fmt.Errorf("EndpointSlices list %d ready endpoints of IPv4 or IPv6, want 2 per family:\n%s", n, out)
		}
		return nil
	})

	clusterIPs := strings.Fields(lab.MustKubectl(t, "get", "svc", "my-nginx-np", "-o", `jsonpath={.spec.clusterIPs[*]}`))
	nodePort := strings.TrimSpace(lab.MustKubectl(t, "get", "svc", "my-nginx-np", "-o", `jsonpath={.spec.ports[0].nodePort}`))
	if len(clusterIPs) != 2 {
		t.Fatalf("clusterIPs %v, want one per family", clusterIPs)
	}
	for _, ip := range clusterIPs {
		for _, n := range lab.Nodes {
			expectPod(t, n.Name, "http://"+net.JoinHostPort(ip, "80")+"/")
		}
	}
	// NodePort from the LAN client, to every node and both families.
	for _, n := range lab.Nodes {
		expectPod(t, lab.Client.Name, "http://"+net.JoinHostPort(n.V4.String(), nodePort)+"/")
		expectPod(t, lab.Client.Name, "http://"+net.JoinHostPort(n.V6.String(), nodePort)+"/")
	}

	// The LoadBalancer gets its addresses from Pharos's controller.
	var ingress []string
	cluster.Eventually(t, 60*time.Second, func() error {
		ingress = strings.Fields(lab.MustKubectl(t, "get", "svc", "my-nginx", "-o", `jsonpath={.status.loadBalancer.ingress[*].ip}`))
		if len(ingress) != 2 {
			return fmt.Errorf("ingress %v", ingress)
		}
		return nil
	})
	pool := []netip.Prefix{netip.MustParsePrefix(cluster.DemoPoolV4), netip.MustParsePrefix(cluster.DemoPoolV6)}
	for i, s := range ingress {
		a, err := netip.ParseAddr(s)
		if err != nil || !pool[i].Contains(a) {
			t.Errorf("ingress %s is not in %s", s, pool[i])
		}
		// kube-proxy on each node carries the address to the pods.
		expectPod(t, lab.Nodes[0].Name, "http://"+net.JoinHostPort(s, "80")+"/")
	}
	cond := lab.MustKubectl(t, "get", "svc", "my-nginx", "-o", `jsonpath={.status.conditions[?(@.type=="pharos.io/IPAllocated")].reason}`)
	if strings.TrimSpace(cond) != "Allocated" {
		t.Errorf("condition reason %q", cond)
	}
}

// expectPod fetches url from a namespace until a my-nginx pod answers.
func expectPod(t *testing.T, ns, url string) {
	t.Helper()
	cluster.Eventually(t, 30*time.Second, func() error {
		body, err := lab.HTTPGet(context.Background(), ns, url)
		if err != nil {
			return err
		}
		if !strings.Contains(body, "pod=my-nginx-") {
			return fmt.Errorf("%s from %s answered %q", url, ns, body)
		}
		return nil
	})
}
