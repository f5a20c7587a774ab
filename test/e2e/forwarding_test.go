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

const directApp = `apiVersion: apps/v1
kind: Deployment
metadata: {name: fwd-web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {run: fwd-web}}
  template:
    metadata: {labels: {run: fwd-web}}
    spec:
      containers:
      - {name: fwd-web, image: echo, ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: fwd-web, namespace: default, annotations: {pharos.io/forwarding: direct}}
spec:
  type: LoadBalancer
  ipFamilyPolicy: PreferDualStack
  selector: {run: fwd-web}
  ports: [{port: 80, protocol: TCP}]
`

// TestDirectForwardingBesideKubeProxy: in a cluster whose kube-proxy
// carries Services (the lab's default), one Service asks for Pharos's own
// path with the pharos.io/forwarding annotation. Its status says ipMode
// Proxy, kube-proxy's table (as nft lists it) never mentions its address,
// the announcing node's Pharos table does, and the LAN client reaches the
// pods in both families. In nodeport mode the announcing node hands the
// address to kube-proxy's NodePort (nft shows the rewrite), the client
// still reaches the pods, and source ranges hold. Back to kube-proxy by
// the annotation, the ipMode
// is VIP again, kube-proxy takes the address, and Pharos's rules for it go.
func TestDirectForwardingBesideKubeProxy(t *testing.T) {
	ctx := context.Background()
	// The tutorial (its pool and L2Advertisement, as the earlier tests
	// left them), then the direct Service.
	if err := lab.Apply(ctx, cluster.DemoManifest+"---\n"+directApp); err != nil {
		t.Fatal(err)
	}
	defer lab.MustKubectl(t, "delete", "svc,deploy", "fwd-web", "--ignore-not-found")
	var ips []string
	cluster.Eventually(t, 90*time.Second, func() error {
		ips = strings.Fields(lab.MustKubectl(t, "get", "svc", "fwd-web", "-o", `jsonpath={.status.loadBalancer.ingress[*].ip}`))
		if len(ips) != 2 {
			return fmt.Errorf("ingress %v, want one per family", ips)
		}
		return fwdWebAnswers(ctx, ips)
	})
	if modes := lab.MustKubectl(t, "get", "svc", "fwd-web", "-o", `jsonpath={.status.loadBalancer.ingress[*].ipMode}`); modes != "Proxy Proxy" {
		t.Errorf("ipMode %q, want Proxy for both addresses", modes)
	}
	owner, err := announcer(t, "fwd-web", ips[0])
	if err != nil {
		t.Fatal(err)
	}
	ours, _ := lab.Exec(ctx, owner, "nft", "list", "table", "inet", "pharos")
	if !strings.Contains(ours, ips[0]) {
		t.Errorf("%s announces %s but its Pharos table does not name it:\n%s", owner, ips[0], ours)
	}
	for _, n := range lab.Nodes {
		theirs, _ := lab.Exec(ctx, n.Name, "nft", "list", "ruleset")
		for _, ip := range ips {
			if strings.Contains(kubeProxyTables(theirs), ip) {
				t.Errorf("kube-proxy on %s handles %s although its ipMode is Proxy", n.Name, ip)
			}
		}
	}

	t.Log("nodeport: handed to kube-proxy's NodePort on the announcing node; still ipMode Proxy, still not in kube-proxy's own rules for the address")
	lab.MustKubectl(t, "annotate", "svc", "fwd-web", "--overwrite", "pharos.io/forwarding=nodeport")
	nodePort := lab.MustKubectl(t, "get", "svc", "fwd-web", "-o", "jsonpath={.spec.ports[0].nodePort}")
	cluster.Eventually(t, 30*time.Second, func() error {
		ours, _ := lab.Exec(ctx, owner, "nft", "list", "table", "inet", "pharos")
		if !strings.Contains(ours, "map nodeports4") || !strings.Contains(ours, ips[0]) || !strings.Contains(ours, "dport set "+nodePort) {
			return fmt.Errorf("%s's table does not hand %s to NodePort %s:\n%s", owner, ips[0], nodePort, ours)
		}
		return fwdWebAnswers(ctx, ips)
	})
	if modes := lab.MustKubectl(t, "get", "svc", "fwd-web", "-o", `jsonpath={.status.loadBalancer.ingress[*].ipMode}`); modes != "Proxy Proxy" {
		t.Errorf("nodeport: ipMode %q, want Proxy for both addresses", modes)
	}
	theirs, _ := lab.Exec(ctx, owner, "nft", "list", "ruleset")
	if strings.Contains(kubeProxyTables(theirs), ips[0]) {
		t.Errorf("kube-proxy on %s handles %s itself in nodeport mode", owner, ips[0])
	}
	t.Log("nodeport with source ranges: the LAN client only")
	lab.MustKubectl(t, "patch", "svc", "fwd-web", "-p", fmt.Sprintf(`{"spec":{"loadBalancerSourceRanges":["%s/32"]}}`, lab.Client.V4))
	cluster.Eventually(t, 30*time.Second, func() error {
		if _, err := lab.HTTPGet(ctx, lab.Remote.Name, "http://"+net.JoinHostPort(ips[0], "80")+"/"); err == nil {
			return fmt.Errorf("the remote client still reaches %s", ips[0])
		}
		_, err := lab.HTTPGet(ctx, lab.Client.Name, "http://"+net.JoinHostPort(ips[0], "80")+"/")
		return err
	})
	lab.MustKubectl(t, "patch", "svc", "fwd-web", "--type", "json", "-p", `[{"op":"remove","path":"/spec/loadBalancerSourceRanges"}]`)

	t.Log("back to kube-proxy: ipMode VIP, kube-proxy carries the address, Pharos's rules for it go")
	lab.MustKubectl(t, "annotate", "svc", "fwd-web", "--overwrite", "pharos.io/forwarding=kube-proxy")
	cluster.Eventually(t, 30*time.Second, func() error {
		if modes := lab.MustKubectl(t, "get", "svc", "fwd-web", "-o", `jsonpath={.status.loadBalancer.ingress[*].ipMode}`); modes != "VIP VIP" {
			return fmt.Errorf("ipMode %q, want VIP (Kubernetes' default) for both addresses", modes)
		}
		if ours, _ := lab.Exec(ctx, owner, "nft", "list", "table", "inet", "pharos"); strings.Contains(ours, ips[0]) {
			return fmt.Errorf("%s's Pharos table still names %s", owner, ips[0])
		}
		theirs, _ := lab.Exec(ctx, owner, "nft", "list", "ruleset")
		if !strings.Contains(kubeProxyTables(theirs), ips[0]) {
			return fmt.Errorf("kube-proxy on %s does not handle %s yet", owner, ips[0])
		}
		_, err := lab.HTTPGet(ctx, lab.Client.Name, "http://"+net.JoinHostPort(ips[0], "80")+"/")
		return err
	})
}

// fwdWebAnswers checks that the LAN client gets fwd-web's pods on each
// address.
func fwdWebAnswers(ctx context.Context, ips []string) error {
	for _, ip := range ips {
		body, err := lab.HTTPGet(ctx, lab.Client.Name, "http://"+net.JoinHostPort(ip, "80")+"/")
		if err != nil {
			return err
		}
		if !strings.Contains(body, "pod=fwd-web-") {
			return fmt.Errorf("%s answered %q", ip, body)
		}
	}
	return nil
}

// kubeProxyTables returns the part of an `nft list ruleset` that lies in
// kube-proxy's tables.
func kubeProxyTables(ruleset string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(ruleset, "\n") {
		if strings.HasPrefix(line, "table ") {
			in = strings.Contains(line, "kube-proxy")
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
