//go:build e2e

// Package forwarding runs Pharos's node-local forwarding path in a lab
// without kube-proxy (as K3s with --disable-kube-proxy, or a CNI that
// replaces it): the controller and speakers run with --forwarding=direct,
// so the node that announces an address DNATs it to the Service's ready
// endpoints through its own nftables table. Every check is made from the
// LAN or remote client namespaces with curl, or with nft's own JSON in the
// nodes' namespaces.
package forwarding

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
)

var lab *cluster.Lab

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	os.Exit(cluster.RunSuite(m, root, cluster.SuiteOptions{Name: "e2e-forwarding", Prefix: "pfwd",
		Out: filepath.Join(root, "_output", "e2e-forwarding"), NoKubeProxy: true,
		SpeakerArgs: []string{"--forwarding=direct"}, ControllerArgs: []string{"--forwarding=direct"}}, &lab))
}

// hasTable reports whether node's namespace has Pharos's nftables table,
// as nft itself lists the tables.
func hasTable(t *testing.T, node string) bool {
	t.Helper()
	out, err := lab.Exec(context.Background(), node, "nft", "-j", "list", "tables")
	if err != nil {
		t.Fatalf("nft list tables in %s: %v\n%s", node, err, out)
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft's JSON in %s: %v", node, err)
	}
	for _, o := range doc.Nftables {
		var tbl struct{ Family, Name string }
		if raw, ok := o["table"]; ok && json.Unmarshal(raw, &tbl) == nil && tbl.Family == "inet" && tbl.Name == "pharos" {
			return true
		}
	}
	return false
}

// get fetches the Service from a client namespace and returns the echo
// server's answer ("pod=... node=... client=...").
func get(ns, ip string) (string, error) {
	return lab.HTTPGet(context.Background(), ns, "http://"+net.JoinHostPort(ip, "80")+"/")
}

