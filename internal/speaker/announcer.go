package speaker

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/election"
)

// Announcer is one way of announcing addresses: layer 2 today, BGP next.
// The speaker hands every announcer the same desired state; each makes its
// share of it so on this node and says, per address, what it does.
type Announcer interface {
	// Apply makes this node's announcements match the state. It is called
	// on every change and must be idempotent and quick (no waiting on the
	// network).
	Apply(st *State)
	// Describe says how the address is announced according to the state,
	// cluster-wide, together with any failure of this node's own part.
	Describe(a *Address) Report
	// Close withdraws every announcement and frees what the announcer
	// holds (sockets, sessions). Apply must not be called after it.
	Close() error
}

// Report is an announcer's account of one address, for the Service's
// Announced condition.
type Report struct {
	// Applies says the announcer has anything to do with the address (for
	// example: an advertisement of its protocol selects the pool). A report
	// that does not apply is left out of the condition.
	Applies bool
	// Announced says some node announces the address by this protocol.
	Announced bool
	// Reason is the condition reason when the address is not announced, or
	// when it is but something is wrong (v1beta1.ReasonSplitBrain); "" for
	// a plain success.
	Reason string
	// Message is the human text, for example "from node n1 on eth0 (ARP)"
	// or why no node announces it.
	Message string
}

// Condition words a Service's Announced condition from the announcers'
// reports, and names the speaker that writes it: the winner of its first
// address that has one, or else the first of the alive speakers in that
// address's hash order. So exactly one speaker writes each Service.
func Condition(svc *corev1.Service, st *State, announcers []Announcer, alive []string) (metav1.Condition, string) {
	cond := metav1.Condition{Type: v1beta1.ConditionAnnounced, Status: metav1.ConditionTrue, Reason: v1beta1.ReasonAnnounced, ObservedGeneration: svc.Generation}
	var parts []string
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		ip, err := netip.ParseAddr(ing.IP)
		if err != nil {
			continue
		}
		a := st.Lookup(ip)
		if a == nil {
			continue
		}
		var announced, failed []string
		notReason := ""
		for _, an := range announcers {
			r := an.Describe(a)
			if !r.Applies {
				continue
			}
			if r.Announced {
				announced = append(announced, r.Message)
				if r.Reason != "" {
					cond.Reason = r.Reason
				}
				continue
			}
			failed = append(failed, r.Message)
			if notReason == "" {
				notReason = r.Reason
			}
		}
		switch {
		case len(announced) > 0:
			parts = append(parts, fmt.Sprintf("%s %s", ip, strings.Join(announced, "; ")))
		case len(failed) > 0:
			cond.Status, cond.Reason = metav1.ConditionFalse, notReason
			parts = append(parts, fmt.Sprintf("%s not announced: %s", ip, strings.Join(failed, "; ")))
		default:
			cond.Status, cond.Reason = metav1.ConditionFalse, string(election.NoMatchingAdvertisement)
			parts = append(parts, fmt.Sprintf("%s not announced: no advertisement selects pool %s; create an L2Advertisement that lists it in spec.ipAddressPools", ip, a.Pool))
		}
	}
	cond.Message = strings.Join(parts, "; ")
	return cond, Writer(svc, st, alive)
}

// Writer names the speaker that writes a Service's Announced condition:
// the winner of its first address that has one, or else the first of the
// alive speakers in that address's hash order. It is cheap, so a speaker
// words only the conditions it writes.
func Writer(svc *corev1.Service, st *State, alive []string) string {
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		ip, err := netip.ParseAddr(ing.IP)
		if err != nil {
			continue
		}
		a := st.Lookup(ip)
		if a == nil {
			continue
		}
		if a.Election.Winner != "" {
			return a.Election.Winner
		}
		if order := election.Order(ip, alive); len(order) > 0 {
			return order[0]
		}
	}
	return ""
}
