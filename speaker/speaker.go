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
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/bgpannounce"
	"github.com/pharos-lb/pharos/internal/heartbeat"
	"github.com/pharos-lb/pharos/internal/l2announce"
	"github.com/pharos-lb/pharos/internal/speaker"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// The speaker's permissions, each used below or by its manager's cache.
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get,namespace=pharos-system
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list;watch
// +kubebuilder:rbac:groups=pharos.io,resources=ipaddresspools;l2advertisements,verbs=list;watch
// +kubebuilder:rbac:groups=pharos.io,resources=bgppeers;bgpadvertisements;communities;bfdprofiles,verbs=list;watch
// +kubebuilder:rbac:groups=pharos.io,resources=bgpnodestatuses,verbs=get;create;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Speaker computes the desired state of every address on each change
// (internal/speaker) and hands it to its announcers; then it writes the
// Announced condition of the Services it is responsible for.
type Speaker struct {
	node   string
	client client.Client
	// cache is the client's informer cache, read directly (see cached).
	cache   cache.Cache
	members *speakerlist.List
	// heartbeat is the fast failure detector; nil when it is off.
	heartbeat *heartbeat.Heartbeat
	log       *slog.Logger
	// l2 is the layer-2 announcer; announcers lists every announcer, l2
	// first, in the order their reports appear in the condition.
	l2         *l2announce.Layer2
	bgp        *bgpannounce.BGP
	announcers []speaker.Announcer
	// nodeLabels are this node's labels as last seen, for BGPPeers'
	// nodeSelectors.
	nodeLabels atomic.Pointer[map[string]string]

	// joined is set once the speaker has met the cluster (or found nobody
	// to meet), and has its members' claims.
	joined atomic.Bool
	// settled is set once, after joined, the speaker has announced what the
	// election gives it: from then on it is ready, and a rolling update may
	// restart the next node's speaker.
	settled atomic.Bool
	kick    func()
	// cut says whether this node is cut off from the memberlist cluster.
	cut cutOff
	// statusJobs holds the latest state for the status writer (capacity 1).
	statusJobs chan statusJob
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

// Reconcile recomputes the desired state and applies it. It ignores the
// request: any change may move any address.
func (s *Speaker) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	// Services and EndpointSlices straight from the informers' stores:
	// listing them into typed lists copies every object, and the state
	// keeps pointers into those copies for as long as it lives (with
	// 10,000 Services, tens of MiB per state).
	svcs, err := cached[corev1.Service](ctx, s.cache, &corev1.Service{})
	if err != nil {
		return reconcile.Result{}, err
	}
	slices, err := cached[discoveryv1.EndpointSlice](ctx, s.cache, &discoveryv1.EndpointSlice{})
	if err != nil {
		return reconcile.Result{}, err
	}
	var (
		nodes  corev1.NodeList
		pools  v1beta1.IPAddressPoolList
		advs   v1beta1.L2AdvertisementList
		peers  v1beta1.BGPPeerList
		bgpAdv v1beta1.BGPAdvertisementList
		comms  v1beta1.CommunityList
		bfds   v1beta1.BFDProfileList
	)
	for _, l := range []client.ObjectList{&nodes, &pools, &advs, &peers, &bgpAdv, &comms, &bfds} {
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
	members := s.members.Members()
	alive := s.alive(members)
	st := speaker.Compute(speaker.Snapshot{
		Services: svcs, EndpointSlices: slices, Nodes: nodes.Items,
		Pools: pools.Items, L2Advertisements: advs.Items,
		Members: alive, Claims: s.members.Claims(),
		BGPPeers: peers.Items, BGPAdvertisements: bgpAdv.Items, Communities: comms.Items, BFDProfiles: bfds.Items,
	})
	was := s.cut.on.Load()
	var settle time.Duration
	st.CutOff, settle = s.cut.update(s.node, nodes.Items, members)
	if settle > 0 && s.kick != nil {
		time.AfterFunc(settle+10*time.Millisecond, s.kick)
	}
	switch {
	case st.CutOff && !was:
		s.log.Warn("cut off from the speakers' memberlist cluster while the Nodes API says the others are Ready, or just back on the LAN: giving up the addresses another MAC answers for, taking only those nobody answers for", "members", len(members))
	case !st.CutOff && was:
		s.log.Info("no longer cut off from the speakers' memberlist cluster", "members", len(members))
	}
	for i := range nodes.Items {
		if nodes.Items[i].Name == s.node {
			s.nodeLabels.Store(&nodes.Items[i].Labels)
		}
	}
	if s.heartbeat != nil {
		watch, notify := st.HeartbeatPeers(s.node)
		s.heartbeat.SetPeers(watch, notify, s.members.Addrs())
	}
	for _, a := range s.announcers {
		a.Apply(st)
	}
	if st.CutOff && s.freeHeldOfDead(st) {
		s.l2.Apply(st)
	}
	s.settled.Store(true)
	// Every change triggers a reconcile; the periodic one only repairs
	// (and notices an interface that changed without a netlink event).
	if !st.CutOff {
		// A node cut off sees every other node dead: its conditions would
		// contradict the majority's, which writes them.
		s.queueStatus(statusJob{st: st, members: alive})
	}
	return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
}

// alive returns memberlist's alive members without the nodes that the fast
// heartbeats found dead: this node takes their addresses over now, and the
// others agree once memberlist, too, declares them dead. Whether this node
// is cut off from the cluster stays memberlist's question.
func (s *Speaker) alive(members map[string]speakerlist.Meta) map[string]speakerlist.Meta {
	if s.heartbeat == nil {
		return members
	}
	dead := s.heartbeat.Dead()
	if len(dead) == 0 {
		return members
	}
	out := make(map[string]speakerlist.Meta, len(members))
	for n, m := range members {
		if _, ok := dead[n]; !ok {
			out[n] = m
		}
	}
	return out
}

// freeHeldOfDead frees the addresses this node, cut off from the
// memberlist cluster, holds back although it won them, when every other
// node that claims them is one the fast heartbeats found dead: their
// kernels no longer answer on the LAN, so no other MAC will, and probing
// the address for two rounds first (the cut-off rule) would only lengthen
// the outage. It reports whether it freed any. (A node is cut off for a few
// seconds after it rejoins, so this is the failover of a node that fails
// soon after its successor came back.)
func (s *Speaker) freeHeldOfDead(st *speaker.State) bool {
	if s.heartbeat == nil {
		return false
	}
	dead := s.heartbeat.Dead()
	if len(dead) == 0 {
		return false
	}
	freed := false
	for ip := range s.l2.Held() {
		a := st.Lookup(ip)
		if a == nil {
			continue
		}
		others, allDead := 0, true
		for _, c := range a.Claims {
			if c.Node == s.node {
				continue
			}
			others++
			if _, ok := dead[c.Node]; !ok {
				allDead = false
			}
		}
		if others > 0 && allDead {
			s.log.Info("cut off, but the node that announced this address is dead (no heartbeat, its kernel silent on the LAN): taking it", "ip", ip)
			s.l2.SetFree(ip)
			freed = true
		}
	}
	return freed
}

// ownerLeft reports when the node that announced ip left or died, for the
// failover histogram: memberlist's notification if it came, else the last
// heartbeat of a claimant the fast heartbeats found dead.
func (s *Speaker) ownerLeft(ip netip.Addr) (time.Time, bool) {
	if at, ok := s.members.OwnerLeft(ip); ok {
		return at, true
	}
	if s.heartbeat == nil {
		return time.Time{}, false
	}
	dead := s.heartbeat.Dead()
	for _, c := range s.members.Claims()[ip] {
		if at, ok := dead[c.Node]; ok {
			return at, true
		}
	}
	return time.Time{}, false
}

// cached returns the objects that the cache's informer for obj's kind
// holds, without copying them: read-only, like client.UnsafeDisableDeepCopy.
func cached[T any](ctx context.Context, c cache.Cache, obj client.Object) ([]*T, error) {
	inf, err := c.GetInformer(ctx, obj)
	if err != nil {
		return nil, err
	}
	st, ok := inf.(interface{ GetStore() toolscache.Store })
	if !ok {
		return nil, fmt.Errorf("the cache's informer for %T (%T) has no store", obj, inf)
	}
	items := st.GetStore().List()
	out := make([]*T, 0, len(items))
	for _, it := range items {
		if o, ok := it.(*T); ok {
			out = append(out, o)
		}
	}
	return out, nil
}

// statusJob is one state whose conditions are to be written.
type statusJob struct {
	st      *speaker.State
	members map[string]speakerlist.Meta
}

// queueStatus hands the state to the status writer, replacing a state it
// has not started on: only the latest matters. Writing thousands of
// conditions takes seconds; the next reconcile (a failover, a new
// announcement) must never wait for it.
func (s *Speaker) queueStatus(j statusJob) {
	for {
		select {
		case s.statusJobs <- j:
			return
		default:
		}
		select {
		case <-s.statusJobs: // drop the stale one
		default:
		}
	}
}

// runStatusWriter writes the Announced conditions of queued states until
// ctx ends; a failed write is retried with the next state (every change,
// and every 30 s at the latest).
func (s *Speaker) runStatusWriter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.statusJobs:
			if err := s.writeStatus(ctx, j.st, j.members); err != nil && ctx.Err() == nil {
				s.log.Warn("writing Service conditions", "err", err)
			}
		}
	}
}

