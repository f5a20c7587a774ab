package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/election"
	"github.com/pharos-lb/pharos/internal/layer2"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// ConditionAnnounced is the Service condition that says which node
// announces its addresses, or why none does.
const ConditionAnnounced = "pharos.io/Announced"

// The speaker's permissions, each used below or by its manager's cache.
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=update
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get,namespace=pharos-system
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list;watch
// +kubebuilder:rbac:groups=pharos.io,resources=ipaddresspools;l2advertisements,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Speaker announces, by layer 2, the addresses that this node wins.
type Speaker struct {
	node    string
	client  client.Client
	members *speakerlist.List
	log     *slog.Logger
	annOpts layer2.Options

	mu         sync.Mutex
	announcers map[string]*layer2.Announcer
	owned      map[netip.Addr]ownership
	draining   bool
	runCtx     context.Context
	// joined is set once the speaker has met the cluster (or found nobody
	// to meet), and has its members' claims.
	joined atomic.Bool
	// settled is set once, after joined, the speaker has announced what the
	// election gives it: from then on it is ready, and a rolling update may
	// restart the next node's speaker.
	settled atomic.Bool
	// conflicts are the other MACs that answer for addresses this node
	// announces (split brain), by address.
	conflicts map[netip.Addr]string
	kick      func()
}

// ReadyCheck is the speaker's readiness: it has met the cluster and
// announces its share. A DaemonSet rolling update waits for it before it
// restarts the next node's speaker, so two handovers never overlap.
func (s *Speaker) ReadyCheck(*http.Request) error {
	switch {
	case !s.joined.Load():
		return errors.New("not yet joined the speakers' cluster")
	case !s.settled.Load():
		return errors.New("joined, not yet announcing its share")
	}
	return nil
}

// currentOwner is the node that holds the address now: among the nodes
// that claim it and are still candidates, the one that claimed it first,
// so that a node that returns, or claims by mistake, never takes it away
// from the established owner. Ties go to the hash order.
func currentOwner(in election.Input, claims []speakerlist.Claim) string {
	if len(claims) == 0 {
		return ""
	}
	candidates := map[string]bool{}
	for _, c := range election.Elect(in).Candidates {
		candidates[c] = true
	}
	ec := make([]election.Claim, 0, len(claims))
	for _, c := range claims {
		if candidates[c.Node] {
			ec = append(ec, election.Claim{Node: c.Node, Epoch: uint64(c.Epoch)})
		}
	}
	return election.ResolveConflict(in.IP, "", ec)
}

type ownership struct {
	iface string
	epoch int64
}

// Reconcile recomputes every election and applies this node's share. It
// ignores the request: any change may move any address.
func (s *Speaker) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var (
		svcs   corev1.ServiceList
		slices discoveryv1.EndpointSliceList
		nodes  corev1.NodeList
		pools  v1beta1.IPAddressPoolList
		advs   v1beta1.L2AdvertisementList
	)
	for _, l := range []client.ObjectList{&svcs, &slices, &nodes, &pools, &advs} {
		// Read-only use of the cache's objects: copying thousands of
		// Services and EndpointSlices on every change would dominate the
		// speaker's CPU and memory.
		if err := s.client.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			return reconcile.Result{}, err
		}
	}
	if !s.joined.Load() {
		// Announcing before meeting the cluster would take addresses that
		// others hold, only to give them back: a needless outage.
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	v := buildView(svcs.Items, slices.Items, nodes.Items, pools.Items, advs.Items)
	members := s.members.Members()
	claims := s.members.Claims()

	results := map[netip.Addr]election.Result{}
	wanted := map[netip.Addr]string{} // address -> interface, for this node
	for _, ip := range v.sortedIPs() {
		iv := v.ips[ip]
		in := v.electionInput(iv, members)
		in.CurrentOwner = currentOwner(in, claims[ip])
		r := election.Elect(in)
		results[ip] = r
		if r.Winner == s.node && len(r.Interfaces) > 0 {
			wanted[ip] = r.Interfaces[0]
		}
	}
	s.apply(wanted)
	s.settled.Store(true)
	// Every change triggers a reconcile; the periodic one only repairs.
	return reconcile.Result{RequeueAfter: 30 * time.Second}, s.writeStatus(ctx, v, results, members)
}

// apply makes the announcers answer exactly for the wanted addresses and
// publishes the claims.
func (s *Speaker) apply(wanted map[netip.Addr]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		wanted = map[netip.Addr]string{}
	}
	now := time.Now().UnixNano()
	next := map[netip.Addr]ownership{}
	byIface := map[string][]netip.Addr{}
	for ip, iface := range wanted {
		o, had := s.owned[ip]
		if !had || o.iface != iface {
			o = ownership{iface: iface, epoch: now}
			s.log.Info("taking over", "ip", ip, "interface", iface)
		}
		next[ip] = o
		byIface[iface] = append(byIface[iface], ip)
	}
	for ip, o := range s.owned {
		if _, keep := next[ip]; !keep {
			s.log.Info("releasing", "ip", ip, "interface", o.iface)
		}
	}
	for iface := range byIface {
		if _, ok := s.announcers[iface]; !ok {
			opts := s.annOpts
			opts.Interface = iface
			a, err := layer2.New(opts)
			if err != nil {
				s.log.Error("cannot announce on interface", "interface", iface, "err", err)
				delete(byIface, iface)
				for ip, o := range next {
					if o.iface == iface {
						delete(next, ip)
					}
				}
				continue
			}
			s.announcers[iface] = a
			go func() {
				if err := a.Run(s.runCtx); err != nil && s.runCtx.Err() == nil {
					s.log.Error("announcer stopped", "interface", iface, "err", err)
				}
			}()
		}
	}
	for iface, a := range s.announcers {
		a.SetOwned(byIface[iface])
	}
	changed := len(next) != len(s.owned)
	for ip, o := range next {
		if s.owned[ip] != o {
			changed = true
		}
	}
	s.owned = next
	if changed {
		claims := map[netip.Addr]int64{}
		for ip, o := range next {
			claims[ip] = o.epoch
		}
		s.members.SetClaims(claims)
	}
}

