// Package bgpannounce is the speaker's BGP announcer: an embedded GoBGP v4
// server that opens this node's sessions (the BGPPeers whose nodeSelectors
// match it) and advertises, with this node as next hop, every address the
// desired state (internal/speaker) says this node advertises, aggregated and
// with the attributes of its BGPAdvertisements. It implements
// speaker.Announcer, and reports each session's state for the node's
// BGPNodeStatus.
package bgpannounce

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	corev1 "k8s.io/api/core/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
	"github.com/pharos-lb/pharos/internal/speaker"
)

// Options configure a BGP announcer.
type Options struct {
	// Node is this node's name.
	Node string
	// NodeLabels returns the node's current labels, for the peers'
	// nodeSelectors.
	NodeLabels func() map[string]string
	// Addresses are the node's InternalIPs: the next hops of its routes
	// (one per family) and the default router ID (the IPv4 one).
	Addresses []netip.Addr
	// Password reads a passwordSecret; nil refuses them.
	Password func(ctx context.Context, ref *corev1.SecretReference) (string, error)
	// ListenPort is GoBGP's TCP listener: -1 (the default, 0 here) only
	// dials out, which needs no capability.
	ListenPort int32
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnChange is called (without blocking) when a session changes state.
	OnChange func()
}

// Session is one BGP session's state, for the BGPNodeStatus.
type Session struct {
	Peer, PeerAddress string
	State             string
	BFDState          string
	PrefixesSent      int
	PrefixesReceived  int
	LastError         string
	Since             time.Time
}

type route struct {
	prefix      netip.Prefix
	localPref   uint32
	hasPref     bool
	communities []config.Community
	// allPeers says an advertisement sends the route to every peer;
	// otherwise only the peers named here get it.
	allPeers bool
	peers    map[string]bool
	// addrs are the addresses the route carries (one, or those that an
	// aggregated prefix covers); not part of the key.
	addrs map[netip.Addr]bool
}

// sendsTo reports whether the route goes to the named peer.
func (r route) sendsTo(peer string) bool { return r.allPeers || r.peers[peer] }

func (r route) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%v|%d|", r.prefix, r.hasPref, r.localPref)
	for _, c := range r.communities {
		b.WriteString(c.String())
		b.WriteByte(',')
	}
	return b.String()
}

type peerState struct {
	cfg     *config.BGPPeer
	key     string // the applied configuration, to notice changes
	session Session
	// established is the session state before the last event, to tell a
	// failure from a harmless transition.
	established bool
	// downSince is when the session was last not Established (added, or
	// dropped); zero while it is up.
	downSince time.Time
	// refused says why the speaker disabled the session itself (a router
	// whose ASN contradicts dynamicASN); it stays down until the BGPPeer
	// changes.
	refused string
}

// BGP is the BGP announcer. Its methods are safe for concurrent use.
type BGP struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	srv     *server.BgpServer
	started bool
	// routerID is the running server's BGP identifier: GoBGP has one per
	// server, so every peer of the node shares it.
	routerID netip.Addr
	cancel   context.CancelFunc
	peers    map[string]*peerState // by BGPPeer name
	byAddr   map[netip.Addr]string // peer address -> name
	routes   map[netip.Prefix]route
	errs     map[string]string // peer name -> configuration problem
	closed   bool
	// filterKey, filterGen and filter describe the export filter for
	// advertisements that name their peers.
	filterKey string
	filterGen int
	filter    installedFilter
}

var _ speaker.Announcer = (*BGP)(nil)

// New returns a BGP announcer; its GoBGP server starts with the first peer.
func New(opts Options) *BGP {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ListenPort == 0 {
		opts.ListenPort = -1
	}
	if opts.NodeLabels == nil {
		opts.NodeLabels = func() map[string]string { return nil }
	}
	return &BGP{opts: opts, log: opts.Logger.With("component", "bgp"), peers: map[string]*peerState{},
		byAddr: map[netip.Addr]string{}, routes: map[netip.Prefix]route{}, errs: map[string]string{}}
}

