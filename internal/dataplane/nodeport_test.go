package dataplane

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodePortHandsTheFrontendToKubeProxy: a nodeport frontend rewrites
// VIP:80 to the node's address and NodePort before conntrack, where a
// NodePort DNAT like kube-proxy's (in a table of the test's own, as
// kube-proxy keeps its own) takes it to the pod; the client, which dialled
// the VIP, completes its connection, so the replies carry VIP:80 again.
// Source ranges still apply. IPv4 and IPv6.
func TestNodePortHandsTheFrontendToKubeProxy(t *testing.T) {
	l := newPacketLab(t)
	serve(t, l.pod, netip.AddrPortFrom(pod4a, 8080))
	serve(t, l.pod, netip.AddrPortFrom(pod6a, 8080))
	node4, node6 := netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("2001:db8:1::1")
	const nodePort = 30080
	// The stand-in for kube-proxy's NodePort rule: DNAT at dstnat, and
	// its masquerade for Cluster policy, by packet mark 0x4000 as
	// kube-proxy marks.
	rules := `table inet kubeproxy {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 198.18.1.1 tcp dport 30080 meta mark set meta mark | 0x4000 dnat ip to 198.18.201.2:8080
		ip6 daddr 2001:db8:1::1 tcp dport 30080 meta mark set meta mark | 0x4000 dnat ip6 to [2001:db8:201::2]:8080
	}
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x4000 == 0x4000 masquerade
	}
}
`
	file := filepath.Join(t.TempDir(), "kubeproxy.nft")
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "netns", "exec", l.node, "nft", "-f", file)

	d, err := New(Options{NetNS: l.nodeFD})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	sync := func(ranges ...netip.Prefix) {
		t.Helper()
		if err := d.Sync(Config{Frontends: []Frontend{
			{Service: "default/web", VIP: vip4, Protocol: TCP, Port: 80, SourceRanges: ranges, NodePort: nodePort, NodeAddr: node4},
			{Service: "default/web6", VIP: vip6, Protocol: TCP, Port: 80, NodePort: nodePort, NodeAddr: node6},
		}}); err != nil {
			t.Fatalf("Sync: %v", err)
		}
	}
	sync()
	for _, c := range []struct {
		from netip.Addr
		to   netip.AddrPort
		want netip.Addr // what the pod sees: the node, masqueraded by "kube-proxy"
	}{
		{clientAddr4, netip.AddrPortFrom(vip4, 80), nodePodSide4},
		{clientAddr6, netip.AddrPortFrom(vip6, 80), nodePodSide6},
	} {
		seen, err := ask(l.client, c.from, c.to)
		if err != nil {
			out, _ := exec.Command("ip", "netns", "exec", l.node, "nft", "list", "ruleset").CombinedOutput()
			ct, _ := exec.Command("ip", "netns", "exec", l.node, "conntrack", "-L").CombinedOutput()
			t.Fatalf("connecting to %s through the NodePort: %v\n%s\n%s", c.to, err, out, ct)
		}
		if got := seenAddr(t, seen); got != c.want {
			t.Errorf("the pod saw %s, want %s (kube-proxy's masquerade)", got, c.want)
		}
	}
	// The NodePort itself still works for whoever calls it directly: our
	// reply rewrite touches only the connections we handed over.
	if _, err := ask(l.client, clientAddr4, netip.AddrPortFrom(node4, nodePort)); err != nil {
		t.Errorf("the NodePort called directly: %v", err)
	}

	sync(netip.MustParsePrefix(clientAddr4.String() + "/32"))
	if _, err := ask(l.client, clientAddr4, netip.AddrPortFrom(vip4, 80)); err != nil {
		t.Errorf("the allowed source: %v", err)
	}
	if _, err := ask(l.client, strangerAddr, netip.AddrPortFrom(vip4, 80)); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("a source outside the ranges: %v, want a timeout", err)
	}
	if n, err := d.Dropped("default/web"); err != nil || n == 0 {
		t.Errorf("dropped %d (%v), want some", n, err)
	}
}
