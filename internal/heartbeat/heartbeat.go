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
	sock *socket
	seq  atomic.Uint64

	mu sync.Mutex
	// det is the liveness detector, guarded by mu.
	det *liveness.Detector
	// addrs are the peers' addresses, notify the peers this node sends
	// heartbeats to.
	addrs    map[string]netip.Addr
	notify   []string
	watching int
	// lastSeq and lastAt are, per sender, the last accepted sequence and
	// when it came (see accept).
	lastSeq map[string]uint64
	lastAt  map[string]time.Time

	prober *prober
	// sendProbe probes a peer's kernel and reports whether the probe went
	// out: prober.probe, but for tests of what follows a probe into a LAN
	// where nobody answers.
	sendProbe func(node string, addr netip.Addr, now time.Time) bool
	stats     stats
	// peersChanged wakes Run when the peers change.
	peersChanged chan struct{}
	// readErr is the last error reading the socket (Run's alone).
	readErr string
}

type stats struct {
	sent, received, rejected, probes, deaths, revivals atomic.Uint64
}

// Validate checks the timing options (Interval and Detection).
func (opts Options) Validate() error {
	if err := opts.Detection.Validate(); err != nil {
		return err
	}
	// A third at most: a heartbeat may be late or lost before probing
	// starts (liveness.Defaults), and the probes have the rest of the
	// detection time to be sent and answered.
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
	sock, err := listen(opts.BindAddr, opts.Port)
	if err != nil {
		return nil, fmt.Errorf("listening for heartbeats on %s port %d (--heartbeat-port): %w", opts.BindAddr, opts.Port, err)
	}
	h := &Heartbeat{opts: opts, key: deriveKey(opts.Key), sock: sock, det: liveness.New(opts.Detection),
		addrs: map[string]netip.Addr{}, lastSeq: map[string]uint64{}, lastAt: map[string]time.Time{},
		peersChanged: make(chan struct{}, 1)}
	h.seq.Store(uint64(time.Now().UnixNano()))
	h.prober = newProber(opts.Logger)
	h.sendProbe = h.prober.probe
	return h, nil
}

// Run sends heartbeats, reads the peers' and ticks the detector until
// ctx ends; then it closes its sockets.
//
// Run alone reads the sockets, heartbeats and probe answers alike, each
// datagram with the time the kernel received it, and always all of them
// just before it ticks the detector: so the detector never calls a peer
// dead while that peer's heartbeat or its kernel's answer waits unread, as
// it could if other goroutines read them and were scheduled later (on a
// node starved of CPU, they are).
//
// It wakes once per interval while it has peers to notify or watch, or
// holds one dead: to read what came since, to send its own heartbeats and
// to tick the detector. Between ticks it wakes for the detector's
// deadlines while a silent peer is probed (probes and the decision are
// timed), and for the start of a round only if a tick would start it more
// than half an interval late: never while heartbeats come. Waking a Go
// process costs more than the work; this keeps a speaker at rest to one
// wakeup per interval, however many peers it has.
func (h *Heartbeat) Run(ctx context.Context) {
	defer func() {
		_ = h.sock.close()
		h.prober.close()
	}()
	tick := time.NewTicker(h.opts.Interval)
	defer tick.Stop()
	ticking := true
	var nextTick time.Time
	deadline := time.NewTimer(time.Hour)
	defer deadline.Stop()
	serve := func(now time.Time, send bool) {
		h.receive(now)
		h.prober.drain(now, h.answered)
		if send {
			h.send()
			nextTick = now.Add(h.opts.Interval)
		}
		h.check(now)
		h.mu.Lock()
		// A peer held dead is watched by nobody (its addresses moved),
		// but its heartbeats, should they come back before memberlist
		// notices, must be read to revive it.
		next, probing := h.det.Next(), h.det.Probing()
		busy := len(h.notify) > 0 || h.watching > 0 || len(h.det.Dead()) > 0
		h.mu.Unlock()
		if busy != ticking {
			if ticking = busy; ticking {
				tick.Reset(h.opts.Interval)
				nextTick = now.Add(h.opts.Interval)
			} else {
				tick.Stop()
			}
		}
		switch {
		case !busy:
			// No more ticks: nothing would close the sockets later.
			h.prober.close()
		case !probing:
			h.prober.closeIdle(now)
		}
		d := time.Hour
		if !next.IsZero() && (!ticking || probing || next.Before(nextTick.Add(-h.opts.Interval/2))) {
			d = max(next.Sub(now), time.Millisecond)
		}
		deadline.Reset(d)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			serve(time.Now(), true)
		case <-deadline.C:
			serve(time.Now(), false)
		case <-h.peersChanged:
			// New peers to notify hear from this node at once, and the
			// ticks count from now (serve's nextTick).
			if ticking {
				tick.Reset(h.opts.Interval)
			}
			serve(time.Now(), true)
		}
	}
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
	h.watching = len(watched)
	// A dead peer that memberlist no longer lists is memberlist's now;
	// should it come back, memberlist tells.
	for n := range h.det.Dead() {
		if _, ok := addrs[n]; !ok {
			h.det.Forget(n)
		}
	}
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

// send sends a heartbeat to every peer to notify.
func (h *Heartbeat) send() {
	h.mu.Lock()
	var to []netip.AddrPort
	for _, n := range h.notify {
		if a, ok := h.addrs[n]; ok {
			to = append(to, netip.AddrPortFrom(a, uint16(h.opts.Port)))
		}
	}
	h.mu.Unlock()
	if len(to) == 0 {
		return
	}
	b := encode(h.key, h.opts.Node, h.seq.Add(1))
	for _, dst := range to {
		if err := h.sock.sendTo(b, dst); err == nil {
			h.stats.sent.Add(1)
		}
	}
}

// receive reads the heartbeats queued in the socket, each at the time it
// arrived.
func (h *Heartbeat) receive(now time.Time) {
	err := h.sock.drain(now, func(b []byte, at time.Time) {
		node, seq, err := decode(h.key, b)
		if err != nil || node == h.opts.Node {
			h.stats.rejected.Add(1)
			return
		}
		h.accept(node, seq, at)
	})
	// A socket that keeps failing would log every interval: once per
	// change of error is enough.
	if err != nil && err.Error() != h.readErr {
		h.opts.Logger.Warn("reading heartbeats failed", "err", err)
	}
	h.readErr = ""
	if err != nil {
		h.readErr = err.Error()
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
		sent := h.sendProbe(n, a, now)
		h.mu.Lock()
		if sent {
			h.det.ProbeSent(n, time.Now())
		} else {
			h.det.ProbeFailed(n)
		}
		h.mu.Unlock()
		if sent {
			h.stats.probes.Add(1)
		}
	}
	for _, n := range died {
		h.stats.deaths.Add(1)
		h.opts.Logger.Info("peer dead: no heartbeat and its kernel does not answer on the LAN", "peer", n, "silent", now.Sub(since[n]).Round(time.Millisecond))
	}
	if len(died) > 0 {
		h.opts.OnChange()
	}
}

// answered records that node's kernel answered a probe, at the time the
// answer arrived.
func (h *Heartbeat) answered(node string, at time.Time) {
	h.mu.Lock()
	h.det.Answered(node, at)
	h.mu.Unlock()
}