// Apply opens and closes sessions and advertises and withdraws routes to
// match the state. Routes are added before new peers, so that a restarted
// speaker's first UPDATEs (and its End-of-RIB, with graceful restart) carry
// every route.
func (b *BGP) Apply(st *speaker.State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || st.BGP == nil {
		return
	}
	peers := st.BGP.PeersOf(b.opts.NodeLabels())
	if len(peers) == 0 && !b.started {
		return
	}
	if err := b.startLocked(peers); err != nil {
		b.log.Error("cannot start the BGP server", "err", err)
		return
	}
	want := b.desiredRoutes(st)
	// The filter first: a route meant for some peers only must never
	// reach the others, even for a moment.
	filterChanged := b.applyPeerFilterLocked(want, peers)
	b.applyRoutesLocked(want)
	b.applyPeersLocked(peers, st.BGP)
	if filterChanged {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, ps := range b.peers {
			_ = b.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: ps.cfg.Address.String(), Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT})
		}
	}
}

// applyPeerFilterLocked keeps GoBGP's global export policy in step with
// the advertisements' spec.peers: for each peer, the prefixes it must not
// get are rejected (a neighbor-set and a prefix-set per peer and family;
// the export policy's neighbor condition matches the receiving peer).
// It reports whether the filter changed.
func (b *BGP) applyPeerFilterLocked(want map[netip.Prefix]route, peers []*config.BGPPeer) bool {
	type deny struct {
		peer   *config.BGPPeer
		v4, v6 []string
	}
	var denies []deny
	var fp strings.Builder
	for _, p := range peers {
		d := deny{peer: p}
		for prefix, r := range want {
			if r.sendsTo(p.Name) {
				continue
			}
			if prefix.Addr().Is4() {
				d.v4 = append(d.v4, prefix.String())
			} else {
				d.v6 = append(d.v6, prefix.String())
			}
		}
		if len(d.v4)+len(d.v6) == 0 {
			continue
		}
		sort.Strings(d.v4)
		sort.Strings(d.v6)
		fmt.Fprintf(&fp, "%s=%s|%v|%v;", p.Name, p.Address, d.v4, d.v6)
		denies = append(denies, d)
	}
	if fp.String() == b.filterKey {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Make before break, under names of a new generation: the old filter
	// stays assigned until the new one is, so no route slips through, and
	// no name collides with what GoBGP keeps of the old one.
	b.filterGen++
	old := b.filter
	next := installedFilter{}
	policy := &api.Policy{Name: fmt.Sprintf("pharos-peer-filter-%d", b.filterGen)}
	for i, d := range denies {
		nset := fmt.Sprintf("pharos-%d-n%d", b.filterGen, i)
		bits := 32
		if d.peer.Address.Is6() {
			bits = 128
		}
		if err := b.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR,
			Name: nset, List: []string{netip.PrefixFrom(d.peer.Address, bits).String()}}}); err != nil {
			b.log.Error("peer filter: neighbor set", "peer", d.peer.Name, "err", err)
			continue
		}
		next.sets = append(next.sets, definedSet{api.DefinedType_DEFINED_TYPE_NEIGHBOR, nset})
		for _, fam := range []struct {
			name string
			list []string
		}{{"4", d.v4}, {"6", d.v6}} {
			if len(fam.list) == 0 {
				continue
			}
			pset := fmt.Sprintf("pharos-%d-p%d-%s", b.filterGen, i, fam.name)
			var prefixes []*api.Prefix
			for _, s := range fam.list {
				p := netip.MustParsePrefix(s)
				prefixes = append(prefixes, &api.Prefix{IpPrefix: s, MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Bits())})
			}
			if err := b.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX,
				Name: pset, Prefixes: prefixes}}); err != nil {
				b.log.Error("peer filter: prefix set", "peer", d.peer.Name, "err", err)
				continue
			}
			next.sets = append(next.sets, definedSet{api.DefinedType_DEFINED_TYPE_PREFIX, pset})
			policy.Statements = append(policy.Statements, &api.Statement{Name: pset + "-deny",
				Conditions: &api.Conditions{
					NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: nset},
					PrefixSet:   &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: pset},
				},
				Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT}})
			next.statements = append(next.statements, pset+"-deny")
		}
	}
	if len(policy.Statements) > 0 {
		if err := b.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: policy}); err != nil {
			b.log.Error("peer filter: policy", "err", err)
			return false
		}
		next.policy = policy.Name
		if err := b.srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_EXPORT, Policies: []*api.Policy{{Name: policy.Name}},
			DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT}}); err != nil {
			b.log.Error("peer filter: assignment", "err", err)
			return false
		}
	}
	b.filterKey, b.filter = fp.String(), next
	b.removeFilterLocked(ctx, old)
	return true
}

