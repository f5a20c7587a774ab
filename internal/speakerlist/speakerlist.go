// Package speakerlist joins the speakers of a cluster with hashicorp's
// memberlist: it detects failed nodes quickly, carries each node's
// announcing state in its metadata, and shares which node currently owns
// which address, so that every speaker agrees on the current owner
// without going through the apiserver.
package speakerlist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Timers tune memberlist's failure detection. A crashed node or a dead
// link is detected faster by the heartbeats between each announcing node
// and its successor (internal/heartbeat), which also ask the silent node's
// kernel before they call it dead; memberlist is left the rest (a speaker
// process that died on a live node, partitions, membership), and its
// defaults favour never declaring a slow node dead: a speaker paused or
// starved of CPU must miss a 200 ms probe, its indirect probes and the TCP
// fallback, and then fail to refute the suspicion for SuspicionMult probe
// intervals (1.6 s, up to 4.8 s without confirmations) before memberlist
// gives up on it, and memberlist's awareness lengthens a slow node's own
// timeouts.
type Timers struct {
	ProbeInterval           time.Duration
	ProbeTimeout            time.Duration
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	GossipInterval          time.Duration
	PushPullInterval        time.Duration
}

// DefaultTimers are tuned for a LAN.
func DefaultTimers() Timers {
	return Timers{
		ProbeInterval:           400 * time.Millisecond,
		ProbeTimeout:            200 * time.Millisecond,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 3,
		GossipInterval:          200 * time.Millisecond,
		PushPullInterval:        5 * time.Second,
	}
}

// Meta is what a node tells the others about itself.
type Meta struct {
	// InterfacesUp lists the node's network interfaces that are up.
	InterfacesUp []string `json:"up,omitempty"`
	// Draining is set while the node hands its addresses over before it
	// leaves; others stop counting it as a candidate.
	Draining bool `json:"drain,omitempty"`
}

// Claim says that a node announces an address since Epoch: a logical
// clock, greater than every claim on the address the node had seen when it
// took over (see speaker.NextEpoch), so the lower epoch claimed first.
type Claim struct {
	Node  string
	Epoch int64
}

// Options configure a List.
type Options struct {
	// NodeName is this member's name: the Kubernetes node name.
	NodeName string
	// BindAddr and Port are where memberlist listens (the node's address).
	BindAddr string
	Port     int
	// SecretKey encrypts and authenticates gossip (16, 24 or 32 bytes).
	// Members without the same key cannot join or read anything.
	SecretKey []byte
	Timers    Timers
	Logger    *slog.Logger
	// OnChange is called (from memberlist's goroutines, so it must not
	// block) whenever membership, metadata or claims change.
	OnChange func()
}

// List is this node's membership in the speakers' cluster.
type List struct {
	opts Options
	ml   *memberlist.Memberlist

	mu     sync.Mutex
	meta   Meta
	claims claimSet
	remote map[string]claimSet
	// state caches LocalState's encoding of claims and remote; nil when
	// either changed since.
	state    []byte
	onChange func()
	// departed holds, for each address that a member claimed when it left
	// or was declared dead, when this node learned it (see OwnerLeft).
	departed map[netip.Addr]time.Time

	// joins, leaves and updates count memberlist's notifications.
	joins, leaves, updates atomic.Uint64
}

// claimSet is one node's claims with a version, so that a stale copy
// never overwrites a newer one.
type claimSet struct {
	Version int64            `json:"v"`
	Claims  map[string]int64 `json:"c"`
}

