// Package liveness decides, from heartbeats and from probes of a peer's
// kernel, when a peer node is dead. It is pure: the caller feeds it the
// time, the heartbeats it received and the probe answers it saw, and it
// says when to probe and who died.
//
// # Why two signals
//
// A heartbeat comes from the peer's speaker process. Its silence alone
// cannot tell a crashed node from a slow one: a speaker paused by SIGSTOP,
// starved of CPU or garbage-collecting stops sending for a while although
// its node still forwards traffic, and moving the node's addresses then
// would cost every connection through it. A probe of the peer's address on
// the LAN (an ARP request or a Neighbor Solicitation) is answered by its
// kernel, in softirq, whatever its processes do; it fails when the node is
// powered off, its kernel hung, or its link down: the cases in which its
// addresses must move. So a peer is dead only after DeadAfter without a
// heartbeat and a whole round of probes without an answer.
//
// A speaker process that died on a live node is left to memberlist, whose
// slower detection is good enough there: the node's kernel still carries
// the traffic clients send to it.
package liveness

import (
	"fmt"
	"sort"
	"time"
)

// Options tune the detection. The zero value is not valid; see Defaults.
type Options struct {
	// DeadAfter is the heartbeat silence after which a peer whose kernel
	// does not answer either is dead.
	DeadAfter time.Duration
	// ProbeAfter is the silence after which the peer's kernel is probed.
	ProbeAfter time.Duration
	// ProbeInterval is the time between probes while the peer is silent.
	ProbeInterval time.Duration
	// Probes is how many probes of the round must go unanswered before
	// the peer is declared dead.
	Probes int
}

// Defaults are the default options for a detection time and a heartbeat
// interval: probing starts after a third of the detection time, or one and
// a half intervals if that is longer (so that one late heartbeat never
// starts a round), every tenth of it, and at least four probes must go
// unanswered. With 150 ms and 50 ms heartbeats, a peer is probed from 75
// ms of silence and the first probe has 75 ms to be answered.
func Defaults(deadAfter, interval time.Duration) Options {
	return Options{DeadAfter: deadAfter, ProbeAfter: max(deadAfter/3, interval+interval/2), ProbeInterval: deadAfter / 10, Probes: 4}
}

// Validate says what is wrong with the options, naming the setting.
func (o Options) Validate() error {
	switch {
	case o.DeadAfter <= 0:
		return fmt.Errorf("the failover detection time must be positive, not %s", o.DeadAfter)
	case o.ProbeAfter <= 0 || o.ProbeAfter >= o.DeadAfter:
		return fmt.Errorf("probing must start after a silence between 0 and the detection time %s, not %s", o.DeadAfter, o.ProbeAfter)
	case o.ProbeInterval <= 0:
		return fmt.Errorf("the probe interval must be positive, not %s", o.ProbeInterval)
	case o.Probes < 1:
		return fmt.Errorf("at least one probe must go unanswered, not %d", o.Probes)
	case o.ProbeAfter+time.Duration(o.Probes-1)*o.ProbeInterval > o.DeadAfter+o.DeadAfter:
		return fmt.Errorf("%d probes every %s after %s of silence take more than twice the detection time %s", o.Probes, o.ProbeInterval, o.ProbeAfter, o.DeadAfter)
	}
	return nil
}

// peer is what the detector knows of one peer.
type peer struct {
	// lastBeat is when the last heartbeat came (or when watching began).
	lastBeat time.Time
	watched  bool
	dead     bool
	// The current probing round: when it began, probes sent, the last
	// probe, and whether the kernel answered since the round began.
	roundStart time.Time
	probes     int
	lastProbe  time.Time
	answered   time.Time
}

// Detector tracks the peers a node watches. It is not safe for concurrent
// use; the caller serializes calls.
type Detector struct {
	opts  Options
	peers map[string]*peer
}

// New returns a detector with the given options, which must be valid.
func New(opts Options) *Detector {
	return &Detector{opts: opts, peers: map[string]*peer{}}
}