// installedFilter names what one generation of the peer filter added to
// GoBGP.
type installedFilter struct {
	policy     string
	statements []string
	sets       []definedSet
}

// removeFilterLocked takes an old generation of the filter out of GoBGP.
// Failures are logged: a leftover set or statement is unused.
func (b *BGP) removeFilterLocked(ctx context.Context, f installedFilter) {
	if f.policy != "" {
		if err := b.srv.DeletePolicyAssignment(ctx, &api.DeletePolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_EXPORT, Policies: []*api.Policy{{Name: f.policy}}}}); err != nil {
			b.log.Warn("peer filter: removing the old assignment", "err", err)
		}
		if err := b.srv.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: f.policy}}); err != nil {
			b.log.Warn("peer filter: removing the old policy", "err", err)
		}
	}
	for _, st := range f.statements {
		_ = b.srv.DeleteStatement(ctx, &api.DeleteStatementRequest{Statement: &api.Statement{Name: st}, All: true})
	}
	for _, ds := range f.sets {
		if err := b.srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{DefinedType: ds.kind, Name: ds.name}, All: true}); err != nil {
			b.log.Warn("peer filter: removing an old set", "set", ds.name, "err", err)
		}
	}
}

type definedSet struct {
	kind api.DefinedType
	name string
}

// startLocked starts the GoBGP server once, with the first peer's ASN
// and the first routerID that a peer sets.
func (b *BGP) startLocked(peers []*config.BGPPeer) error {
	if b.started {
		return nil
	}
	asn := uint32(64512)
	routerID := b.defaultRouterID()
	if len(peers) > 0 {
		asn = peers[0].MyASN
	}
	for _, p := range peers {
		if p.RouterID.IsValid() {
			routerID = p.RouterID
			break
		}
	}
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	inner := b.log.With("component", "gobgp").Handler()
	logger := slog.New(&notifyHandler{Handler: &levelHandler{Handler: inner, level: lvl}, onNotify: b.onNotification})
	srv := server.NewBgpServer(server.LoggerOption(logger, lvl))
	go srv.Serve()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: asn, RouterId: routerID.String(), ListenPort: b.opts.ListenPort}}); err != nil {
		srv.Stop()
		return err
	}
	wctx, wcancel := context.WithCancel(context.Background())
	if err := srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{OnPeerUpdate: b.onPeerEvent}, server.WatchPeer()); err != nil {
		wcancel()
		srv.Stop()
		return err
	}
	b.srv, b.started, b.cancel, b.routerID = srv, true, wcancel, routerID
	b.log.Info("BGP server started", "asn", asn, "routerID", routerID)
	return nil
}

