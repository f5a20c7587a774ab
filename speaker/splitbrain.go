package main

import (
	"context"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/speaker"
	"github.com/pharos-lb/pharos/internal/speakerlist"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// probesPerRound bounds the addresses probed per interval.
const probesPerRound = 16

// cutOffProbeInterval is the split-brain probe's interval while this node
// is cut off from the memberlist cluster (see speaker.CutOff): it bounds
// how long two MACs answer for an address the majority moved away.
const cutOffProbeInterval = 500 * time.Millisecond

// cutOffSettle is how long a node that was cut off still behaves as cut
// off once it sees the others again: memberlist tells it they are alive
// (and the speaker reconciles) before their claims arrive, and without
// those it would take back addresses the majority moved (the claims reach
// it within one push-pull, every 5 s at most).
const cutOffSettle = 5 * time.Second

// cutOff tracks whether this node is on the minority side of a memberlist
// split. Its zero value is ready to use.
type cutOff struct {
	mu sync.Mutex
	// known are the nodes met as members that did not drain since.
	known map[string]bool
	// until is when the last cut-off view ends its settling.
	until time.Time
	on    atomic.Bool
	// wake wakes the split-brain probe when the node becomes cut off.
	wake chan struct{}
}

// wakeC returns the channel on which the probe is woken.
func (c *cutOff) wakeC() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wake == nil {
		c.wake = make(chan struct{}, 1)
	}
	return c.wake
}

// update records the members seen and reports whether this node is to
// behave as cut off now (see speaker.CutOff): while it is, and for
// cutOffSettle after. settled, when not zero, is when a reconcile must
// run again to end the settling.
func (c *cutOff) update(self string, nodes []corev1.Node, members map[string]speakerlist.Meta) (on bool, settled time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known == nil {
		c.known = map[string]bool{}
	}
	for name, m := range members {
		if m.Draining {
			delete(c.known, name) // leaving gracefully: not expected back
		} else {
			c.known[name] = true
		}
	}
	now := time.Now()
	cut := speaker.CutOff(self, nodes, members, c.known)
	if cut {
		c.until = now.Add(cutOffSettle)
	}
	on = cut || now.Before(c.until)
	if on && !cut {
		settled = c.until.Sub(now)
	}
	if was := c.on.Swap(on); on && !was && c.wake != nil {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return on, settled
}

// hold makes the node behave as cut off for at least d from now (see
// update), as when it rejoins after a partition.
func (c *cutOff) hold(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until := time.Now().Add(d); until.After(c.until) {
		c.until = until
	}
}

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
	silent := map[netip.Addr]int{}
	offset := 0
	wake := s.cut.wakeC()
	for {
		// Becoming cut off wakes the probe at once: the interval may be
		// the long one.
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.probeInterval(interval)):
		case <-wake:
		}
		var jobs []netip.Addr
		owned := s.l2.Owned()
		for ip := range owned {
			jobs = append(jobs, ip)
		}
		for ip := range reported {
			if _, ok := owned[ip]; !ok {
				// Released (the conflict with it): a conflict after a
				// new takeover is reported, and acted on, again.
				delete(reported, ip)
			}
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
		// One round, one wait: the requests go out together.
		found, err := s.l2.Probe(ctx, jobs, 300*time.Millisecond)
		if err != nil {
			s.log.Debug("split-brain probe", "err", err)
		}
		for _, ip := range jobs {
			macs := found[ip]
			if len(macs) == 0 {
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
		s.probeHeld(ctx, silent)
	}
}

// heldSilentRounds is how many probes in a row nobody must answer for an
// address held back while this node is cut off before it takes it: one
// lost request must not make it a second announcer.
const heldSilentRounds = 2

// probeHeld asks the LAN who answers for the addresses this node holds
// back while it is cut off from the memberlist cluster (at most
// probesPerRound of them), and frees those nobody answered for
// heldSilentRounds probes in a row: the other speakers really failed, so
// this node announces them. silent counts the rounds, per address.
func (s *Speaker) probeHeld(ctx context.Context, silent map[netip.Addr]int) {
	held := s.l2.Held()
	for ip := range silent {
		if _, ok := held[ip]; !ok {
			delete(silent, ip)
		}
	}
	var jobs []netip.Addr
	for ip := range held {
		jobs = append(jobs, ip)
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].Less(jobs[j]) })
	if len(jobs) > probesPerRound {
		jobs = jobs[:probesPerRound]
	}
	answered := make([]int, len(jobs)) // -1: the probe failed
	var wg sync.WaitGroup
	for i, ip := range jobs {
		wg.Go(func() {
			macs, err := s.l2.ProbeHeld(ctx, ip, 300*time.Millisecond)
			answered[i] = len(macs)
			if err != nil {
				answered[i] = -1
			}
		})
	}
	wg.Wait()
	freed := false
	for i, ip := range jobs {
		switch {
		case answered[i] < 0:
			continue
		case answered[i] > 0:
			silent[ip] = 0
			continue
		}
		silent[ip]++
		if silent[ip] >= heldSilentRounds {
			s.log.Warn("cut off from the speakers' cluster and nobody answers for an address this node won: taking it", "ip", ip)
			s.l2.SetFree(ip)
			delete(silent, ip)
			freed = true
		}
	}
	if freed && s.kick != nil {
		s.kick()
	}
}

// probeInterval is the split-brain probe's interval: faster while this
// node is cut off, when a conflict means it must give an address up.
func (s *Speaker) probeInterval(interval time.Duration) time.Duration {
	if s.cut.on.Load() {
		return min(interval, cutOffProbeInterval)
	}
	return interval
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
