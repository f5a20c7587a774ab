// Package heartbeat is the speakers' fast failure detector. The node that
// announces an address sends a small authenticated UDP heartbeat every
// Interval to the node that would take the address over (its successor);
// the successor watches it with internal/liveness and, when it falls
// silent, probes its kernel on the LAN with ARP or NDP. A node silent for
// DeadAfter whose kernel does not answer either is reported dead, and the
// successor takes its addresses at once, without waiting for memberlist.
//
// Memberlist still decides everything else (joins, graceful leaves, a
// speaker process that died on a live node); this package only makes the
// common hard failure, a node or its link going down, fast.
package heartbeat

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pharos-lb/pharos/internal/liveness"
)

// Options configure a Heartbeat.
type Options struct {
	// Node is this node's name, sent in every heartbeat.
	Node string
	// Key is the memberlist key; the heartbeat key is derived from it.
	Key []byte
	// BindAddr and Port are where heartbeats are received; peers are sent
	// theirs at their memberlist address and the same port.
	BindAddr netip.Addr
	Port     int
	// Interval is the time between heartbeats. The detection time, not
	// the interval, bounds how long a crash goes unnoticed (it counts from
	// the last heartbeat); a shorter interval only costs more wakeups.
	Interval time.Duration
	// Detection tunes when a silent peer is dead.
	Detection liveness.Options
	// OnChange is called, without blocking, when a peer dies or revives.
	OnChange func()
	Logger   *slog.Logger
}

// Heartbeat sends this node's heartbeats and watches its peers'.
type Heartbeat struct {
	opts Options
	key  []byte
	conn *net.UDPConn
	seq  atomic.Uint64

	mu sync.Mutex
	// det is the liveness detector, guarded by mu.
	det *liveness.Detector
	// addrs are the peers' addresses, notify the peers this node sends
	// heartbeats to.
	addrs  map[string]netip.Addr
	notify []string
	// lastSeq and lastAt are, per sender, the last accepted sequence and
	// when it came (see accept).
	lastSeq map[string]uint64
	lastAt  map[string]time.Time

	prober *prober
	stats  stats
	// done is set when Run ends.
	done atomic.Bool
	// peersChanged wakes Run to re-arm the detector's timer, checkTimer
	// (armLocked).
	peersChanged chan struct{}
	checkTimer   *time.Timer
}

type stats struct {
	sent, received, rejected, probes, deaths, revivals atomic.Uint64
}

// Validate checks the timing options (Interval and Detection).
func (opts Options) Validate() error {
	if err := opts.Detection.Validate(); err != nil {
		return err
	}
	// A third at most: probing then starts by half the detection time,
	// and the probes have the other half to be answered.
	if opts.Interval <= 0 || opts.Interval >= opts.Detection.ProbeAfter || 3*opts.Interval > opts.Detection.DeadAfter {
		return fmt.Errorf("the heartbeat interval %s must be positive and at most a third of the detection time %s: lower it or raise the detection time", opts.Interval, opts.Detection.DeadAfter)
	}
	return nil
}

// New binds the heartbeat socket.
func New(opts Options) (*Heartbeat, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.OnChange == nil {
		opts.OnChange = func() {}
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(opts.BindAddr, uint16(opts.Port))))
	if err != nil {
		return nil, fmt.Errorf("listening for heartbeats on %s port %d (--heartbeat-port): %w", opts.BindAddr, opts.Port, err)
	}
	h := &Heartbeat{opts: opts, key: deriveKey(opts.Key), conn: conn, det: liveness.New(opts.Detection),
		addrs: map[string]netip.Addr{}, lastSeq: map[string]uint64{}, lastAt: map[string]time.Time{},
		peersChanged: make(chan struct{}, 1), checkTimer: time.NewTimer(time.Hour)}
	h.seq.Store(uint64(time.Now().UnixNano()))
	h.prober = newProber(opts.Logger, h.answered)
	return h, nil
}

// Run sends heartbeats, receives the peers' and ticks the detector until
// ctx ends; then it closes the socket.
func (h *Heartbeat) Run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		h.done.Store(true)
		_ = h.conn.Close()
		h.prober.close()
	}()
	go h.receive()
	send := time.NewTicker(h.opts.Interval)
	defer send.Stop()
	sending := true
	// The detector is woken only when it has something to do (liveness's
	// Next): while heartbeats come, never. Waking a Go process costs more
	// than the work; at rest a speaker wakes for its sends and the
	// heartbeats it receives, nothing else.
	for {
		select {
		case <-ctx.Done():
			return
		case <-send.C:
			if !h.send() {
				// Nobody to notify: no ticks until SetPeers names someone
				// (a wakeup costs more than the work).
				send.Stop()
				sending = false
			}
		case now := <-h.checkTimer.C:
			h.check(now)
			h.mu.Lock()
			h.armLocked()
			h.mu.Unlock()
		case <-h.peersChanged:
			h.mu.Lock()
			h.armLocked()
			notify := len(h.notify) > 0
			h.mu.Unlock()
			if notify && !sending {
				send.Reset(h.opts.Interval)
				sending = true
				h.send()
			}
		}
	}
}