// defaultRouterID is the node's IPv4 address, or on an IPv6-only node a
// stable address derived from its name (RFC 6286 only asks for a unique
// 32-bit value).
func (b *BGP) defaultRouterID() netip.Addr {
	for _, a := range b.opts.Addresses {
		if a.Is4() {
			return a
		}
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(b.opts.Node))
	v := h.Sum32()
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// nextHop is the node's address of ip's family.
func (b *BGP) nextHop(ip netip.Addr) (netip.Addr, bool) {
	for _, a := range b.opts.Addresses {
		if a.Is4() == ip.Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// desiredRoutes computes this node's routes: every address it advertises,
// aggregated per advertisement, with the union of the advertisements'
// communities and their (agreeing) localPref.
func (b *BGP) desiredRoutes(st *speaker.State) map[netip.Prefix]route {
	labels := b.opts.NodeLabels()
	out := map[netip.Prefix]route{}
	for _, a := range st.Addresses {
		if _, ok := slices.BinarySearch(a.BGP.Nodes, b.opts.Node); !ok {
			continue
		}
		for _, adv := range a.BGP.Advertisements {
			if !adv.SelectsNode(labels) {
				continue
			}
			p := adv.AggregatedPrefix(a.IP)
			r, had := out[p]
			if !had {
				r = route{prefix: p, addrs: map[netip.Addr]bool{}}
			}
			r.addrs[a.IP] = true
			if adv.LocalPref != nil && !r.hasPref {
				r.localPref, r.hasPref = *adv.LocalPref, true
			}
			for _, c := range adv.Communities {
				if !slices.Contains(r.communities, c) {
					r.communities = append(r.communities, c)
				}
			}
			if len(adv.Peers) == 0 {
				r.allPeers = true
			}
			for name := range adv.Peers {
				if r.peers == nil {
					r.peers = map[string]bool{}
				}
				r.peers[name] = true
			}
			out[p] = r
		}
	}
	for p, r := range out {
		slices.SortFunc(r.communities, func(x, y config.Community) int { return strings.Compare(x.String(), y.String()) })
		out[p] = r
	}
	return out
}

func (b *BGP) applyRoutesLocked(want map[netip.Prefix]route) {
	var add, del []*apiutil.Path
	for p, r := range b.routes {
		if w, ok := want[p]; !ok || w.key() != r.key() {
			if path, err := b.path(r, true); err == nil {
				del = append(del, path)
			}
			delete(b.routes, p)
		}
	}
	prefixes := make([]netip.Prefix, 0, len(want))
	for p := range want {
		prefixes = append(prefixes, p)
	}
	sort.Slice(prefixes, func(i, j int) bool { return prefixes[i].Addr().Less(prefixes[j].Addr()) })
	for _, p := range prefixes {
		r := want[p]
		if _, ok := b.routes[p]; ok {
			b.routes[p] = r // the same route, maybe covering other addresses
			continue
		}
		path, err := b.path(r, false)
		if err != nil {
			b.log.Warn("cannot advertise", "prefix", p, "err", err)
			continue
		}
		add = append(add, path)
		b.routes[p] = r
	}
	if len(del) > 0 {
		if err := b.srv.DeletePath(apiutil.DeletePathRequest{Paths: del}); err != nil {
			b.log.Error("withdrawing routes", "count", len(del), "err", err)
		}
	}
	// In chunks: one management-loop operation each, so sessions keep
	// being served while thousands of routes go in.
	for len(add) > 0 {
		n := min(len(add), 1000)
		if _, err := b.srv.AddPath(apiutil.AddPathRequest{Paths: add[:n]}); err != nil {
			b.log.Error("advertising routes", "count", n, "err", err)
		}
		add = add[n:]
	}
}

// path builds the GoBGP path of a route (a withdrawal with withdraw).
func (b *BGP) path(r route, withdraw bool) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(r.prefix)
	if err != nil {
		return nil, err
	}
	family := bgp.RF_IPv4_UC
	if r.prefix.Addr().Is6() {
		family = bgp.RF_IPv6_UC
	}
	if withdraw {
		return &apiutil.Path{Family: family, Nlri: nlri, Withdrawal: true}, nil
	}
	nh, ok := b.nextHop(r.prefix.Addr())
	if !ok {
		return nil, fmt.Errorf("node %s has no InternalIP of the prefix's family to use as next hop", b.opts.Node)
	}
	var nhAttr bgp.PathAttributeInterface
	if family == bgp.RF_IPv4_UC {
		nhAttr, err = bgp.NewPathAttributeNextHop(nh)
	} else {
		nhAttr, err = bgp.NewPathAttributeMpReachNLRI(family, []bgp.PathNLRI{{NLRI: nlri}}, nh)
	}
	if err != nil {
		return nil, err
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP), nhAttr}
	if r.hasPref {
		attrs = append(attrs, bgp.NewPathAttributeLocalPref(r.localPref))
	}
	var std []uint32
	var large []*bgp.LargeCommunity
	for _, c := range r.communities {
		if c.Large {
			large = append(large, bgp.NewLargeCommunity(c.LargeValue[0], c.LargeValue[1], c.LargeValue[2]))
		} else {
			std = append(std, c.Value)
		}
	}
	if len(std) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(std))
	}
	if len(large) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(large))
	}
	return &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs}, nil
}