// writeStatus sets the Announced condition on the Services whose status
// this node is responsible for: those whose first address it won, or, for
// addresses nobody announces, those for which it ranks first among the
// alive speakers. So one speaker writes each Service, and only on change.
func (s *Speaker) writeStatus(ctx context.Context, v *view, results map[netip.Addr]election.Result, members map[string]speakerlist.Meta) error {
	alive := make([]string, 0, len(members))
	for name, m := range members {
		if !m.Draining {
			alive = append(alive, name)
		}
	}
	done := map[string]bool{}
	var firstErr error
	for _, ip := range v.sortedIPs() {
		for _, svc := range v.ips[ip].services {
			key := svc.Namespace + "/" + svc.Name
			if done[key] {
				continue
			}
			done[key] = true
			cond, writer := s.condition(svc, results, alive)
			if writer != s.node {
				continue
			}
			old := meta.FindStatusCondition(svc.Status.Conditions, ConditionAnnounced)
			if old != nil && old.Status == cond.Status && old.Reason == cond.Reason && old.Message == cond.Message {
				continue
			}
			desired := svc.DeepCopy()
			meta.SetStatusCondition(&desired.Status.Conditions, cond)
			if equality.Semantic.DeepEqual(desired.Status, svc.Status) {
				continue
			}
			if err := s.client.Status().Update(ctx, desired); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) && firstErr == nil {
				firstErr = fmt.Errorf("writing the Announced condition of %s: %w", key, err)
			}
		}
	}
	return firstErr
}

// condition words a Service's announcement and names the speaker that
// writes it.
func (s *Speaker) condition(svc *corev1.Service, results map[netip.Addr]election.Result, alive []string) (metav1.Condition, string) {
	cond := metav1.Condition{Type: ConditionAnnounced, Status: metav1.ConditionTrue, Reason: "Announced", ObservedGeneration: svc.Generation}
	var parts []string
	writer := ""
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		ip, err := netip.ParseAddr(ing.IP)
		if err != nil {
			continue
		}
		r, ok := results[ip]
		if !ok {
			continue
		}
		if r.Winner != "" {
			proto := "ARP"
			if ip.Is6() {
				proto = "NDP"
			}
			part := fmt.Sprintf("%s from node %s on %s (%s)", ip, r.Winner, strings.Join(r.Interfaces, ","), proto)
			s.mu.Lock()
			conflict := s.conflicts[ip]
			s.mu.Unlock()
			if conflict != "" && r.Winner == s.node {
				cond.Reason = "SplitBrain"
				part += fmt.Sprintf(", but MAC %s also answers for it: find the other device or load balancer using this address", conflict)
			}
			parts = append(parts, part)
			if writer == "" {
				writer = r.Winner
			}
			continue
		}
		cond.Status, cond.Reason = metav1.ConditionFalse, string(r.Reason)
		parts = append(parts, fmt.Sprintf("%s not announced: %s", ip, r.Message))
		if writer == "" {
			if order := election.Order(ip, alive); len(order) > 0 {
				writer = order[0]
			}
		}
	}
	cond.Message = strings.Join(parts, "; ")
	return cond, writer
}

// Drain hands every address over before the speaker stops: it marks this
// node draining, waits until other nodes claim its addresses (or the
// timeout passes), then stops answering and leaves the cluster.
func (s *Speaker) Drain(timeout time.Duration) {
	s.mu.Lock()
	mine := make([]netip.Addr, 0, len(s.owned))
	for ip := range s.owned {
		mine = append(mine, ip)
	}
	s.mu.Unlock()
	_ = s.members.SetMeta(speakerlist.Meta{InterfacesUp: localInterfaces(), Draining: true})
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		claims := s.members.Claims()
		taken := 0
		for _, ip := range mine {
			for _, c := range claims[ip] {
				if c.Node != s.node {
					taken++
					break
				}
			}
		}
		if taken == len(mine) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	s.draining = true
	for _, a := range s.announcers {
		a.SetOwned(nil)
	}
	s.owned = map[netip.Addr]ownership{}
	s.mu.Unlock()
	if err := s.members.Leave(time.Second); err != nil {
		s.log.Warn("leaving the speakers' cluster", "err", err)
	}
	s.log.Info("drained", "handedOver", len(mine))
}

// localInterfaces lists the interfaces that are up with their subnets,
// as "name=prefix", for the node's metadata.
func localInterfaces() []string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagRunning == 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil || p.Addr().IsLinkLocalUnicast() {
				continue
			}
			out = append(out, ifc.Name+"="+p.Masked().String())
		}
	}
	sort.Strings(out)
	return out
}
