package main

import (
	"context"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/pharos-lb/pharos/api/v1beta1"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// probesPerRound bounds the addresses probed per interval.
const probesPerRound = 16

var splitBrainTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "pharos_l2_split_brain_total",
	Help: "Probes in which another MAC answered for an address this node announces.",
}, []string{"ip"})

func init() { metrics.Registry.MustRegister(splitBrainTotal) }

// probeOwned asks the LAN, every interval, who else answers for each
// address this node announces. Another MAC means two stations claim the
// address (another load balancer, a static assignment, or a speaker that
// missed the election): it is counted, logged and recorded as a Warning
// event on the Services of the address, once per conflict.
func (s *Speaker) probeOwned(ctx context.Context, rec recorder.EventRecorder, interval time.Duration) {
	reported := map[netip.Addr]string{}
	offset := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		var jobs []netip.Addr
		for ip := range s.l2.Owned() {
			jobs = append(jobs, ip)
		}
		// A bounded, rotating share per round keeps the cost flat however
		// many addresses the node announces; each is still probed within
		// len/probesPerRound rounds.
		sort.Slice(jobs, func(i, j int) bool { return jobs[i].Less(jobs[j]) })
		if n := len(jobs); n > probesPerRound {
			offset %= n
			jobs = append(jobs[offset:], jobs[:offset]...)[:probesPerRound]
			offset += probesPerRound
		}
		for _, ip := range jobs {
			macs, err := s.l2.Probe(ctx, ip, 300*time.Millisecond)
			if err != nil || len(macs) == 0 {
				if _, was := reported[ip]; was {
					delete(reported, ip)
					s.setConflict(ip, "")
				}
				continue
			}
			splitBrainTotal.WithLabelValues(ip.String()).Inc()
			seen := macList(macs)
			if reported[ip] == seen {
				continue
			}
			reported[ip] = seen
			s.setConflict(ip, seen)
			s.log.Warn("split brain: another station answers for an address this node announces", "ip", ip, "macs", seen)
			for _, svc := range s.servicesOf(ctx, ip) {
				rec.Eventf(svc, nil, corev1.EventTypeWarning, v1beta1.ReasonSplitBrain, "Announce",
					"%s is announced by node %s but MAC %s also answers for it: find the other device or load balancer that uses this address", ip, s.node, seen)
			}
		}
	}
}

func macList(macs []net.HardwareAddr) string {
	s := make([]string, len(macs))
	for i, m := range macs {
		s[i] = m.String()
	}
	return strings.Join(s, ",")
}

// servicesOf returns the Services whose status shows ip.
func (s *Speaker) servicesOf(ctx context.Context, ip netip.Addr) []*corev1.Service {
	var list corev1.ServiceList
	if err := s.client.List(ctx, &list); err != nil {
		return nil
	}
	var out []*corev1.Service
	for i := range list.Items {
		for _, ing := range list.Items[i].Status.LoadBalancer.Ingress {
			if ing.IP == ip.String() {
				out = append(out, &list.Items[i])
			}
		}
	}
	return out
}

// setConflict records (or, with "", clears) the other MACs seen answering
// for ip, for the Announced condition, and triggers a status update.
func (s *Speaker) setConflict(ip netip.Addr, macs string) {
	s.l2.SetConflict(ip, macs)
	if s.kick != nil {
		s.kick()
	}
}