func (b *BGP) applyPeersLocked(peers []*config.BGPPeer, c *speaker.BGPConfig) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := map[string]*config.BGPPeer{}
	for _, p := range peers {
		want[p.Name] = p
	}
	for name, ps := range b.peers {
		if w, ok := want[name]; ok && w.Address == ps.cfg.Address {
			continue
		}
		b.deletePeerLocked(ctx, name, ps)
	}
	errs := map[string]string{}
	for _, p := range peers {
		if other, taken := b.byAddr[p.Address]; taken && other != p.Name {
			errs[p.Name] = fmt.Sprintf("BGPPeer %s already peers with %s from this node; remove one of the two", other, p.Address)
			continue
		}
		peer, problem, err := b.apiPeer(ctx, p, c)
		if err != nil {
			errs[p.Name] = err.Error()
			if ps := b.peers[p.Name]; ps != nil {
				b.deletePeerLocked(ctx, p.Name, ps)
			}
			continue
		}
		problems := []string{problem}
		if p.RouterID.IsValid() && p.RouterID != b.routerID {
			problems = append(problems, fmt.Sprintf("routerID %s is not this node's BGP identifier %s, which all its sessions share (set when BGP started here): give every BGPPeer of this node the same routerID, or none, and restart the speaker to change it", p.RouterID, b.routerID))
		}
		if msg := strings.Join(slices.DeleteFunc(problems, func(s string) bool { return s == "" }), "; "); msg != "" {
			errs[p.Name] = msg
		}
		key := peer.String()
		ps := b.peers[p.Name]
		switch {
		case ps == nil:
			if err := b.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
				errs[p.Name] = "GoBGP refused the peer: " + err.Error()
				continue
			}
			b.peers[p.Name] = &peerState{cfg: p, key: key, downSince: time.Now(),
				session: Session{Peer: p.Name, PeerAddress: p.Address.String(), State: "Idle", Since: time.Now()}}
			b.byAddr[p.Address] = p.Name
			b.log.Info("BGP peer added", "peer", p.Name, "address", p.Address)
		case ps.key != key:
			// Delete and add rather than UpdatePeer: after an UpdatePeer
			// that changed the password or the ASN, GoBGP v4.8.0 never
			// connected again in the lab (an MD5 session stayed Active).
			if err := b.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Address.String()}); err != nil {
				b.log.Warn("removing BGP peer for its new configuration", "peer", p.Name, "err", err)
			}
			if err := b.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
				errs[p.Name] = "GoBGP refused the new configuration: " + err.Error()
				delete(b.peers, p.Name)
				delete(b.byAddr, p.Address)
				continue
			}
			ps.cfg, ps.key, ps.established, ps.downSince, ps.refused = p, key, false, time.Now(), ""
			ps.session.LastError = ""
			b.log.Info("BGP peer updated", "peer", p.Name, "address", p.Address)
		}
	}
	for name, e := range errs {
		if b.errs[name] != e {
			b.log.Warn("BGP peer problem", "peer", name, "err", e)
		}
	}
	b.errs = errs
}