// armLocked sets the detector's timer to its next deadline. Every
// heartbeat moves it (from the receiving goroutine: resetting a timer
// wakes nobody), so while heartbeats come the timer never fires.
func (h *Heartbeat) armLocked() {
	next := h.det.Next()
	d := time.Hour
	if !next.IsZero() {
		d = max(time.Until(next), time.Millisecond)
	}
	h.checkTimer.Reset(d)
}

// SetPeers sets whom this node watches (the announcing nodes whose
// addresses it would take over) and notifies (the successors of its own
// addresses), with every member's address.
func (h *Heartbeat) SetPeers(watch, notify []string, addrs map[string]netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.addrs = maps.Clone(addrs)
	h.notify = slices.Clone(notify)
	var watched []string
	for _, n := range watch {
		if _, ok := addrs[n]; ok {
			watched = append(watched, n)
		}
	}
	h.det.Watch(watched, time.Now())
	// A dead peer that memberlist no longer lists is memberlist's now;
	// should it come back, memberlist tells.
	for n := range h.det.Dead() {
		if _, ok := addrs[n]; !ok {
			h.det.Forget(n)
		}
	}
	h.rearm()
}

// rearm asks Run to recompute when the detector must next be ticked.
func (h *Heartbeat) rearm() {
	select {
	case h.peersChanged <- struct{}{}:
	default:
	}
}

// Dead returns the peers this node found dead, each with the time of its
// last heartbeat: the start of the failure as this node saw it.
func (h *Heartbeat) Dead() map[string]time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.det.Dead()
}

// send sends a heartbeat to every peer to notify, and reports whether
// there was any.
func (h *Heartbeat) send() bool {
	h.mu.Lock()
	var to []netip.AddrPort
	for _, n := range h.notify {
		if a, ok := h.addrs[n]; ok {
			to = append(to, netip.AddrPortFrom(a, uint16(h.opts.Port)))
		}
	}
	h.mu.Unlock()
	if len(to) == 0 {
		return false
	}
	b := encode(h.key, h.opts.Node, h.seq.Add(1))
	for _, dst := range to {
		if _, err := h.conn.WriteToUDPAddrPort(b, dst); err == nil {
			h.stats.sent.Add(1)
		}
	}
	return true
}

func (h *Heartbeat) receive() {
	buf := make([]byte, 512)
	for {
		n, _, err := h.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if isClosed(err) || h.done.Load() {
				return
			}
			time.Sleep(errorBackoff) // never spin on a failing socket
			continue
		}
		node, seq, err := decode(h.key, buf[:n])
		if err != nil || node == h.opts.Node {
			h.stats.rejected.Add(1)
			continue
		}
		h.accept(node, seq, time.Now())
	}
}

// replayWindow: a sender silent this long may restart its sequence lower
// (its clock went back across a restart). A replayed heartbeat can then at
// worst delay a failover to memberlist's pace.
const replayWindow = 5 * time.Second

func (h *Heartbeat) accept(node string, seq uint64, now time.Time) {
	h.mu.Lock()
	if seq <= h.lastSeq[node] && now.Sub(h.lastAt[node]) < replayWindow {
		h.mu.Unlock()
		h.stats.rejected.Add(1)
		return
	}
	h.lastSeq[node], h.lastAt[node] = seq, now
	revived := h.det.Beat(node, now)
	h.armLocked()
	h.mu.Unlock()
	h.stats.received.Add(1)
	if revived {
		h.stats.revivals.Add(1)
		h.opts.Logger.Info("heartbeats again from a node found dead", "peer", node)
		h.opts.OnChange()
	}
}

func (h *Heartbeat) check(now time.Time) {
	h.mu.Lock()
	probe, died := h.det.Tick(now)
	targets := make(map[string]netip.Addr, len(probe))
	for _, n := range probe {
		targets[n] = h.addrs[n]
	}
	var since map[string]time.Time
	if len(died) > 0 {
		since = h.det.Dead()
	}
	h.mu.Unlock()
	for n, a := range targets {
		h.stats.probes.Add(1)
		h.prober.probe(n, a)
	}
	for _, n := range died {
		h.stats.deaths.Add(1)
		h.opts.Logger.Info("peer dead: no heartbeat and its kernel does not answer on the LAN", "peer", n, "silent", now.Sub(since[n]).Round(time.Millisecond))
	}
	if len(died) > 0 {
		h.opts.OnChange()
	}
}

// answered is the prober's callback: the peer's kernel answered.
func (h *Heartbeat) answered(node string) {
	h.mu.Lock()
	h.det.Answered(node, time.Now())
	h.mu.Unlock()
}
