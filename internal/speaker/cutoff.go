package speaker

import (
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// CutOff reports whether node self is on the minority side of a split of
// the speakers' memberlist cluster: it sees as alive members at most half
// of the speakers it expects, while the Nodes API says the others are
// Ready. That is what a node sees when only its memberlist port is blocked
// (a firewall rule, MetalLB issue 740): the others look dead to it, and it
// to them, but they are all still up and on the LAN.
//
// The speakers expected are self and every node that is Ready (its Ready
// condition True) and in known: the nodes this speaker has met as members
// and that did not leave gracefully (a speaker that drains or is removed
// is forgotten by the caller). A node never met (one without a speaker)
// never counts. With exactly half alive, the side holding the expected
// node with the smallest name is the majority, so that in a two-node
// cluster exactly one side gives way.
//
// A node cut off must not become a second announcer: it gives up an
// address as soon as it sees another MAC answer for it (the majority side
// has elected another owner), and takes an address it does not announce
// only once the LAN shows that nobody answers for it (the other speakers
// really failed, or their node did: once the control plane marks such
// nodes NotReady, about 40 s later by default, this node is no longer cut
// off at all).
func CutOff(self string, nodes []corev1.Node, members map[string]speakerlist.Meta, known map[string]bool) bool {
	expected := []string{self}
	alive := 1
	for i := range nodes {
		n := &nodes[i]
		if n.Name == self || !known[n.Name] || !nodeReady(n) {
			continue
		}
		expected = append(expected, n.Name)
		if _, ok := members[n.Name]; ok {
			alive++
		}
	}
	switch total := len(expected); {
	case 2*alive > total:
		return false
	case 2*alive < total:
		return true
	default:
		first := slices.Min(expected)
		_, ok := members[first]
		return first != self && !ok
	}
}

// nodeReady reports whether the node's Ready condition is True.
func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