func (b *BGP) deletePeerLocked(ctx context.Context, name string, ps *peerState) {
	if err := b.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: ps.cfg.Address.String()}); err != nil {
		b.log.Warn("removing BGP peer", "peer", name, "err", err)
	}
	delete(b.byAddr, ps.cfg.Address)
	delete(b.peers, name)
	b.log.Info("BGP peer removed", "peer", name)
}

// apiPeer builds GoBGP's peer configuration. problem is a non-fatal issue
// (a missing BFD profile: the session runs without BFD).
func (b *BGP) apiPeer(ctx context.Context, p *config.BGPPeer, c *speaker.BGPConfig) (*api.Peer, string, error) {
	password := p.Password
	if p.PasswordSecret != nil {
		if b.opts.Password == nil {
			return nil, "", errors.New("passwordSecret is not readable by this speaker")
		}
		pw, err := b.opts.Password(ctx, p.PasswordSecret)
		if err != nil {
			return nil, "", fmt.Errorf("passwordSecret %s/%s: %w", p.PasswordSecret.Namespace, p.PasswordSecret.Name, err)
		}
		password = pw
	}
	fam4 := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	fam6 := &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	families := []*api.Family{fam4, fam6}
	if p.DisableMP {
		families = families[:1]
		if p.Address.Is6() {
			families = []*api.Family{fam6}
		}
	}
	var afiSafis []*api.AfiSafi
	for _, f := range families {
		afiSafis = append(afiSafis, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: f, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: p.GracefulRestart}},
		})
	}
	// dynamicASN internal is exactly our ASN; external is any other,
	// which GoBGP cannot express: it accepts any ASN (0) and onPeerEvent
	// refuses ours.
	peerASN := p.PeerASN
	if p.DynamicASN == v1beta1.DynamicASNInternal {
		peerASN = p.MyASN
	}
	peer := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: peerASN, LocalAsn: p.MyASN, AuthPassword: password},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: uint64(p.HoldTime / time.Second), KeepaliveInterval: uint64(p.Keepalive / time.Second),
			ConnectRetry: uint64(max(p.ConnectTime/time.Second, 2)), IdleHoldTimeAfterReset: 2,
		}},
		AfiSafis: afiSafis,
	}
	if p.Source.IsValid() {
		peer.Transport.LocalAddress = p.Source.String()
	}
	if p.EBGPMultiHop {
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	if p.GracefulRestart {
		peer.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: 120}
	}
	problem := ""
	if p.BFDProfile != "" {
		if prof := c.BFDProfiles[p.BFDProfile]; prof != nil {
			peer.Bfd = &api.BfdPeerConfig{Enabled: true,
				DesiredMinimumTxInterval: prof.TransmitMs * 1000, RequiredMinimumReceive: prof.ReceiveMs * 1000,
				DetectionMultiplier: prof.Multiplier}
		} else {
			problem = fmt.Sprintf("BFDProfile %s does not exist (or is invalid): the session runs without BFD until it does", p.BFDProfile)
		}
	}
	return peer, problem, nil
}

