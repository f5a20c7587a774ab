package speaker

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/internal/speakerlist"
)

func cutoffNode(name string, ready bool) corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}}}
}

func TestCutOff(t *testing.T) {
	three := []corev1.Node{cutoffNode("n1", true), cutoffNode("n2", true), cutoffNode("n3", true)}
	all := map[string]bool{"n1": true, "n2": true, "n3": true}
	members := func(names ...string) map[string]speakerlist.Meta {
		m := map[string]speakerlist.Meta{}
		for _, n := range names {
			m[n] = speakerlist.Meta{}
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		self    string
		nodes   []corev1.Node
		members map[string]speakerlist.Meta
		known   map[string]bool
		want    bool
	}{
		{"everyone alive", "n1", three, members("n1", "n2", "n3"), all, false},
		{"one peer lost: still the majority", "n1", three, members("n1", "n2"), all, false},
		{"memberlist port blocked: alone while the others are Ready", "n1", three, members("n1"), all, true},
		{"the others failed and are NotReady: alone, not cut off", "n1",
			[]corev1.Node{cutoffNode("n1", true), cutoffNode("n2", false), cutoffNode("n3", false)}, members("n1"), all, false},
		{"a Ready node never met (no speaker) does not count", "n1", three, members("n1", "n2"), map[string]bool{"n1": true, "n2": true}, false},
		{"alone, the others never met: a single speaker", "n1", three, members("n1"), map[string]bool{}, false},
		{"single-node cluster", "n1", []corev1.Node{cutoffNode("n1", true)}, members("n1"), all, false},
		{"two nodes split: the smallest name keeps the majority", "n1", three[:2], members("n1"), all, false},
		{"two nodes split: the other side gives way", "n2", three[:2], members("n2"), all, true},
		{"four nodes split two and two: the side with n1 keeps it", "n3",
			append(three, cutoffNode("n4", true)), members("n3", "n4"), map[string]bool{"n1": true, "n2": true, "n3": true, "n4": true}, true},
		{"four nodes split two and two: n1's side", "n2",
			append(three, cutoffNode("n4", true)), members("n1", "n2"), map[string]bool{"n1": true, "n2": true, "n3": true, "n4": true}, false},
		{"self absent from the Nodes list still counts itself", "n9", three, members("n9", "n1", "n2"), all, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CutOff(tc.self, tc.nodes, tc.members, tc.known); got != tc.want {
				t.Errorf("CutOff(%s) = %v, want %v", tc.self, got, tc.want)
			}
		})
	}
}