// Watch sets the peers to watch. A peer newly watched gets DeadAfter from
// now to send its first heartbeat. A peer no longer watched is forgotten,
// unless it is dead: a dead peer stays dead until it sends a heartbeat or
// the caller forgets it, because once its addresses moved away nobody
// watches it any more, and forgetting it would bring it back.
func (d *Detector) Watch(names []string, now time.Time) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
		p := d.peers[n]
		if p == nil {
			p = &peer{lastBeat: now}
			d.peers[n] = p
		}
		if !p.watched && !p.dead {
			p.lastBeat = later(p.lastBeat, now)
			p.roundStart = time.Time{}
		}
		p.watched = true
	}
	for n, p := range d.peers {
		if !want[n] {
			p.watched = false
			if !p.dead {
				delete(d.peers, n)
			}
		}
	}
}

// Beat records a heartbeat from the peer. It reports whether the peer was
// dead and is now alive again.
func (d *Detector) Beat(name string, now time.Time) (revived bool) {
	p := d.peers[name]
	if p == nil {
		// Heartbeats of peers not watched (the peer thinks this node is
		// its successor before this node does) are not kept.
		return false
	}
	p.lastBeat = later(p.lastBeat, now)
	p.roundStart, p.probes = time.Time{}, 0
	if p.dead {
		p.dead = false
		if !p.watched {
			delete(d.peers, name)
		}
		return true
	}
	return false
}

// Answered records that the peer's kernel answered a probe.
func (d *Detector) Answered(name string, now time.Time) {
	if p := d.peers[name]; p != nil && !p.roundStart.IsZero() {
		p.answered = later(p.answered, now)
	}
}

// Tick advances time. It returns the peers to probe now, sorted, and the
// peers that have just been declared dead.
func (d *Detector) Tick(now time.Time) (probe, died []string) {
	o := d.opts
	for name, p := range d.peers {
		if p.dead || !p.watched {
			continue
		}
		silence := now.Sub(p.lastBeat)
		if silence < o.ProbeAfter {
			p.roundStart, p.probes = time.Time{}, 0
			continue
		}
		// A kernel that answered during this round is alive; after
		// DeadAfter more of silence, a new round asks again (it may have
		// died since).
		if !p.roundStart.IsZero() && !p.answered.Before(p.roundStart) && now.Sub(p.answered) >= o.DeadAfter {
			p.roundStart, p.probes = time.Time{}, 0
		}
		if p.roundStart.IsZero() {
			p.roundStart, p.probes = now, 0
		}
		if !p.answered.Before(p.roundStart) {
			continue // its kernel answered: no more probes this round
		}
		// Dead: silent long enough, enough probes sent, and the round's
		// first probe had as long to be answered as the silence before
		// probing left it (however late the round began).
		if silence >= o.DeadAfter && p.probes >= o.Probes && now.Sub(p.roundStart) >= o.DeadAfter-o.ProbeAfter {
			p.dead = true
			died = append(died, name)
			continue
		}
		if p.probes == 0 || now.Sub(p.lastProbe) >= o.ProbeInterval {
			p.probes++
			p.lastProbe = now
			probe = append(probe, name)
		}
	}
	sort.Strings(probe)
	sort.Strings(died)
	return probe, died
}

// Next returns when Tick next has something to do for the peers as they
// are now (start probing a silent peer, probe again, or declare one dead),
// or the zero time when no live peer is watched. A heartbeat only moves
// that time later, so a caller that sleeps until Next and calls Tick then
// never misses a deadline.
func (d *Detector) Next() time.Time {
	o := d.opts
	var next time.Time
	for _, p := range d.peers {
		if p.dead || !p.watched {
			continue
		}
		var t time.Time
		switch {
		case p.roundStart.IsZero():
			t = p.lastBeat.Add(o.ProbeAfter)
		case !p.answered.Before(p.roundStart):
			t = p.answered.Add(o.DeadAfter) // a new round
		default:
			t = p.lastProbe.Add(o.ProbeInterval)
			decide := later(p.lastBeat.Add(o.DeadAfter), p.roundStart.Add(o.DeadAfter-o.ProbeAfter))
			if p.probes >= o.Probes || decide.Before(t) {
				t = decide
			}
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

// Dead returns the dead peers and, for each, when its last heartbeat came:
// the start of the failure as this node saw it.
func (d *Detector) Dead() map[string]time.Time {
	out := map[string]time.Time{}
	for n, p := range d.peers {
		if p.dead {
			out[n] = p.lastBeat
		}
	}
	return out
}

// Forget drops what the detector knows of a peer: the caller forgets a dead
// peer once memberlist, too, no longer lists it.
func (d *Detector) Forget(name string) { delete(d.peers, name) }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
