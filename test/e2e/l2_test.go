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
	"github.com/pharos-lb/pharos/test/lab/probe"
)

// announcer returns the node that the Service's Announced condition names
// for ip.
func announcer(t *testing.T, svc, ip string) (string, error) {
	t.Helper()
	return lab.AnnouncingNode(context.Background(), svc, ip)
}

func macOf(t *testing.T, node string) string {
	t.Helper()
	out, err := lab.Exec(context.Background(), node, "cat", "/sys/class/net/eth0/address")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToUpper(strings.TrimSpace(out))
}

// TestL2AnnouncesFromExactlyOneNode: ARP and NDP clients on the LAN
// (iputils arping, and ndisc6, which accepts only a Neighbor Advertisement
// sent from the target address) see one MAC, the winner's, and reach the
// pods over the LAN in both families.
func TestL2AnnouncesFromExactlyOneNode(t *testing.T) {
	ingress := loadBalancerIPs(t, "my-nginx")
	for _, ip := range ingress {
		var node string
		cluster.Eventually(t, 30*time.Second, func() (err error) { node, err = announcer(t, "my-nginx", ip); return err })
		expectPod(t, lab.Client.Name, "http://"+net.JoinHostPort(ip, "80")+"/")
		want := macOf(t, node)
		cluster.Eventually(t, 10*time.Second, func() error {
			macs, out := lab.LANMACs(context.Background(), ip)
			if len(macs) != 1 || !macs[want] {
				return fmt.Errorf("the LAN's answers for %s come from %v, want only %s's MAC %s:\n%s", ip, macs, node, want, out)
			}
			return nil
		})
	}
}

func loadBalancerIPs(t *testing.T, svc string) []string {
	var ips []string
	cluster.Eventually(t, 60*time.Second, func() error {
		ips = strings.Fields(lab.MustKubectl(t, "get", "svc", svc, "-o", `jsonpath={.status.loadBalancer.ingress[*].ip}`))
		if len(ips) == 0 {
			return fmt.Errorf("%s has no address", svc)
		}
		return nil
	})
	return ips
}

const pinned = `apiVersion: apps/v1
kind: Deployment
metadata: {name: pinned, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {run: pinned}}
  template:
    metadata: {labels: {run: pinned}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %[1]s}
      containers:
      - {name: pinned, image: echo, ports: [{containerPort: 80}]}
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: edge}
spec: {addresses: ["198.18.102.0/24"]}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: edge}
spec:
  ipAddressPools: [edge]
  nodeSelectors:
  - matchExpressions:
    - {key: kubernetes.io/hostname, operator: NotIn, values: [%[1]s]}
---
apiVersion: v1
kind: Service
metadata: {name: pinned, namespace: default, annotations: {pharos.io/address-pool: edge}}
spec:
  type: LoadBalancer
  selector: {run: pinned}
  ports: [{port: 80, protocol: TCP}]
`

// TestL2FailoverOnCrashAndNoSecondOutage crashes the announcing node while
// a client opens a connection every 20 ms. The backends live on a node
// that never announces, so the outage measured is the announcement's.
// When the node returns, the address stays where it moved.
func TestL2FailoverOnCrashAndNoSecondOutage(t *testing.T) {
	ctx := context.Background()
	backend := lab.Nodes[len(lab.Nodes)-1].Name
	if err := lab.Apply(ctx, fmt.Sprintf(pinned, backend)); err != nil {
		t.Fatal(err)
	}
	ip := loadBalancerIPs(t, "pinned")[0]
	url := "http://" + ip + "/"
	expectBody(t, lab.Client.Name, url, "pod=pinned-")
	var owner string
	cluster.Eventually(t, 30*time.Second, func() (err error) { owner, err = announcer(t, "pinned", ip); return err })
	if owner == backend {
		t.Fatalf("%s announces although no L2Advertisement selects it", owner)
	}

	p, err := lab.StartProbe(lab.Client.Name, url, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	crash := time.Now()
	if err := lab.CrashNode(owner); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	attempts, _ := probe.Parse(strings.NewReader(p.Stop()))
	outage, failed, ok := probe.Outage(attempts, crash)
	if !ok {
		t.Fatalf("no request succeeded within 3s of crashing %s (%d failed)", owner, failed)
	}
	t.Logf("crash of %s: first success after %s, %d failed requests", owner, outage, failed)
	var next string
	cluster.Eventually(t, 10*time.Second, func() (err error) { next, err = announcer(t, "pinned", ip); return err })
	if next == owner || next == backend {
		t.Fatalf("after the crash %s announces", next)
	}

	// The crashed node returns: nothing moves and no request fails.
	p, err = lab.StartProbe(lab.Client.Name, url, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.RecoverNode(ctx, owner); err != nil {
		t.Fatal(err)
	}
	cluster.Eventually(t, 30*time.Second, func() error {
		if !lab.Running(owner + "-speaker") {
			return fmt.Errorf("speaker of %s not running", owner)
		}
		return nil
	})
	time.Sleep(5 * time.Second)
	attempts, _ = probe.Parse(strings.NewReader(p.Stop()))
	if n := probe.Failures(attempts); n > 0 || len(attempts) < 100 {
		t.Errorf("%d of %d requests failed while %s returned: %s", n, len(attempts), owner, probe.Describe(attempts))
	}
	if now, err := announcer(t, "pinned", ip); err != nil || now != next {
		t.Errorf("after %s returned, %s is announced by %q (%v), want it to stay on %s", owner, ip, now, err, next)
	}
}

func expectBody(t *testing.T, ns, url, want string) {
	t.Helper()
	expectBodyWithin(t, ns, url, want, 30*time.Second)
}

// expectBodyWithin is expectBody with another deadline, for set-ups that
// wait on Kubernetes too (new Pods scheduled and started).
func expectBodyWithin(t *testing.T, ns, url, want string, d time.Duration) {
	t.Helper()
	cluster.Eventually(t, d, func() error {
		body, err := lab.HTTPGet(context.Background(), ns, url)
		if err != nil {
			return err
		}
		if !strings.Contains(body, want) {
			return fmt.Errorf("%s answered %q", url, body)
		}
		return nil
	})
}