// New starts memberlist on the node; call Join to meet the others.
func New(opts Options) (*List, error) {
	if len(opts.SecretKey) != 16 && len(opts.SecretKey) != 24 && len(opts.SecretKey) != 32 {
		return nil, fmt.Errorf("the memberlist key must be 16, 24 or 32 bytes, not %d: regenerate the Secret", len(opts.SecretKey))
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &List{opts: opts, remote: map[string]claimSet{}, onChange: opts.OnChange, departed: map[netip.Addr]time.Time{}}
	if l.onChange == nil {
		l.onChange = func() {}
	}
	l.claims = claimSet{Version: time.Now().UnixNano(), Claims: map[string]int64{}}
	c := memberlist.DefaultLANConfig()
	c.Name = opts.NodeName
	c.BindAddr, c.BindPort = opts.BindAddr, opts.Port
	c.AdvertiseAddr, c.AdvertisePort = opts.BindAddr, opts.Port
	c.SecretKey = opts.SecretKey
	c.GossipVerifyIncoming, c.GossipVerifyOutgoing = true, true
	t := opts.Timers
	if t.ProbeInterval == 0 {
		t = DefaultTimers()
	}
	c.ProbeInterval, c.ProbeTimeout = t.ProbeInterval, t.ProbeTimeout
	c.SuspicionMult, c.SuspicionMaxTimeoutMult = t.SuspicionMult, t.SuspicionMaxTimeoutMult
	c.GossipInterval, c.PushPullInterval = t.GossipInterval, t.PushPullInterval
	// A dead node that comes back under the same name is let in at once.
	c.DeadNodeReclaimTime = time.Second
	// Compression saves bytes a LAN does not miss and costs each message,
	// pings and acks included, a fresh LZW table: it made a third of an
	// idle speaker's allocations (and its GC's work). Peers still read
	// compressed messages from a speaker that sends them.
	c.EnableCompression = false
	c.Delegate = (*delegate)(l)
	c.Events = (*events)(l)
	c.Logger = log.New(&slogWriter{opts.Logger}, "", 0)
	ml, err := memberlist.Create(c)
	if err != nil {
		return nil, fmt.Errorf("starting memberlist on %s:%d: %w", opts.BindAddr, opts.Port, err)
	}
	l.ml = ml
	return l, nil
}

// Join contacts the given peers ("ip" or "ip:port"); it succeeds if any
// answers. Joining nobody is fine for the first speaker.
func (l *List) Join(peers []string) (int, error) {
	var addrs []string
	for _, p := range peers {
		if _, _, err := net.SplitHostPort(p); err != nil {
			p = net.JoinHostPort(p, strconv.Itoa(l.opts.Port))
		}
		addrs = append(addrs, p)
	}
	if len(addrs) == 0 {
		return 0, nil
	}
	return l.ml.Join(addrs)
}

// Resync exchanges state (metadata and claims) with every other alive
// member at once, as memberlist's periodic push-pull would within
// PushPullInterval: a node whose link comes back learns at once which
// addresses moved while it was away. It returns how many answered.
func (l *List) Resync() (int, error) {
	var addrs []string
	for _, n := range l.ml.Members() {
		if n.Name != l.opts.NodeName && n.State == memberlist.StateAlive {
			addrs = append(addrs, n.FullAddress().Addr)
		}
	}
	if len(addrs) == 0 {
		return 0, nil
	}
	return l.ml.Join(addrs)
}

// Members returns the alive members and their metadata, this node included.
func (l *List) Members() map[string]Meta {
	out := map[string]Meta{}
	for _, n := range l.ml.Members() {
		if n.State != memberlist.StateAlive {
			continue
		}
		var m Meta
		_ = json.Unmarshal(n.Meta, &m)
		out[n.Name] = m
	}
	return out
}

// Addrs returns the address of every alive member, this node included:
// where its speaker receives memberlist's (and the fast heartbeats') packets.
func (l *List) Addrs() map[string]netip.Addr {
	out := map[string]netip.Addr{}
	for _, n := range l.ml.Members() {
		if n.State != memberlist.StateAlive {
			continue
		}
		if a, ok := netip.AddrFromSlice(n.Addr); ok {
			out[n.Name] = a.Unmap()
		}
	}
	return out
}

// ErrMetaTooLarge is returned by SetMeta for metadata that does not fit
// in memberlist's node metadata (memberlist.MetaMaxSize bytes).
var ErrMetaTooLarge = errors.New("node metadata exceeds memberlist's limit")

// MetaSize is the encoded size of m, to compare with memberlist.MetaMaxSize.
func MetaSize(m Meta) int {
	b, _ := json.Marshal(m)
	return len(b)
}

// SetMeta publishes this node's metadata. Metadata too large for memberlist
// is refused with ErrMetaTooLarge, and the previous metadata stays: the
// caller must trim it (memberlist would otherwise drop it silently).
func (l *List) SetMeta(m Meta) error {
	if n := MetaSize(m); n > memberlist.MetaMaxSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrMetaTooLarge, n, memberlist.MetaMaxSize)
	}
	l.mu.Lock()
	l.meta = m
	l.mu.Unlock()
	return l.ml.UpdateNode(time.Second)
}

