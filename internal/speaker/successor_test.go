package speaker

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// TestSuccessorIsWhomTheClusterElectsNext checks the promise the fast
// failover rests on: the node that Successor names, and that watches the
// announcing node, is the node every speaker elects once that node is gone,
// whether the winner is the preferred node or an owner kept by its claim.
func TestSuccessorIsWhomTheClusterElectsNext(t *testing.T) {
	snap := base()
	snap.Nodes = append(snap.Nodes, node("n4"), node("n5"))
	snap.Members = allMembers("n1", "n2", "n3", "n4", "n5")
	snap.Claims = map[netip.Addr][]speakerlist.Claim{}
	snap.Services = nil
	for i := 1; i <= 60; i++ {
		ip := fmt.Sprintf("198.18.0.%d", i)
		snap.Services = append(snap.Services, service(fmt.Sprintf("s%d", i), []string{ip}))
		snap.EndpointSlices = append(snap.EndpointSlices, endpoints(fmt.Sprintf("s%d", i), "n1"))
		if i%3 == 0 {
			// A kept owner that is not the preferred node.
			snap.Claims[netip.MustParseAddr(ip)] = []speakerlist.Claim{{Node: fmt.Sprintf("n%d", 1+i%5), Epoch: 1}}
		}
	}
	st := Compute(snap)
	if len(st.Addresses) != 60 {
		t.Fatalf("%d addresses", len(st.Addresses))
	}
	for _, a := range st.Addresses {
		winner, next := a.L2Node(), a.Successor()
		if winner == "" || next == "" || winner == next {
			t.Fatalf("%s: winner %q, successor %q", a.IP, winner, next)
		}
		gone := snap
		gone.Members = allMembers("n1", "n2", "n3", "n4", "n5")
		delete(gone.Members, winner)
		if got := Compute(gone).Lookup(a.IP).L2Node(); got != next {
			t.Errorf("%s: without %s the cluster elects %s, but the successor was %s", a.IP, winner, got, next)
		}
		watch, _ := st.HeartbeatPeers(next)
		_, notify := st.HeartbeatPeers(winner)
		if !slices.Contains(watch, winner) || !slices.Contains(notify, next) {
			t.Errorf("%s: %s watches %v, %s notifies %v", a.IP, next, watch, winner, notify)
		}
	}
}

func TestHeartbeatPeersNeedASecondCandidate(t *testing.T) {
	snap := base()
	snap.Services[0].Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	st := Compute(snap) // only n1 holds an endpoint: it alone may announce
	a := st.Lookup(netip.MustParseAddr(ip4))
	if a.L2Node() != "n1" || a.Successor() != "" {
		t.Fatalf("winner %q, successor %q", a.L2Node(), a.Successor())
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if w, no := st.HeartbeatPeers(n); len(w)+len(no) != 0 {
			t.Errorf("%s exchanges heartbeats with %v %v for an address nobody could take over", n, w, no)
		}
	}
}
