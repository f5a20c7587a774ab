//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
	"github.com/pharos-lb/pharos/test/lab/probe"
)

// pinnedOwner prepares the pinned Service of the failover test (backends
// on the last node, announced only by the others) and returns its address
// and current announcer.
func pinnedOwner(t *testing.T) (ip, url, owner string) {
	t.Helper()
	backend := lab.Nodes[len(lab.Nodes)-1].Name
	if err := lab.Apply(context.Background(), fmt.Sprintf(pinned, backend)); err != nil {
		t.Fatal(err)
	}
	ip = loadBalancerIPs(t, "pinned")[0]
	url = "http://" + ip + "/"
	expectBody(t, lab.Client.Name, url, "pod=pinned-")
	cluster.Eventually(t, 30*time.Second, func() (err error) { owner, err = announcer(t, "pinned", ip); return err })
	return ip, url, owner
}

// measure runs the client loop around fault and returns the attempts.
func measure(t *testing.T, url string, fault func(), settle time.Duration) []probe.Attempt {
	t.Helper()
	p, err := lab.StartProbe(lab.Client.Name, url, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	fault()
	time.Sleep(settle)
	attempts, err := probe.Parse(strings.NewReader(p.Stop()))
	if err != nil {
		t.Fatal(err)
	}
	return attempts
}

func TestL2FailoverOnSpeakerKillAndNICDown(t *testing.T) {
	ip, url, owner := pinnedOwner(t)
	for _, fault := range []struct {
		name          string
		apply, revert func(string) error
		// within bounds the client's outage. A speaker killed on a live
		// node is memberlist's to detect (2-4 s, README "Failover"): its
		// kernel answers the heartbeat's probes, and kube-proxy on the
		// node carries the traffic meanwhile, so the client sees at most
		// the one reset of the move, when memberlist moves the address.
		// A NIC down is the heartbeats' (about 0.2 s).
		within time.Duration
	}{
		{"speaker SIGKILL", func(n string) error { return lab.Stop(n+"-speaker", syscall.SIGKILL) }, func(n string) error { return lab.Restart(n + "-speaker") }, 4 * time.Second},
		{"NIC down", lab.LinkDown, lab.LinkUp, 2 * time.Second},
	} {
		var at time.Time
		attempts := measure(t, url, func() {
			at = time.Now()
			if err := fault.apply(owner); err != nil {
				t.Fatal(err)
			}
		}, 3*time.Second)
		outage, failed, ok := probe.Outage(attempts, at)
		if !ok || outage > fault.within {
			t.Errorf("%s on %s: outage %s (%d failed, recovered %v)", fault.name, owner, outage, failed, ok)
		}
		t.Logf("%s on %s: first success after %s", fault.name, owner, outage)
		if err := fault.revert(owner); err != nil {
			t.Fatal(err)
		}
		var next string
		cluster.Eventually(t, 10*time.Second, func() (err error) { next, err = announcer(t, "pinned", ip); return err })
		owner = next
		time.Sleep(3 * time.Second)
	}
}

// TestL2RollingRestartAndDrainFailNoRequest: every speaker restarted in
// turn, then the announcing node cordoned, while the client loop runs.
func TestL2RollingRestartAndDrainFailNoRequest(t *testing.T) {
	ip, url, owner := pinnedOwner(t)
	attempts := measure(t, url, func() {
		for _, n := range lab.Nodes {
			if err := lab.Stop(n.Name+"-speaker", syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := lab.Restart(n.Name + "-speaker"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
		}
	}, time.Second)
	// Each restart moves the address at most once; a connection in flight
	// at that instant may be reset (see probe.Unexplained), no other may
	// fail.
	if bad := probe.Unexplained(attempts, len(lab.Nodes)); len(bad) > 0 {
		t.Errorf("rolling restart: %d of %d requests failed: %s", probe.Failures(attempts), len(attempts), probe.Describe(attempts))
	} else if n := probe.Failures(attempts); n > 0 {
		t.Logf("rolling restart: %d connections in flight at a hand-over were reset (%s); no other request failed", n, probe.Describe(attempts))
	}
	cluster.Eventually(t, 10*time.Second, func() (err error) { owner, err = announcer(t, "pinned", ip); return err })
	attempts = measure(t, url, func() { lab.MustKubectl(t, "cordon", owner) }, 3*time.Second)
	defer lab.MustKubectl(t, "uncordon", owner)
	if bad := probe.Unexplained(attempts, 1); len(bad) > 0 {
		t.Errorf("cordon of %s: %d of %d requests failed: %s", owner, probe.Failures(attempts), len(attempts), probe.Describe(attempts))
	}
	cluster.Eventually(t, 10*time.Second, func() error {
		now, err := announcer(t, "pinned", ip)
		if err == nil && now == owner {
			return fmt.Errorf("cordoned %s still announces", owner)
		}
		return err
	})
}

// TestL2StressedNodeKeepsItsAddresses puts the announcing node under
// 15 s of a bad day (cluster.StressNode: a CPU hog on every core, 5 % loss
// and 20 ms of jitter both ways on its link, its speaker paused 100 ms
// about every second): neither the fast heartbeats nor memberlist may take
// that for a failure. The client's ARP must see one MAC throughout. The
// lossy link fails some requests whatever Pharos does (a handshake lost
// five times), so the client also asks the Service's NodePort on the same
// node, the same path without Pharos: the address's requests may fail no
// more than that control's, give or take a few, where a move would reset
// every connection in flight. make bench-l2 runs the same for 10 minutes.
func TestL2StressedNodeKeepsItsAddresses(t *testing.T) {
	ip, url, owner := pinnedOwner(t)
	n, err := lab.Node(owner)
	if err != nil {
		t.Fatal(err)
	}
	nodePort := strings.TrimSpace(lab.MustKubectl(t, "get", "svc", "pinned", "-o", "jsonpath={.spec.ports[0].nodePort}"))
	w, err := lab.WatchARP(lab.Client.Name, netip.MustParseAddr(ip), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 16 * time.Second // four SYN retransmissions
	p, err := lab.StartProbeTimeout(lab.Client.Name, url, 20*time.Millisecond, timeout)
	if err != nil {
		w.Stop()
		t.Fatal(err)
	}
	control, err := lab.StartProbeTimeout(lab.Client.Name, fmt.Sprintf("http://%s:%s/", n.V4, nodePort), 20*time.Millisecond, timeout)
	if err != nil {
		w.Stop()
		p.Stop()
		t.Fatal(err)
	}
	s, err := lab.StressNode(owner, true, time.Now().UnixNano())
	if err != nil {
		w.Stop()
		p.Stop()
		control.Stop()
		t.Fatal(err)
	}
	time.Sleep(15 * time.Second)
	pauses := s.Stop()
	moves, macs := cluster.MACMoves(w.Stop())
	attempts, err := probe.Parse(strings.NewReader(p.Stop()))
	if err != nil {
		t.Fatal(err)
	}
	controlAttempts, err := probe.Parse(strings.NewReader(control.Stop()))
	if err != nil {
		t.Fatal(err)
	}
	failed, controlFailed := probe.Failures(attempts), probe.Failures(controlAttempts)
	t.Logf("stressed %s for 15 s, %d speaker pauses: ARP saw %v; %d of %d requests failed (%s), to the NodePort %d of %d (%s)",
		owner, pauses, macs, failed, len(attempts), probe.Describe(attempts), controlFailed, len(controlAttempts), probe.Describe(controlAttempts))
	if moves > 0 || len(macs) != 1 {
		t.Errorf("the address moved %d times under stress (MACs %v)", moves, macs)
	}
	if failed > controlFailed+3 {
		t.Errorf("under stress %d requests to the address failed, %d to the NodePort on the same node: %s", failed, controlFailed, probe.Describe(attempts))
	}
	if now, err := announcer(t, "pinned", ip); err != nil || now != owner {
		t.Errorf("under stress the address moved from %s to %q (%v)", owner, now, err)
	}
}

// TestL2ExcludeLabelAndSplitBrain: the exclude label moves the address off
// a node; a static address on another LAN host is reported as split brain.
func TestL2ExcludeLabelAndSplitBrain(t *testing.T) {
	ip, url, owner := pinnedOwner(t)
	lab.MustKubectl(t, "label", "node", owner, "node.kubernetes.io/exclude-from-external-load-balancers=true")
	defer lab.MustKubectl(t, "label", "node", owner, "node.kubernetes.io/exclude-from-external-load-balancers-")
	cluster.Eventually(t, 10*time.Second, func() error {
		now, err := announcer(t, "pinned", ip)
		if err == nil && now == owner {
			return fmt.Errorf("excluded %s still announces", owner)
		}
		return err
	})
	expectBody(t, lab.Client.Name, url, "pod=pinned-")

	// Another station claims the address: the remote router's LAN leg.
	if _, err := lab.Exec(context.Background(), lab.Router.Name, "ip", "addr", "add", ip+"/32", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	defer lab.Exec(context.Background(), lab.Router.Name, "ip", "addr", "del", ip+"/32", "dev", "eth0")
	cluster.Eventually(t, 20*time.Second, func() error {
		evs := lab.MustKubectl(t, "get", "events", "--field-selector", "involvedObject.name=pinned,reason=SplitBrain", "-o", "jsonpath={.items[*].message}")
		if !strings.Contains(evs, "also answers") {
			return fmt.Errorf("no SplitBrain event: %q", evs)
		}
		return nil
	})
	cluster.Eventually(t, 20*time.Second, func() error {
		c := lab.MustKubectl(t, "get", "svc", "pinned", "-o", `jsonpath={.status.conditions[?(@.type=="pharos.io/Announced")].reason}`)
		if strings.TrimSpace(c) != "SplitBrain" {
			return fmt.Errorf("Announced reason %q, want SplitBrain", c)
		}
		return nil
	})
}

// TestL2LocalPolicyAnnouncesFromAnEndpointNode: with
// externalTrafficPolicy Local only a node with a ready local endpoint
// announces, and clients keep their source address.
func TestL2LocalPolicyAnnouncesFromAnEndpointNode(t *testing.T) {
	backend := lab.Nodes[0].Name
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: local, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {run: local}}
  template:
    metadata: {labels: {run: local}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %s}
      containers: [{name: local, image: echo, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {run: local}
  ports: [{port: 80, protocol: TCP}]
`, backend)
	if err := lab.Apply(context.Background(), manifest); err != nil {
		t.Fatal(err)
	}
	ip := loadBalancerIPs(t, "local")[0]
	cluster.Eventually(t, 30*time.Second, func() error {
		now, err := announcer(t, "local", ip)
		if err == nil && now != backend {
			return fmt.Errorf("%s announces, want %s, the only node with an endpoint", now, backend)
		}
		return err
	})
	expectBody(t, lab.Client.Name, "http://"+ip+"/", "client="+lab.Client.V4.String()+":")
}

// TestL2SharedAddressAndInterfaces: Services sharing an address are
// announced from one node; an advertisement naming an interface that no
// node has gives InterfaceDown with the reason.
func TestL2SharedAddressAndInterfaces(t *testing.T) {
	manifest := `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: shared}
spec: {addresses: ["198.18.103.0/28"]}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: shared}
spec: {ipAddressPools: [shared]}
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: wrongif}
spec: {addresses: ["198.18.103.16/28"]}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: wrongif}
spec: {ipAddressPools: [wrongif], interfaces: [eth9]}
---
apiVersion: v1
kind: Service
metadata: {name: share-a, namespace: default, annotations: {pharos.io/address-pool: shared, pharos.io/allow-shared-ip: k}}
spec: {type: LoadBalancer, selector: {run: my-nginx}, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: share-b, namespace: default, annotations: {pharos.io/address-pool: shared, pharos.io/allow-shared-ip: k}}
spec: {type: LoadBalancer, selector: {run: my-nginx}, ports: [{port: 81, targetPort: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: wrongif, namespace: default, annotations: {pharos.io/address-pool: wrongif}}
spec: {type: LoadBalancer, selector: {run: my-nginx}, ports: [{port: 80, protocol: TCP}]}
`
	if err := lab.Apply(context.Background(), manifest); err != nil {
		t.Fatal(err)
	}
	a, b := loadBalancerIPs(t, "share-a")[0], loadBalancerIPs(t, "share-b")[0]
	if a != b {
		t.Fatalf("share-a has %s and share-b %s, want one shared address", a, b)
	}
	var na, nb string
	cluster.Eventually(t, 30*time.Second, func() (err error) {
		if na, err = announcer(t, "share-a", a); err != nil {
			return err
		}
		nb, err = announcer(t, "share-b", b)
		return err
	})
	if na != nb {
		t.Errorf("the shared address is announced from %s for share-a and %s for share-b", na, nb)
	}
	expectBody(t, lab.Client.Name, "http://"+a+":81/", "pod=my-nginx-")
	cluster.Eventually(t, 30*time.Second, func() error {
		c := lab.MustKubectl(t, "get", "svc", "wrongif", "-o", `jsonpath={.status.conditions[?(@.type=="pharos.io/Announced")].reason} {.status.conditions[?(@.type=="pharos.io/Announced")].message}`)
		if !strings.HasPrefix(c, "InterfaceDown ") || !strings.Contains(c, "eth9") {
			return fmt.Errorf("wrongif: %q", c)
		}
		return nil
	})
}

// setNetworkUnavailable sets the node's NetworkUnavailable condition, as a
// CNI or the cloud route controller does when the node's pod network is
// not configured.
func setNetworkUnavailable(t *testing.T, node string, unavailable bool) {
	t.Helper()
	status := "False"
	if unavailable {
		status = "True"
	}
	lab.MustKubectl(t, "patch", "node", node, "--subresource=status", "--type=strategic", "-p",
		fmt.Sprintf(`{"status":{"conditions":[{"type":"NetworkUnavailable","status":%q,"reason":"PharosE2E","message":"set by the e2e test"}]}}`, status))
}

// TestL2NetworkUnavailableNodeHandsOver: a node whose NetworkUnavailable
// condition turns True stops announcing; the LAN sees another node's MAC
// for the address and the Service keeps answering. (MetalLB's speaker
// excludes such nodes too.)
func TestL2NetworkUnavailableNodeHandsOver(t *testing.T) {
	ip, url, owner := pinnedOwner(t)
	setNetworkUnavailable(t, owner, true)
	defer setNetworkUnavailable(t, owner, false)
	ownerMAC := macOf(t, owner)
	var next string
	cluster.Eventually(t, 10*time.Second, func() error {
		macs, out := lab.LANMACs(context.Background(), ip)
		if len(macs) != 1 || macs[ownerMAC] {
			return fmt.Errorf("the LAN's answers for %s come from %v; want one MAC, not %s's %s:\n%s", ip, macs, owner, ownerMAC, out)
		}
		for _, n := range lab.Nodes {
			if macs[macOf(t, n.Name)] {
				next = n.Name
			}
		}
		if next == "" {
			return fmt.Errorf("MAC %v is no node's", macs)
		}
		return nil
	})
	expectBody(t, lab.Client.Name, url, "pod=pinned-")
	if now, err := announcer(t, "pinned", ip); err != nil || now != next {
		t.Errorf("the Announced condition names %q (%v), the LAN sees %s", now, err, next)
	}
}