// TestDirectForwardingWithoutKubeProxy: with no kube-proxy anywhere, the
// tutorial's Service answers on both addresses through Pharos's path, its
// status says ipMode Proxy, only the announcing node has the table, Local
// keeps the client's address, source ranges let only the allowed client
// in, a flushed table heals itself, and after a crash of the announcing
// node the rules follow the address.
func TestDirectForwardingWithoutKubeProxy(t *testing.T) {
	ctx := context.Background()
	for _, n := range lab.Nodes {
		if out, _ := lab.Exec(ctx, n.Name, "nft", "list", "ruleset"); strings.Contains(out, "kube-proxy") {
			t.Fatalf("kube-proxy's rules on %s: this lab must run without it", n.Name)
		}
	}
	if err := lab.Apply(ctx, cluster.DemoManifest); err != nil {
		t.Fatal(err)
	}
	ips, err := lab.WaitDemoAnswers(ctx, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := ips[0], ips[1]
	t.Logf("the Service answers on %v without kube-proxy", ips)

	modes := lab.MustKubectl(t, "get", "svc", "my-nginx", "-o", `jsonpath={.status.loadBalancer.ingress[*].ipMode}`)
	if modes != "Proxy Proxy" {
		t.Errorf("ipMode %q, want Proxy for both addresses", modes)
	}

	owner, err := lab.AnnouncingNode(ctx, "my-nginx", v4)
	if err != nil {
		t.Fatal(err)
	}
	owner6, err := lab.AnnouncingNode(ctx, "my-nginx", v6)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range lab.Nodes {
		if want := n.Name == owner || n.Name == owner6; hasTable(t, n.Name) != want {
			t.Errorf("%s has the table: %v, want %v (it announces %s %s)", n.Name, !want, want, owner, owner6)
		}
	}

	t.Log("Local: the echo server sees the LAN client's own address")
	lab.MustKubectl(t, "patch", "svc", "my-nginx", "-p", `{"spec":{"externalTrafficPolicy":"Local"}}`)
	cluster.Eventually(t, 30*time.Second, func() error {
		body, err := get(lab.Client.Name, v4)
		if err != nil {
			return err
		}
		if !strings.Contains(body, "client="+lab.Client.V4.String()+":") {
			return fmt.Errorf("the echo server saw %q, want client=%s", strings.TrimSpace(body), lab.Client.V4)
		}
		return nil
	})
	cluster.Eventually(t, 30*time.Second, func() error {
		body, err := get(lab.Client.Name, v6)
		if err != nil {
			return err
		}
		if !strings.Contains(body, "client=["+lab.Client.V6.String()+"]:") {
			return fmt.Errorf("the echo server saw %q, want client=[%s]", strings.TrimSpace(body), lab.Client.V6)
		}
		return nil
	})
	lab.MustKubectl(t, "patch", "svc", "my-nginx", "-p", `{"spec":{"externalTrafficPolicy":"Cluster"}}`)
	// Local may have moved the address to a node with an endpoint; it
	// stays there. The checks below look at whoever announces it now.
	// (The condition is written after the move: wait until the node it
	// names forwards the address.)
	cluster.Eventually(t, 15*time.Second, func() error {
		if owner, err = lab.AnnouncingNode(ctx, "my-nginx", v4); err != nil {
			return err
		}
		if table, _ := lab.Exec(ctx, owner, "nft", "list", "table", "inet", "pharos"); !strings.Contains(table, v4) {
			return fmt.Errorf("%s, named as the announcer, has no rule for %s yet", owner, v4)
		}
		return nil
	})

	t.Log("source ranges: the LAN client is allowed, the remote client (behind the router) is not")
	lab.MustKubectl(t, "patch", "svc", "my-nginx", "-p", fmt.Sprintf(`{"spec":{"loadBalancerSourceRanges":["%s/32","%s/128"]}}`, lab.Client.V4, lab.Client.V6))
	cluster.Eventually(t, 30*time.Second, func() error {
		if _, err := get(lab.Remote.Name, v4); err == nil {
			return fmt.Errorf("the remote client still reaches %s", v4)
		}
		if _, err := get(lab.Client.Name, v4); err != nil {
			return fmt.Errorf("the allowed LAN client: %w", err)
		}
		return nil
	})
	counters, _ := lab.Exec(ctx, owner, "nft", "-j", "list", "counters", "table", "inet", "pharos")
	if !strings.Contains(counters, `"packets"`) {
		t.Errorf("no drop counters in %s's table: %s", owner, counters)
	}
	lab.MustKubectl(t, "patch", "svc", "my-nginx", "--type", "json", "-p", `[{"op":"remove","path":"/spec/loadBalancerSourceRanges"}]`)
	cluster.Eventually(t, 30*time.Second, func() error {
		_, err := get(lab.Remote.Name, v4)
		return err
	})

	t.Log("a flushed table heals itself within the resync period")
	flushed := false
	for range 3 {
		if out, err := lab.Exec(ctx, owner, "nft", "flush", "table", "inet", "pharos"); err != nil {
			t.Fatalf("flushing the table on %s: %v\n%s", owner, err, out)
		}
		// A write of ours may have raced the flush: nft must show it.
		if out, _ := lab.Exec(ctx, owner, "nft", "list", "chain", "inet", "pharos", "nat_prerouting"); !strings.Contains(out, "vmap") {
			flushed = true
			break
		}
		time.Sleep(time.Second)
	}
	if !flushed {
		t.Fatalf("the table on %s never stayed flushed", owner)
	}
	start := time.Now()
	cluster.Eventually(t, 30*time.Second, func() error {
		if out, _ := lab.Exec(ctx, owner, "nft", "list", "chain", "inet", "pharos", "nat_prerouting"); !strings.Contains(out, "vmap") {
			return fmt.Errorf("%s's table is still flushed", owner)
		}
		_, err := get(lab.Client.Name, v4)
		return err
	})
	t.Logf("rules back and answering %s after the flush", time.Since(start).Round(100*time.Millisecond))

	// The pods on the node about to crash: the new owner must leave them
	// out at once, while Kubernetes still lists them as ready.
	podIPs := strings.Fields(lab.MustKubectl(t, "get", "pods", "-l", "run=my-nginx", "--field-selector", "spec.nodeName="+owner, "-o", `jsonpath={.items[*].status.podIP}`))
	t.Log("the announcing node crashes: the address and its rules move to another node")
	if err := lab.CrashNode(owner); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := lab.RecoverNode(ctx, owner); err != nil {
			t.Error(err)
		}
	}()
	var next string
	cluster.Eventually(t, 30*time.Second, func() error {
		n, err := lab.AnnouncingNode(ctx, "my-nginx", v4)
		if err != nil || n == owner {
			return fmt.Errorf("still announced by %q (%w)", n, err)
		}
		next = n
		_, err = get(lab.Client.Name, v4)
		return err
	})
	if !hasTable(t, next) {
		t.Errorf("the new owner %s answers but has no table", next)
	}
	if len(podIPs) > 0 {
		cluster.Eventually(t, 5*time.Second, func() error {
			table, _ := lab.Exec(ctx, next, "nft", "list", "table", "inet", "pharos")
			for _, ip := range podIPs {
				if strings.Contains(table, ip+" ") || strings.Contains(table, ip+":") {
					return fmt.Errorf("%s still forwards to %s on the crashed %s", next, ip, owner)
				}
			}
			return nil
		})
		ready := lab.MustKubectl(t, "get", "endpointslices", "-l", "kubernetes.io/service-name=my-nginx", "-o", `jsonpath={range .items[*].endpoints[*]}{.addresses[0]}={.conditions.ready} {end}`)
		t.Logf("%s forwards to none of %v on the crashed node, while the EndpointSlices say: %s", next, podIPs, ready)
	}
	t.Logf("after the crash of %s, %s carries %s", owner, next, v4)
}
