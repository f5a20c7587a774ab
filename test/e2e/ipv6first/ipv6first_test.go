//go:build e2e

// Package ipv6first runs Pharos in a lab whose nodes list their IPv6
// InternalIP first, as an IPv6-first (or, for memberlist, IPv6-only)
// cluster does. The speakers bind memberlist to that address and must join
// each other over IPv6; before they did, every speaker ran alone and every
// node answered for every address.
package ipv6first

import (
	"context"
	"fmt"
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
	os.Exit(cluster.RunSuite(m, root, cluster.SuiteOptions{Name: "e2e-ipv6first", Prefix: "pe6f",
		Out: filepath.Join(root, "_output", "e2e-ipv6first"), IPv6First: true}, &lab))
}

// TestIPv6FirstSpeakersJoinAndAnswerOnce: with IPv6-first InternalIPs,
// exactly one MAC answers for each of the demo's addresses, as arping and
// ndisc6 on the LAN see, and the Service answers in both families.
func TestIPv6FirstSpeakersJoinAndAnswerOnce(t *testing.T) {
	ctx := context.Background()
	first := lab.MustKubectl(t, "get", "nodes", "-o", `jsonpath={range .items[*]}{.status.addresses[0].address}{"\n"}{end}`)
	for _, a := range strings.Fields(first) {
		if !strings.Contains(a, ":") {
			t.Fatalf("a node's first InternalIP is %s; the lab must list IPv6 first:\n%s", a, first)
		}
	}
	if err := lab.Apply(ctx, cluster.DemoManifest); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.WaitDemoAnswers(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	var ingress []string
	cluster.Eventually(t, 60*time.Second, func() error {
		ingress = strings.Fields(lab.MustKubectl(t, "get", "svc", "my-nginx", "-o", `jsonpath={.status.loadBalancer.ingress[*].ip}`))
		if len(ingress) != 2 {
			return fmt.Errorf("ingress %v, want one address per family", ingress)
		}
		return nil
	})
	nodeMACs := map[string]string{}
	for _, n := range lab.Nodes {
		out, err := lab.Exec(ctx, n.Name, "cat", "/sys/class/net/eth0/address")
		if err != nil {
			t.Fatal(err)
		}
		nodeMACs[strings.ToUpper(strings.TrimSpace(out))] = n.Name
	}
	for _, ip := range ingress {
		// Give the speakers a few probe rounds to meet; a speaker that
		// never joins keeps answering, so this never passes by waiting.
		cluster.Eventually(t, 15*time.Second, func() error {
			macs, out := lab.LANMACs(ctx, ip)
			if len(macs) != 1 {
				return fmt.Errorf("%d MACs answer for %s, want exactly one (split brain if more): %v\n%s", len(macs), ip, macs, out)
			}
			for m := range macs {
				if nodeMACs[m] == "" {
					return fmt.Errorf("MAC %s answering for %s is no node's", m, ip)
				}
			}
			return nil
		})
		url := "http://" + ip + "/"
		if strings.Contains(ip, ":") {
			url = "http://[" + ip + "]/"
		}
		cluster.Eventually(t, 30*time.Second, func() error {
			body, err := lab.HTTPGet(ctx, lab.Client.Name, url)
			if err != nil {
				return fmt.Errorf("GET %s from the client: %w", url, err)
			}
			if !strings.Contains(body, "my-nginx") {
				return fmt.Errorf("GET %s from the client answered %q", url, body)
			}
			return nil
		})
	}
}
