package speaker

import (
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/election"
)

// reporter is an announcer that reports what its func says; Condition
// only reads reports.
type reporter func(a *Address) Report

func (r reporter) Apply(*State)               {}
func (r reporter) Describe(a *Address) Report { return r(a) }
func (r reporter) Close() error               { return nil }

// byElection reports like layer 2: announced by the winner, or the
// election's reason.
var byElection = reporter(func(a *Address) Report {
	if a.Election.Winner == "" {
		return Report{Applies: true, Reason: string(a.Election.Reason), Message: a.Election.Message}
	}
	return Report{Applies: true, Announced: true, Message: "from node " + a.Election.Winner}
})

func TestCondition(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(*Snapshot)
		announcers []Announcer
		status     metav1.ConditionStatus
		reason     string
		message    []string // substrings
		writer     string   // "winner" for the address's winner
	}{
		{name: "announced: the winner writes", announcers: []Announcer{byElection},
			status: metav1.ConditionTrue, reason: v1beta1.ReasonAnnounced, message: []string{ip4 + " from node "}, writer: "winner"},
		{name: "not announced: the reason is the announcer's, the first alive speaker in hash order writes",
			edit: func(s *Snapshot) { s.EndpointSlices = nil }, announcers: []Announcer{byElection},
			status: metav1.ConditionFalse, reason: string(election.NoEndpoints), message: []string{ip4 + " not announced: "},
			writer: election.Order(netip.MustParseAddr(ip4), []string{"n1", "n2", "n3"})[0]},
		{name: "a problem on an announced address sets the reason and keeps the status",
			announcers: []Announcer{reporter(func(*Address) Report {
				return Report{Applies: true, Announced: true, Reason: v1beta1.ReasonSplitBrain, Message: "from node n1, but MAC x also answers"}
			})},
			status: metav1.ConditionTrue, reason: v1beta1.ReasonSplitBrain, message: []string{"but MAC x also answers"}, writer: "winner"},
		{name: "one announcer of two suffices; both are reported",
			announcers: []Announcer{byElection, reporter(func(*Address) Report {
				return Report{Applies: true, Announced: true, Message: "to peers r1"}
			})},
			status: metav1.ConditionTrue, reason: v1beta1.ReasonAnnounced, message: []string{"from node ", "; to peers r1"}, writer: "winner"},
		{name: "announcers that do not apply are left out; none left means no advertisement",
			announcers: []Announcer{reporter(func(*Address) Report { return Report{} })},
			status:     metav1.ConditionFalse, reason: string(election.NoMatchingAdvertisement), message: []string{"no advertisement selects pool web"}, writer: "winner"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := base()
			if tc.edit != nil {
				tc.edit(&snap)
			}
			st := Compute(snap)
			svc := snap.Services[0]
			cond, writer := Condition(svc, st, tc.announcers, []string{"n1", "n2", "n3"})
			if cond.Type != v1beta1.ConditionAnnounced || cond.Status != tc.status || cond.Reason != tc.reason {
				t.Errorf("condition %s=%s reason %q, want %s reason %q (%s)", cond.Type, cond.Status, cond.Reason, tc.status, tc.reason, cond.Message)
			}
			for _, m := range tc.message {
				if !strings.Contains(cond.Message, m) {
					t.Errorf("message %q lacks %q", cond.Message, m)
				}
			}
			want := tc.writer
			if want == "winner" {
				want = st.Lookup(netip.MustParseAddr(ip4)).Election.Winner
			}
			if writer != want || writer == "" {
				t.Errorf("writer = %q, want %q", writer, want)
			}
		})
	}
}
