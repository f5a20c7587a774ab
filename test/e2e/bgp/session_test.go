//go:build e2e

package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
	"github.com/pharos-lb/pharos/test/lab/routers"
)

// TestBGPSessionOptions: the BGPPeer options that shape a session, each on
// its own node, judged from FRR's own neighbor and route JSON:
//   - n1 peers over IPv6 and advertises its IPv4 prefix there too (MP-BGP
//     over an IPv6 session);
//   - n2 peers with disableMP: its IPv4 session carries IPv4 only, so FRR
//     gets no IPv6 route from it although it would accept one;
//   - n3 peers from a second address of its own (sourceAddress): FRR knows
//     only that address as a neighbor, so an Established session proves
//     the speaker connected from it;
//   - n1 also has a peer with dynamicASN external that turns out to share
//     its ASN: the speaker shuts that session down and says why in its
//     BGPNodeStatus, and FRR does not keep it Established.
func TestBGPSessionOptions(t *testing.T) {
	ctx := context.Background()
	// The pool and the dual-stack Service of TestBGPAdvertisesToFRR; then
	// every peer and advertisement goes, so that each node's sessions are
	// the ones this test names.
	if err := lab.Apply(ctx, bgpManifest(lab.Router.V4.String())); err != nil {
		t.Fatal(err)
	}
	lab.MustKubectl(t, "delete", "bgppeers,bgpadvertisements", "--all", "--wait=true")

	n1, n2, n3 := lab.Nodes[0], lab.Nodes[1], lab.Nodes[2]
	source := netip.MustParseAddr("198.18.97.33") // on the LAN (198.18.96.0/19), used by nobody else
	if out, err := lab.Exec(ctx, n3.Name, "ip", "addr", "add", source.String()+"/19", "dev", "eth0"); err != nil {
		t.Fatalf("second address on %s: %v\n%s", n3.Name, err, out)
	}
	t.Cleanup(func() { _, _ = lab.Exec(ctx, n3.Name, "ip", "addr", "del", source.String()+"/19", "dev", "eth0") })

	dir := filepath.Join(lab.Dir, "frr-sessions")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	both := []routers.Family{routers.IPv4, routers.IPv6}
	frr, err := routers.StartFRR(ctx, routers.FRRConfig{Namespace: lab.Router.Name, Dir: dir, RouterID: lab.Router.V4, ASN: bgpASN, Forwarding: true,
		Neighbors: []routers.FRRNeighbor{
			{Address: n1.V6, RemoteASN: bgpASN, Families: both},
			{Address: n2.V4, RemoteASN: bgpASN, Families: both},
			{Address: source, RemoteASN: bgpASN, Families: both},
			{Address: n1.V4, RemoteASN: bgpASN, Families: both},
		}})
	if err != nil {
		if frr != nil {
			_ = frr.Stop()
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = frr.Stop() })

	on := func(n cluster.Node) string {
		return fmt.Sprintf("nodeSelectors: [{matchLabels: {kubernetes.io/hostname: %s}}]", n.Name)
	}
	manifest := fmt.Sprintf(`apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata: {name: over-v6}
spec: {myASN: %[1]d, peerASN: %[1]d, peerAddress: %[2]q, connectTime: 2s, %[3]s}
---
apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata: {name: no-mp}
spec: {myASN: %[1]d, peerASN: %[1]d, peerAddress: %[4]q, disableMP: true, connectTime: 2s, %[5]s}
---
apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata: {name: sourced}
spec: {myASN: %[1]d, peerASN: %[1]d, peerAddress: %[4]q, sourceAddress: %[6]q, connectTime: 2s, %[7]s}
---
apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata: {name: external-only}
spec: {myASN: %[1]d, dynamicASN: external, peerAddress: %[4]q, connectTime: 2s, %[3]s}
---
apiVersion: pharos.io/v1beta1
kind: BGPAdvertisement
metadata: {name: sessions}
spec: {ipAddressPools: [bgp]}
`, bgpASN, lab.Router.V6, on(n1), lab.Router.V4, on(n2), source, on(n3))
	if err := lab.Apply(ctx, manifest); err != nil {
		t.Fatal(err)
	}
	var ingress []string
	cluster.Eventually(t, 60*time.Second, func() error {
		ingress = strings.Fields(lab.MustKubectl(t, "get", "svc", "bgp-web", "-o", `jsonpath={.status.loadBalancer.ingress[*].ip}`))
		if len(ingress) != 2 {
			return fmt.Errorf("ingress %v, want one address per family", ingress)
		}
		return nil
	})
	p4 := netip.PrefixFrom(netip.MustParseAddr(ingress[0]), 32)
	p6 := netip.PrefixFrom(netip.MustParseAddr(ingress[1]), 128)

	cluster.Eventually(t, 60*time.Second, func() error {
		ns, err := frr.Neighbors(ctx)
		if err != nil {
			return err
		}
		for _, a := range []netip.Addr{n1.V6, n2.V4, source} {
			if ns[a].State != "Established" {
				return fmt.Errorf("FRR's session with %s is %q", a, ns[a].State)
			}
		}
		return nil
	})
	t.Logf("FRR: sessions with %s (IPv6), %s (disableMP) and %s (n3's sourceAddress) established", n1.V6, n2.V4, source)

	// IPv4 over n1's IPv6 session; n2 and n3 over IPv4. Every node serves
	// the Cluster Service, so all three are next hops of the IPv4 prefix.
	waitFIB(t, frr, routers.IPv4, p4, []netip.Addr{n1.V4, n2.V4, n3.V4}, 30*time.Second)
	// IPv6 from n1 and n3 (n3's IPv4 session carries MP-BGP), never n2.
	waitFIB(t, frr, routers.IPv6, p6, []netip.Addr{n1.V6, n3.V6}, 30*time.Second)
	ns, err := frr.Neighbors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ns[n2.V4].PrefixesReceived[routers.IPv6]; got != 0 {
		t.Errorf("FRR received %d IPv6 prefixes over n2's disableMP session, want 0", got)
	}
	if got := ns[n1.V6].PrefixesReceived[routers.IPv4]; got == 0 {
		t.Errorf("FRR received no IPv4 prefix over n1's IPv6 session")
	}

	// dynamicASN external against a router of our own ASN: refused, with
	// the reason in n1's status; FRR does not keep the session.
	cluster.Eventually(t, 60*time.Second, func() error {
		out := lab.MustKubectl(t, "get", "bgpnodestatus", n1.Name, "-o", `jsonpath={.status.sessions[?(@.peer=="external-only")].lastError}`)
		if !strings.Contains(out, "dynamicASN is external") {
			return fmt.Errorf("n1's session external-only: lastError %q", out)
		}
		return nil
	})
	for range 5 {
		ns, err := frr.Neighbors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ns[n1.V4].State == "Established" {
			t.Errorf("FRR keeps the internal session with %s that dynamicASN external refuses", n1.V4)
			break
		}
		time.Sleep(time.Second)
	}
}