// writeStatus sets the Announced condition on the Services whose status
// this node writes (see speaker.Condition), and only on change.
func (s *Speaker) writeStatus(ctx context.Context, st *speaker.State, members map[string]speakerlist.Meta) error {
	alive := make([]string, 0, len(members))
	for name, m := range members {
		if !m.Draining {
			alive = append(alive, name)
		}
	}
	sort.Strings(alive)
	done := map[string]bool{}
	var errs []error
	for _, a := range st.Addresses {
		for _, svc := range a.Services {
			key := svc.Namespace + "/" + svc.Name
			if done[key] {
				continue
			}
			done[key] = true
			if speaker.Writer(svc, st, alive) != s.node {
				continue
			}
			cond, _ := speaker.Condition(svc, st, s.announcers, alive)
			old := meta.FindStatusCondition(svc.Status.Conditions, v1beta1.ConditionAnnounced)
			if old != nil && old.Status == cond.Status && old.Reason == cond.Reason && old.Message == cond.Message {
				continue
			}
			desired := svc.DeepCopy()
			meta.SetStatusCondition(&desired.Status.Conditions, cond)
			if equality.Semantic.DeepEqual(desired.Status, svc.Status) {
				continue
			}
			// A strategic merge patch of the one condition (merged by type):
			// the cached object is trimmed (trimForCache), so it must never
			// be sent whole, and the controller's condition is left alone.
			if err := s.client.Status().Patch(ctx, desired, client.StrategicMergeFrom(svc)); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("writing the Announced condition of %s: %w", key, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Drain hands every address over before the speaker stops: it marks this
// node draining, waits until other nodes claim its addresses (or the
// timeout passes), then stops answering and leaves the cluster.
func (s *Speaker) Drain(timeout time.Duration) {
	// The caller has published this node's metadata as draining: the
	// others no longer count it as a candidate and take its addresses.
	mine := s.l2.Owned()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		claims := s.members.Claims()
		taken := 0
		for ip := range mine {
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
	s.l2.Release()
	// BGP sessions with graceful restart close without a NOTIFICATION: the
	// routers keep this node's routes until its speaker is back.
	if err := s.bgp.CloseGracefully(); err != nil {
		s.log.Warn("stopping BGP", "err", err)
	}
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

// NodeLabels returns this node's labels as last seen.
func (s *Speaker) NodeLabels() map[string]string {
	if l := s.nodeLabels.Load(); l != nil {
		return *l
	}
	return nil
}
