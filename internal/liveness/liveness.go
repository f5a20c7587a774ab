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
// heartbeat and several probes without an answer, each of which had the
// time a lossy, jittery LAN may take to answer it.
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
	// does not answer either is dead: the time a crash goes unnoticed.
	DeadAfter time.Duration
	// ProbeAfter is the silence after which the peer's kernel is probed.
	ProbeAfter time.Duration
	// ProbeInterval is the time between probes while the peer is silent.
	ProbeInterval time.Duration
	// Probes is how many probes of the round must go unanswered, each for
	// AnswerWithin, before the peer is declared dead.
	Probes int
	// AnswerWithin is how long a probe's answer may take: the LAN's round
	// trip at its worst (jitter and a node's softirq backlog included). A
	// probe younger than that has not failed yet, only not answered.
	AnswerWithin time.Duration
}

// Defaults are the default options for a detection time and a heartbeat
// interval: probing starts after a third of the detection time, or one and
// a half intervals if that is longer (so that one late heartbeat never
// starts a round); three fifths of what remains is each probe's time to be
// answered, and four probes spread over the rest must all go unanswered.
// With 200 ms and 50 ms heartbeats, a peer is probed from 75 ms of silence,
// every 16.7 ms, each probe is given 75 ms, and a peer whose kernel is gone
// is dead at 200 ms.
//
// Why four probes with a long wait each, rather than one: on a LAN with
// 5 % loss each way and 20 ms of jitter on 20 ms of delay (the stress the
// figures are measured under), one probe goes unanswered about one time
// in ten, and a speaker paused for 100 ms starts a round about every
// other pause. Four probes that each had the longest round trip to be
// answered fail together about once in 10,000 rounds, and the probes sent
// while the fourth one waits lower that further.
func Defaults(deadAfter, interval time.Duration) Options {
	probeAfter := max(deadAfter/3, interval+interval/2)
	rest := max(deadAfter-probeAfter, 0)
	const probes = 4
	within := rest * 3 / 5
	return Options{DeadAfter: deadAfter, ProbeAfter: probeAfter, ProbeInterval: (rest - within) / (probes - 1),
		Probes: probes, AnswerWithin: within}
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
	case o.AnswerWithin <= 0:
		return fmt.Errorf("a probe must be given time to be answered, not %s", o.AnswerWithin)
	case o.ProbeAfter+time.Duration(o.Probes-1)*o.ProbeInterval+o.AnswerWithin > o.DeadAfter+o.DeadAfter:
		return fmt.Errorf("%d probes every %s after %s of silence, each given %s to be answered, take more than twice the detection time %s",
			o.Probes, o.ProbeInterval, o.ProbeAfter, o.AnswerWithin, o.DeadAfter)
	}
	return nil
}

// peer is what the detector knows of one peer.
type peer struct {
	// lastBeat is when the last heartbeat came (or when watching began).
	lastBeat time.Time
	watched  bool
	dead     bool
	// The current probing round: when it began, when each of its probes
	// was sent, when the last probe was asked for (sent or not), and the
	// last time the kernel answered.
	roundStart time.Time
	sent       []time.Time
	lastTry    time.Time
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
			p.endRound()
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
	p.endRound()
	if p.dead {
		p.dead = false
		if !p.watched {
			delete(d.peers, name)
		}
		return true
	}
	return false
}

// Answered records that the peer's kernel answered a probe at time at
// (when the answer arrived): an answer that arrived before the round
// began answered an earlier round, and does not count.
func (d *Detector) Answered(name string, at time.Time) {
	if p := d.peers[name]; p != nil && !p.roundStart.IsZero() {
		p.answered = later(p.answered, at)
	}
}

// ProbeSent records when the probe that Tick asked for went out: later than
// Tick's time if sending took a while (a starved node may be descheduled in
// between), and each probe must have its whole AnswerWithin from when it
// was really sent.
func (d *Detector) ProbeSent(name string, at time.Time) {
	if p := d.peers[name]; p != nil && len(p.sent) > 0 {
		last := &p.sent[len(p.sent)-1]
		*last = later(*last, at)
	}
}

// ProbeFailed records that the probe Tick asked for could not be sent (no
// interface on the peer's subnet, a socket refused): it does not count. A
// peer that cannot be probed is never called dead here, only by memberlist:
// its silence alone cannot tell a crash from a pause.
func (d *Detector) ProbeFailed(name string) {
	if p := d.peers[name]; p != nil && len(p.sent) > 0 {
		p.sent = p.sent[:len(p.sent)-1]
	}
}

func (p *peer) endRound() {
	p.roundStart, p.sent, p.lastTry = time.Time{}, p.sent[:0], time.Time{}
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
			p.endRound()
			continue
		}
		// A kernel that answered during this round is alive; after
		// DeadAfter more of silence, a new round asks again (it may have
		// died since).
		if !p.roundStart.IsZero() && !p.answered.Before(p.roundStart) && now.Sub(p.answered) >= o.DeadAfter {
			p.endRound()
		}
		if p.roundStart.IsZero() {
			p.roundStart = now
		}
		if !p.answered.Before(p.roundStart) {
			continue // its kernel answered: no more probes this round
		}
		// Dead: silent long enough, and Probes probes sent, each of which
		// had AnswerWithin to be answered. A caller that was itself
		// starved of CPU sent fewer probes than it meant to, and goes on
		// probing rather than decide on probes it never sent.
		if silence >= o.DeadAfter && len(p.sent) >= o.Probes && !now.Before(p.sent[o.Probes-1].Add(o.AnswerWithin)) {
			p.dead = true
			died = append(died, name)
			continue
		}
		if p.lastTry.IsZero() || now.Sub(p.lastTry) >= o.ProbeInterval {
			p.lastTry = now
			p.sent = append(p.sent, now)
			probe = append(probe, name)
		}
	}
	sort.Strings(probe)
	sort.Strings(died)
	return probe, died
}

// Next returns when Tick next has something to do for the peers as they
// are now (start probing a silent peer, probe again, or declare one dead),
// or the zero time when no live peer is watched. A caller that sleeps
// until Next, and calls Next again after every Tick, Beat, Answered or
// Watch, never misses a deadline.
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
		case p.lastTry.IsZero():
			t = p.roundStart // a round Tick began without probing
		default:
			t = p.lastTry.Add(o.ProbeInterval)
			if len(p.sent) >= o.Probes {
				if decide := later(p.lastBeat.Add(o.DeadAfter), p.sent[o.Probes-1].Add(o.AnswerWithin)); decide.Before(t) {
					t = decide
				}
			}
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

// Probing reports whether a live peer is being probed (a round without an
// answer yet): its deadlines then fall every ProbeInterval and must be met
// on time, where the start of a round may wait a little.
func (d *Detector) Probing() bool {
	for _, p := range d.peers {
		if !p.dead && p.watched && !p.roundStart.IsZero() && p.answered.Before(p.roundStart) {
			return true
		}
	}
	return false
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
