//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
	"github.com/pharos-lb/pharos/test/lab/probe"
)

const partitioned = `apiVersion: apps/v1
kind: Deployment
metadata: {name: split, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {run: split}}
  template:
    metadata: {labels: {run: split}}
    spec:
      containers:
      - {name: split, image: echo, ports: [{containerPort: 80}]}
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: split}
spec: {addresses: ["198.18.109.0/28"]}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: split}
spec: {ipAddressPools: [split]}
---
apiVersion: v1
kind: Service
metadata: {name: split, namespace: default, annotations: {pharos.io/address-pool: split}}
spec:
  type: LoadBalancer
  selector: {run: split}
  ports: [{port: 80, protocol: TCP}]
`

// twoMACBound is the longest two MACs may answer for an address after one
// node's memberlist port is blocked: generous for CI's 2 noisy cores (the
// lab measures well under a second; see bench-partition).
const twoMACBound = 5 * time.Second

// TestPartitionMemberlistOfOwner blocks only the memberlist port (TCP and
// UDP 7946, in and out) of the node announcing an address, which stays on
// the LAN: the others see it dead and elect another owner; it sees itself
// cut off, and gives the address up once the new owner answers. Two MACs
// answer for a bounded time, a client keeps connecting, and healing moves
// nothing.
func TestPartitionMemberlistOfOwner(t *testing.T) {
	testPartitionMemberlist(t, true)
}

// TestPartitionMemberlistOfNonOwner blocks the memberlist port of a node
// that does not announce the address: it must not take the address (it
// sees the owner dead), or only until it sees the owner's MAC answer.
func TestPartitionMemberlistOfNonOwner(t *testing.T) {
	testPartitionMemberlist(t, false)
}

func testPartitionMemberlist(t *testing.T, ofOwner bool) {
	ctx := context.Background()
	if err := lab.Apply(ctx, partitioned); err != nil {
		t.Fatal(err)
	}
	ipStr := loadBalancerIPs(t, "split")[0]
	ip := netip.MustParseAddr(ipStr)
	url := "http://" + ipStr + "/"
	// New Pods: the scheduler and controller manager may still be slow
	// after TestControlPlaneOutage, which runs before.
	expectBodyWithin(t, lab.Client.Name, url, "pod=split-", 2*time.Minute)
	var owner string
	cluster.Eventually(t, 30*time.Second, func() (err error) { owner, err = announcer(t, "split", ipStr); return err })
	nodeOf := map[string]string{}
	for _, n := range lab.Nodes {
		nodeOf[macOf(t, n.Name)] = n.Name
	}
	ownerMAC := macOf(t, owner)
	cut := owner
	if !ofOwner {
		for _, n := range lab.Nodes {
			if n.Name != owner {
				cut = n.Name
				break
			}
		}
	}
	t.Cleanup(func() { _ = lab.HealMemberlist(cut) })

	w, err := lab.WatchARP(lab.Client.Name, ip, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	p, err := lab.StartProbe(lab.Client.Name, url, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if s := cluster.SummarizeARP(w.Answers(), 30*time.Millisecond, time.Now().Add(-time.Second), time.Now()); len(s.MACs) != 1 || s.MACs[0] != ownerMAC {
		t.Fatalf("before the partition the LAN's answers for %s: %s, want only %s's MAC %s", ip, s, owner, ownerMAC)
	}

	start := time.Now()
	if err := lab.PartitionMemberlist(cut); err != nil {
		p.Stop()
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second)
	cutEnd := time.Now()
	s := cluster.SummarizeARP(w.Answers(), 30*time.Millisecond, start, cutEnd)
	attempts, _ := probe.Parse(strings.NewReader(p.Stop()))
	t.Logf("memberlist port of %s (owner %s) blocked: %s; client: %d of %d requests failed, longest failure %s",
		cut, owner, s, probe.Failures(attempts), len(attempts), longestFailure(attempts))
	if s.TwoMAC > twoMACBound {
		t.Errorf("two MACs answered for %s for %s (from %s), want < %s", ip, s.TwoMAC, s.TwoMACFrom.Sub(start), twoMACBound)
	}
	if s.LongestSilence > 2*time.Second {
		t.Errorf("nobody answered ARP for %s for %s", ip, s.LongestSilence)
	}
	if f := longestFailure(attempts); f > 3*time.Second || len(attempts) < 200 {
		t.Errorf("the client failed for %s in a row (%d attempts)", f, len(attempts))
	}
	// In the last 3 s, one MAC answers: the majority's owner.
	tail := cluster.SummarizeARP(w.Answers(), 30*time.Millisecond, cutEnd.Add(-3*time.Second), cutEnd)
	if len(tail.MACs) != 1 {
		t.Fatalf("at the end of the partition, MACs %v answer for %s, want one", tail.MACs, ip)
	}
	after := tail.MACs[0]
	switch {
	case ofOwner && nodeOf[after] == owner:
		t.Errorf("%s, cut off from memberlist, still answers for %s; want another node", owner, ip)
	case !ofOwner && after != ownerMAC:
		t.Errorf("%s moved from %s to %s (%s) when the memberlist port of %s, which does not own it, was blocked", ip, owner, nodeOf[after], after, cut)
	}

	// Healing moves nothing.
	healed := time.Now()
	if err := lab.HealMemberlist(cut); err != nil {
		t.Fatal(err)
	}
	p, err = lab.StartProbe(lab.Client.Name, url, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second)
	end := time.Now()
	attempts, _ = probe.Parse(strings.NewReader(p.Stop()))
	h := cluster.SummarizeARP(w.Stop(), 30*time.Millisecond, healed, end)
	t.Logf("healed: %s; client: %d of %d requests failed", h, probe.Failures(attempts), len(attempts))
	if len(h.MACs) != 1 || h.MACs[0] != after {
		t.Errorf("after healing, MACs %v answer for %s, want only %s (%s) as before", h.MACs, ip, after, nodeOf[after])
	}
	if n := probe.Failures(attempts); n > 0 || len(attempts) < 200 {
		t.Errorf("%d of %d requests failed after healing: %s", n, len(attempts), probe.Describe(attempts))
	}
	cluster.Eventually(t, 30*time.Second, func() error {
		now, err := announcer(t, "split", ipStr)
		if err != nil {
			return err
		}
		if now != nodeOf[after] {
			return fmt.Errorf("after healing the Announced condition names %s, want %s", now, nodeOf[after])
		}
		return nil
	})
}

// longestFailure is the longest run of consecutive failed attempts, from
// the first failure's start to the next success's start.
func longestFailure(attempts []probe.Attempt) time.Duration {
	var longest time.Duration
	var since time.Time
	for _, a := range attempts {
		switch {
		case !a.OK && since.IsZero():
			since = a.Start
		case a.OK && !since.IsZero():
			longest = max(longest, a.Start.Sub(since))
			since = time.Time{}
		}
	}
	if !since.IsZero() && len(attempts) > 0 {
		longest = max(longest, attempts[len(attempts)-1].Start.Sub(since))
	}
	return longest
}
