// Command partition measures, in the lab (as root), what happens when one
// node's memberlist port is blocked while the node stays on the LAN
// (MetalLB issue 740): how long two different MACs answer ARP for a
// LoadBalancer address (watched every 10 ms from the client host), for
// the owner cut off and for a non-owner cut off, and whether healing moves
// the address.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pharos-lb/pharos/test/bench/figures"
	"github.com/pharos-lb/pharos/test/lab/cluster"
)

var trials = flag.Int("trials", 3, "partitions of the owner, and as many of a non-owner")

const setup = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {run: web}}
  template:
    metadata: {labels: {run: web}}
    spec:
      containers: [{name: web, image: echo, ports: [{containerPort: 80}]}]
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: partition}
spec: {addresses: ["198.18.109.0/28"]}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: partition}
spec: {ipAddressPools: [partition]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, selector: {run: web}, ports: [{port: 80, protocol: TCP}]}
`

const slot = 30 * time.Millisecond

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-partition:", err)
		os.Exit(1)
	}
}

func run() error {
	if err := cluster.CheckHost(); err != nil {
		return err
	}
	root, _ := os.Getwd()
	out := filepath.Join(root, "_output", "bench", "partition")
	opts, err := cluster.Prepare(root, out, nil)
	if err != nil {
		return err
	}
	opts.Prefix, opts.Dir = "ppar", filepath.Join(out, "lab")
	l, err := cluster.New(opts)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := l.Up(ctx); err != nil {
		return err
	}
	defer func() { _ = l.Down() }()
	if err := l.Apply(ctx, setup); err != nil {
		return err
	}
	var ipStr string
	for deadline := time.Now().Add(2 * time.Minute); ipStr == ""; time.Sleep(time.Second) {
		o, _ := l.Kubectl(ctx, "get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		ipStr = strings.TrimSpace(o)
		if time.Now().After(deadline) {
			return fmt.Errorf("no address for Service web")
		}
	}
	ip := netip.MustParseAddr(ipStr)
	url := "http://" + ipStr + "/"
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if _, err := l.HTTPGet(ctx, l.Client.Name, url); err == nil {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer: %w", url, err)
		}
	}
	nodeOf := map[string]string{}
	for _, n := range l.Nodes {
		mac, err := l.Exec(ctx, n.Name, "cat", "/sys/class/net/eth0/address")
		if err != nil {
			return err
		}
		nodeOf[strings.ToUpper(strings.TrimSpace(mac))] = n.Name
	}

	var worst, worstOwner, worstOther, worstSilence time.Duration
	moved := 0
	for i := 0; i < 2**trials; i++ {
		ofOwner := i%2 == 0
		w, err := l.WatchARP(l.Client.Name, ip, 10*time.Millisecond)
		if err != nil {
			return err
		}
		time.Sleep(time.Second)
		before := cluster.SummarizeARP(w.Answers(), slot, time.Now().Add(-time.Second), time.Now())
		if len(before.MACs) != 1 {
			w.Stop()
			return fmt.Errorf("trial %d: before the partition, MACs %v answer for %s", i, before.MACs, ip)
		}
		owner := nodeOf[before.MACs[0]]
		cut := owner
		if !ofOwner {
			for _, n := range l.Nodes {
				if n.Name != owner {
					cut = n.Name
					break
				}
			}
		}
		start := time.Now()
		if err := l.PartitionMemberlist(cut); err != nil {
			w.Stop()
			return err
		}
		time.Sleep(8 * time.Second)
		mid := time.Now()
		if err := l.HealMemberlist(cut); err != nil {
			w.Stop()
			return err
		}
		cutSum := cluster.SummarizeARP(w.Answers(), slot, start, mid)
		time.Sleep(8 * time.Second)
		end := time.Now()
		healSum := cluster.SummarizeARP(w.Stop(), slot, mid, end)
		fmt.Fprintf(os.Stderr, "trial %d: owner %s, memberlist port of %s blocked: %s; healed: %s\n", i, owner, cut, cutSum, healSum)
		worst = max(worst, cutSum.TwoMAC, healSum.TwoMAC)
		worstSilence = max(worstSilence, cutSum.LongestSilence, healSum.LongestSilence)
		if ofOwner {
			worstOwner = max(worstOwner, cutSum.TwoMAC)
		} else {
			worstOther = max(worstOther, cutSum.TwoMAC)
		}
		if len(healSum.MACs) != 1 || healSum.MACs[0] != cutSum.Last {
			moved++
		}
		if cutSum.Last == "" || (ofOwner && nodeOf[cutSum.Last] == owner) {
			fmt.Fprintf(os.Stderr, "trial %d: the cut-off owner %s still answers at the end of the partition\n", i, owner)
		}
	}
	figures.Report("PartitionTwoMAC", "partition_two_mac_ms", float64(worst.Milliseconds()))
	figures.Report("PartitionOwnerTwoMAC", "partition_owner_two_mac_ms", float64(worstOwner.Milliseconds()))
	figures.Report("PartitionNonOwnerTwoMAC", "partition_non_owner_two_mac_ms", float64(worstOther.Milliseconds()))
	figures.Report("PartitionLongestSilence", "partition_arp_silence_ms", float64(worstSilence.Milliseconds()))
	figures.Report("PartitionHealMoves", "partition_heal_moves", float64(moved))
	return nil
}