// SetClaims publishes the addresses this node announces, with the epoch
// of each takeover, to every member at once.
func (l *List) SetClaims(claims map[netip.Addr]int64) {
	l.mu.Lock()
	next := claimSet{Version: time.Now().UnixNano(), Claims: map[string]int64{}}
	for ip, e := range claims {
		next.Claims[ip.String()] = e
	}
	if next.Version <= l.claims.Version {
		next.Version = l.claims.Version + 1
	}
	l.claims = next
	l.state = nil
	msg, _ := json.Marshal(map[string]claimSet{l.opts.NodeName: next})
	l.mu.Unlock()
	for _, n := range l.ml.Members() {
		if n.Name == l.opts.NodeName || n.State != memberlist.StateAlive {
			continue
		}
		// TCP, so that a large claim set is not cut to a UDP packet;
		// push-pull repairs any message lost here.
		go func(n *memberlist.Node) {
			if err := l.ml.SendReliable(n, msg); err != nil {
				l.opts.Logger.Debug("sending claims", "to", n.Name, "err", err)
			}
		}(n)
	}
}

// Claims returns, for every address claimed by an alive member, who
// claims it, sorted by node name.
func (l *List) Claims() map[netip.Addr][]Claim {
	alive := l.Members()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[netip.Addr][]Claim{}
	add := func(node string, cs claimSet) {
		if _, ok := alive[node]; !ok {
			return
		}
		for s, e := range cs.Claims {
			if ip, err := netip.ParseAddr(s); err == nil {
				out[ip] = append(out[ip], Claim{Node: node, Epoch: e})
			}
		}
	}
	add(l.opts.NodeName, l.claims)
	for node, cs := range l.remote {
		add(node, cs)
	}
	for _, cs := range out {
		sort.Slice(cs, func(i, j int) bool { return cs[i].Node < cs[j].Node })
	}
	return out
}

// Leave tells the others this node is leaving, so they move its addresses
// at once instead of waiting for failure detection, then stops.
func (l *List) Leave(timeout time.Duration) error {
	err := l.ml.Leave(timeout)
	_ = l.ml.Shutdown()
	return err
}

// Shutdown stops without telling anyone, as a crash would.
func (l *List) Shutdown() error { return l.ml.Shutdown() }