// onPeerEvent records a session's state changes, with GoBGP's reason when
// a session fails.
func (b *BGP) onPeerEvent(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE && ev.Type != apiutil.PEER_EVENT_INIT {
		return
	}
	st := ev.Peer.State
	b.mu.Lock()
	name, ok := b.byAddr[st.NeighborAddress]
	ps := b.peers[name]
	if !ok || ps == nil {
		b.mu.Unlock()
		return
	}
	state := fsmName(st.SessionState)
	changed := ps.session.State != state
	if changed {
		ps.session.State, ps.session.Since = state, time.Now()
	}
	up := st.SessionState == bgp.BGP_FSM_ESTABLISHED
	if up && ps.cfg.DynamicASN == v1beta1.DynamicASNExternal && st.PeerASN == ps.cfg.MyASN && ps.refused == "" {
		ps.refused = fmt.Sprintf("dynamicASN is external, but the router at %s has this node's ASN %d (an internal session): the session is shut down until the BGPPeer changes; set dynamicASN: internal, or fix the router's ASN", st.NeighborAddress, st.PeerASN)
		srv, addr, msg := b.srv, st.NeighborAddress.String(), ps.refused
		// Not from GoBGP's event callback: its management loop is busy
		// delivering this event.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.DisablePeer(ctx, &api.DisablePeerRequest{Address: addr, Communication: "Pharos: dynamicASN external, but the peer is internal"}); err != nil {
				b.log.Warn("shutting down a session of the wrong type", "peer", addr, "err", err, "why", msg)
			}
		}()
	}
	switch {
	case up:
		ps.downSince = time.Time{}
	case ps.downSince.IsZero():
		ps.downSince = time.Now()
	}
	switch {
	case ps.refused != "":
		ps.session.LastError = ps.refused
	case up:
		ps.session.LastError = ""
	case st.DisconnectMessage != "" && (ps.established || failure(st.DisconnectReason)):
		ps.session.LastError = st.DisconnectMessage
	}
	ps.established = up
	b.mu.Unlock()
	if changed {
		b.log.Info("BGP session", "peer", name, "state", state, "reason", st.DisconnectMessage)
		if b.opts.OnChange != nil {
			b.opts.OnChange()
		}
	}
}

// failure tells the disconnect reasons that say why a session could not
// come up from those of routine transitions.
func failure(r api.PeerState_DisconnectReason) bool {
	switch r {
	case api.PeerState_DISCONNECT_REASON_BAD_PEER_AS, api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED,
		api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT, api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED,
		api.PeerState_DISCONNECT_REASON_INVALID_MSG:
		return true
	}
	return false
}

func fsmName(s bgp.FSMState) string {
	switch s {
	case bgp.BGP_FSM_IDLE:
		return "Idle"
	case bgp.BGP_FSM_CONNECT:
		return "Connect"
	case bgp.BGP_FSM_ACTIVE:
		return "Active"
	case bgp.BGP_FSM_OPENSENT:
		return "OpenSent"
	case bgp.BGP_FSM_OPENCONFIRM:
		return "OpenConfirm"
	case bgp.BGP_FSM_ESTABLISHED:
		return "Established"
	}
	return "Unknown"
}

// Sessions returns the node's sessions, by peer name, with prefix counts
// and BFD state read from GoBGP now, and configuration problems.
func (b *BGP) Sessions(ctx context.Context) []Session {
	b.mu.Lock()
	out := make([]Session, 0, len(b.peers)+len(b.errs))
	srv := b.srv
	for name, ps := range b.peers {
		s := ps.session
		if e := b.errs[name]; e != "" && s.LastError == "" {
			s.LastError = e
		}
		// A router that drops our SYNs (a wrong TCP MD5 password, a
		// firewall, no neighbor statement for this node) never says why:
		// say what is known after a few connection attempts.
		wait := max(3*ps.cfg.ConnectTime, 10*time.Second)
		if s.LastError == "" && !ps.downSince.IsZero() && time.Since(ps.downSince) > wait {
			s.LastError = fmt.Sprintf("not established for over %s: the router does not complete the session; check its address, that it peers with this node (AS %d), and the password on both sides",
				wait, ps.cfg.MyASN)
		}
		out = append(out, s)
	}
	for name, e := range b.errs {
		if b.peers[name] == nil {
			out = append(out, Session{Peer: name, State: "NotConfigured", LastError: e})
		}
	}
	b.mu.Unlock()
	if srv != nil {
		stats := map[string]Session{}
		_ = srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
			var s Session
			for _, af := range p.GetAfiSafis() {
				s.PrefixesSent += int(af.GetState().GetAdvertised())
				s.PrefixesReceived += int(af.GetState().GetReceived())
			}
			if p.GetConf().GetNeighborAddress() != "" {
				s.BFDState = bfdName(p.GetState().GetBfdState().GetSessionState())
				stats[p.GetConf().GetNeighborAddress()] = s
			}
		})
		for i := range out {
			if s, ok := stats[out[i].PeerAddress]; ok {
				out[i].PrefixesSent, out[i].PrefixesReceived, out[i].BFDState = s.PrefixesSent, s.PrefixesReceived, s.BFDState
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer < out[j].Peer })
	return out
}

