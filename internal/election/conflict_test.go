package election

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestResolveConflict: after a split brain, the election winner keeps the
// address if it claims it; otherwise the earliest claim, ties broken by hash
// order.
func TestResolveConflict(t *testing.T) {
	order := Order(ip4, three) // order[0] ranks first for ip4
	tests := []struct {
		name   string
		winner string
		claims []Claim
		want   string
	}{
		{"no claim", order[0], nil, ""},
		{"a single claim keeps it", "", []Claim{{order[2], 9}}, order[2]},
		{"the winner keeps it although its claim is the latest", order[1],
			[]Claim{{order[0], 1}, {order[1], 7}, {order[2], 3}}, order[1]},
		{"the winner does not claim: the earliest claim", order[0],
			[]Claim{{order[1], 5}, {order[2], 3}}, order[2]},
		{"no winner: the earliest claim", "",
			[]Claim{{order[0], 5}, {order[2], 4}}, order[2]},
		{"a tie goes to the first in hash order", "plab-n9",
			[]Claim{{order[2], 2}, {order[1], 2}, {order[0], 3}}, order[1]},
		{"a tie between all three", "",
			[]Claim{{order[2], 0}, {order[1], 0}, {order[0], 0}}, order[0]},
		{"a node claiming twice counts with its earliest claim", "",
			[]Claim{{order[0], 8}, {order[1], 6}, {order[0], 2}}, order[0]},
		{"claims without a node are ignored", "",
			[]Claim{{"", 0}, {order[1], 6}}, order[1]},
		{"only claims without a node", "", []Claim{{"", 0}}, ""},
		{"epochs compare as unsigned", "",
			[]Claim{{order[0], 1 << 63}, {order[1], 1<<63 - 1}}, order[1]},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 6 {
				claims := slices.Clone(tc.claims)
				rng.Shuffle(len(claims), func(i, j int) { claims[i], claims[j] = claims[j], claims[i] })
				if got := ResolveConflict(ip4, tc.winner, claims); got != tc.want {
					t.Fatalf("ResolveConflict(%v, %q, %v) = %q, want %q", ip4, tc.winner, claims, got, tc.want)
				}
			}
		})
	}
}

// TestResolveConflictTieUsesAddress: the tie-break depends on the address,
// so ties do not all go to one node.
func TestResolveConflictTieUsesAddress(t *testing.T) {
	wins := map[string]int{}
	for i := range 300 {
		ip := addr6(i)
		w := ResolveConflict(ip, "", []Claim{{"plab-n1", 1}, {"plab-n2", 1}, {"plab-n3", 1}})
		if w != Order(ip, three)[0] {
			t.Fatalf("%s: tie went to %s, not the first in hash order", ip, w)
		}
		wins[w]++
	}
	if len(wins) != 3 {
		t.Errorf("ties went to %v", wins)
	}
}