// merge takes a peer's claim sets, keeping the newest version of each.
func (l *List) merge(data []byte) {
	// Push-pull brings every member's claims every PushPullInterval, and
	// at rest none is news: only the versions are read, and the claims of
	// a newer version alone are decoded (thousands of addresses cost
	// milliseconds to decode, several times a minute on every node).
	var sets map[string]struct {
		Version int64           `json:"v"`
		Claims  json.RawMessage `json:"c"`
	}
	if err := json.Unmarshal(data, &sets); err != nil {
		l.opts.Logger.Debug("ignoring malformed claims", "err", err)
		return
	}
	var fresh []string
	l.mu.Lock()
	for node, ws := range sets {
		if old, ok := l.remote[node]; node != l.opts.NodeName && (!ok || ws.Version > old.Version) {
			fresh = append(fresh, node)
		}
	}
	l.mu.Unlock()
	news := make(map[string]claimSet, len(fresh))
	for _, node := range fresh {
		cs := claimSet{Version: sets[node].Version}
		if c := sets[node].Claims; len(c) > 0 {
			if err := json.Unmarshal(c, &cs.Claims); err != nil {
				l.opts.Logger.Debug("ignoring malformed claims", "node", node, "err", err)
				continue
			}
		}
		news[node] = cs
	}
	changed := false
	l.mu.Lock()
	for node, cs := range news {
		if old, ok := l.remote[node]; !ok || cs.Version > old.Version {
			l.remote[node] = cs
			l.state = nil
			changed = true
		}
	}
	l.mu.Unlock()
	if changed {
		l.onChange()
	}
}

type delegate List

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, _ := json.Marshal(d.meta)
	if len(b) > limit {
		b, _ = json.Marshal(Meta{Draining: d.meta.Draining})
	}
	return b
}

func (d *delegate) NotifyMsg(b []byte) { (*List)(d).merge(b) }

func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState is every member's claims as this node knows them, encoded
// once per change: push-pull asks for it every PushPullInterval.
func (d *delegate) LocalState(bool) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == nil {
		all := map[string]claimSet{d.opts.NodeName: d.claims}
		for n, cs := range d.remote {
			all[n] = cs
		}
		d.state, _ = json.Marshal(all)
	}
	return d.state
}

func (d *delegate) MergeRemoteState(buf []byte, _ bool) { (*List)(d).merge(buf) }

type events List

func (e *events) NotifyJoin(*memberlist.Node) {
	e.joins.Add(1)
	e.onChange()
}

// NotifyLeave comes for a member that left and for one declared dead.
func (e *events) NotifyLeave(n *memberlist.Node) {
	e.leaves.Add(1)
	(*List)(e).recordDeparture(n.Name, time.Now())
	e.onChange()
}

func (e *events) NotifyUpdate(*memberlist.Node) {
	e.updates.Add(1)
	e.onChange()
}

// departureTTL is how long OwnerLeft remembers a departed member's
// addresses: a takeover that comes later has another cause.
const departureTTL = time.Minute

// recordDeparture notes, for each address the departed node claimed and
// this node does not, that its owner left at now.
func (l *List) recordDeparture(node string, now time.Time) {
	if node == l.opts.NodeName {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for ip, at := range l.departed {
		if now.Sub(at) > departureTTL {
			delete(l.departed, ip)
		}
	}
	for s := range l.remote[node].Claims {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		if _, mine := l.claims.Claims[ip.String()]; !mine {
			l.departed[ip] = now
		}
	}
	// The departed member's claims are void: the others elect new owners
	// for its addresses. Kept, they would pull each address back to it
	// when it returns (its claim is the earlier one) before its current
	// claims arrive, as after a memberlist-only partition. They are
	// forgotten, version included: the member's current claims, even
	// unchanged, count again when it returns.
	delete(l.remote, node)
	l.state = nil
}

// OwnerLeft reports when this node learned, from memberlist's leave or
// dead notification, that the member which claimed ip left, and forgets
// it: the caller is taking ip over and measures its failover. It reports
// false when no member that claimed ip left within the last minute.
func (l *List) OwnerLeft(ip netip.Addr) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.departed[ip]
	delete(l.departed, ip)
	if !ok || time.Since(at) > departureTTL {
		return time.Time{}, false
	}
	return at, true
}

// slogWriter sends memberlist's log lines to slog at debug level, except
// its warnings and errors.
type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	s := string(p)
	level := slog.LevelDebug
	if len(s) > 8 && (s[:6] == "[WARN]" || s[:7] == "[ERR] ") {
		level = slog.LevelWarn
	}
	w.l.Log(context.Background(), level, "memberlist", "msg", s)
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