func bfdName(s api.BfdSessionState) string {
	switch s {
	case api.BfdSessionState_BFD_SESSION_STATE_UP:
		return "Up"
	case api.BfdSessionState_BFD_SESSION_STATE_DOWN:
		return "Down"
	case api.BfdSessionState_BFD_SESSION_STATE_INIT:
		return "Init"
	case api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN:
		return "AdminDown"
	}
	return ""
}

// Addresses counts the addresses that the routes this node advertises
// carry (the addresses, not the possibly aggregated prefixes).
func (b *BGP) Addresses() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := map[netip.Addr]bool{}
	for _, r := range b.routes {
		for ip := range r.addrs {
			seen[ip] = true
		}
	}
	return len(seen)
}

// Prefixes counts the prefixes this node advertises.
func (b *BGP) Prefixes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.routes)
}

// Describe says which nodes advertise the address by BGP, and to which of
// this node's peers.
func (b *BGP) Describe(a *speaker.Address) speaker.Report {
	if len(a.BGP.Advertisements) == 0 {
		return speaker.Report{}
	}
	if len(a.BGP.Nodes) == 0 {
		return speaker.Report{Applies: true, Reason: "NoEligibleNode",
			Message: "no node may advertise it by BGP (none is Ready, selected, not excluded and, for Local policy, holding a ready endpoint)"}
	}
	if len(a.BGP.Peers) == 0 {
		return speaker.Report{Applies: true, Reason: "NoBGPPeer",
			Message: fmt.Sprintf("nodes %s may advertise it by BGP but no BGPPeer that its advertisements name peers with them", strings.Join(a.BGP.Nodes, ", "))}
	}
	return speaker.Report{Applies: true, Announced: true,
		Message: fmt.Sprintf("by BGP from node %s to peer %s", strings.Join(a.BGP.Nodes, ", "), strings.Join(a.BGP.Peers, ", "))}
}

// Close stops BGP. With graceful, sessions that negotiated graceful restart
// are closed without a NOTIFICATION, so the routers keep this node's routes
// while its speaker restarts; otherwise every route is withdrawn.
func (b *BGP) Close() error { return b.stop(false) }

// CloseGracefully is Close for a speaker restart (SIGTERM).
func (b *BGP) CloseGracefully() error { return b.stop(true) }

func (b *BGP) stop(graceful bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if !b.started {
		return nil
	}
	b.cancel()
	gr := false
	for _, ps := range b.peers {
		gr = gr || ps.cfg.GracefulRestart
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if graceful && gr {
		err = b.srv.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: true})
	}
	b.srv.Stop()
	return err
}

// onNotification records a NOTIFICATION as the session's last error, unless
// it is the routine one of our own reconfiguration or shutdown.
func (b *BGP) onNotification(peer netip.Addr, sent bool, code, subcode uint8, reason string) {
	if sent && code == 6 && (subcode == 2 || subcode == 3 || subcode == 4 || subcode == 6) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ps := b.peers[b.byAddr[peer]]; ps != nil {
		ps.session.LastError = notificationText(sent, code, subcode, reason)
	}
}

// levelHandler filters GoBGP's records by its level variable, which the
// notification hook sees past.
type levelHandler struct {
	slog.Handler
	level *slog.LevelVar
}

func (h *levelHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *levelHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < h.level.Level() {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &levelHandler{Handler: h.Handler.WithAttrs(as), level: h.level}
}

func (h *levelHandler) WithGroup(name string) slog.Handler {
	return &levelHandler{Handler: h.Handler.WithGroup(name), level: h.level}
}
