package liveness

import (
	"slices"
	"testing"
	"time"
)

// event is something that happens to the watched peer "o" at a time, in
// milliseconds after watching began.
type event struct {
	at   int
	kind string // "beat", "answer" (its kernel answers a probe sent before)
	// arrived, for an answer read late, is when it arrived (0: at).
	arrived int
}

// at is ms milliseconds after the tests' origin of time.
func at(ms int) time.Time { return time.Unix(1000, 0).Add(time.Duration(ms) * time.Millisecond) }

// run watches peer "o" from t=0, applies the events, ticks every ms until
// end, and returns when o was declared dead (-1: never) and how many probes
// were asked for before then. answerAfter >= 0 makes the kernel answer
// every probe that many ms later.
func run(t *testing.T, o Options, events []event, end int, answerAfter int) (diedAt, probes int) {
	t.Helper()
	d := New(o)
	d.Watch([]string{"o"}, at(0))
	diedAt = -1
	var answers []int
	for ms := 0; ms <= end; ms++ {
		for _, e := range events {
			if e.at == ms {
				switch e.kind {
				case "beat":
					if d.Beat("o", at(ms)) {
						diedAt = -1 // revived
					}
				case "answer":
					arrived := ms
					if e.arrived != 0 {
						arrived = e.arrived
					}
					d.Answered("o", at(arrived))
				}
			}
		}
		for _, a := range answers {
			if a == ms {
				d.Answered("o", at(ms))
			}
		}
		probe, died := d.Tick(at(ms))
		if len(probe) > 0 {
			probes++
			if answerAfter >= 0 {
				answers = append(answers, ms+answerAfter)
			}
		}
		if slices.Contains(died, "o") && diedAt < 0 {
			diedAt = ms
		}
	}
	return diedAt, probes
}

// beats returns a heartbeat every interval ms from..to (inclusive).
func beats(from, to, interval int) []event {
	var out []event
	for ms := from; ms <= to; ms += interval {
		out = append(out, event{at: ms, kind: "beat"})
	}
	return out
}

// without removes the heartbeats at the given times.
func without(events []event, at ...int) []event {
	return slices.DeleteFunc(events, func(e event) bool { return slices.Contains(at, e.at) })
}

func TestDetectorSpecification(t *testing.T) {
	// The speaker's defaults: 200 ms, heartbeats every 50 ms. Probing
	// from 75 ms of silence, every 16.7 ms, each probe given 75 ms.
	o := Defaults(200*time.Millisecond, 50*time.Millisecond)
	const never, any = -1, -1
	for _, tc := range []struct {
		name        string
		events      []event
		end         int
		answerAfter int // ms; -1: the kernel never answers
		wantDied    int // ms, -1: never
		wantProbes  int // -1: any
	}{
		{name: "steady heartbeats: never probed, never dead",
			events: beats(0, 2000, 50), end: 2000, answerAfter: never, wantDied: -1, wantProbes: 0},
		{name: "heartbeats 20 ms late now and then: no probe",
			events: append(without(beats(0, 2000, 50), 500, 1000), event{at: 520, kind: "beat"}, event{at: 1020, kind: "beat"}), end: 2000, answerAfter: never, wantDied: -1, wantProbes: 0},
		{name: "node crash at 500 (silence, kernel silent): dead 200 ms after the last beat",
			events: beats(0, 500, 50), end: 1500, answerAfter: never, wantDied: 701, wantProbes: any},
		{name: "speaker paused 100 ms (SIGSTOP): silence 150 ms, probes answered at once, alive",
			events: append(beats(0, 500, 50), beats(650, 2000, 50)...), end: 2000, answerAfter: 1, wantDied: -1, wantProbes: any},
		{name: "speaker paused 100 ms, probes never answered (lossy link): under DeadAfter, alive",
			events: append(beats(0, 500, 50), beats(650, 2000, 50)...), end: 2000, answerAfter: never, wantDied: -1, wantProbes: any},
		{name: "paused 100 ms, the next heartbeat lost, answers 74 ms late (the worst jitter): alive",
			events: append(beats(0, 500, 50), beats(700, 2000, 50)...), end: 2000, answerAfter: 74, wantDied: -1, wantProbes: any},
		{name: "only the fourth probe answered, just in time: alive",
			events: append(beats(0, 500, 50), event{at: 626 + 75, kind: "answer"}, event{at: 800, kind: "beat"}), end: 1000, answerAfter: never, wantDied: -1, wantProbes: any},
		{name: "answers later than each probe's time: dead at 200 ms all the same",
			events: beats(0, 500, 50), end: 1500, answerAfter: 300, wantDied: 701, wantProbes: any},
		{name: "speaker starved 1 s, kernel answers: never dead",
			events: append(beats(0, 500, 50), beats(1500, 3000, 50)...), end: 3000, answerAfter: 1, wantDied: -1, wantProbes: any},
		{name: "speaker hung for good, kernel answers: left to memberlist",
			events: beats(0, 500, 50), end: 5000, answerAfter: 1, wantDied: -1, wantProbes: any},
		{name: "an answer that arrived before the round (read during it) does not count",
			events: append(beats(0, 500, 50), event{at: 580, kind: "answer", arrived: 570}), end: 1000, answerAfter: never, wantDied: 701, wantProbes: any},
		{name: "an answer that arrived as the round began counts (a new round asks again 200 ms later)",
			events: append(beats(0, 500, 50), event{at: 580, kind: "answer", arrived: 575}), end: 770, answerAfter: never, wantDied: -1, wantProbes: any},
		{name: "never a first heartbeat: dead DeadAfter after watching began",
			events: nil, end: 1000, answerAfter: never, wantDied: 201, wantProbes: any},
		{name: "dead, then a heartbeat: alive again",
			events: append(beats(0, 500, 50), beats(800, 1000, 50)...), end: 1000, answerAfter: never, wantDied: -1, wantProbes: any},
	} {
		t.Run(tc.name, func(t *testing.T) {
			died, probes := run(t, o, tc.events, tc.end, tc.answerAfter)
			if died != tc.wantDied {
				t.Errorf("died at %d ms, want %d", died, tc.wantDied)
			}
			if tc.wantProbes >= 0 && probes != tc.wantProbes {
				t.Errorf("%d probes, want %d", probes, tc.wantProbes)
			}
		})
	}
}

// TestStarvedWatcherProbesBeforeDeciding: a watcher that did not run for
// 300 ms (starved of CPU itself) finds a silent peer when it wakes, but
// calls it dead only after the probes it sends from then on went
// unanswered, each for its full time: never on probes it did not send.
func TestStarvedWatcherProbesBeforeDeciding(t *testing.T) {
	o := Defaults(200*time.Millisecond, 50*time.Millisecond)
	d := New(o)
	d.Watch([]string{"o"}, at(0))
	d.Beat("o", at(0))
	// Asleep until 300 ms: the first Tick begins a round and probes.
	if probe, died := d.Tick(at(300)); len(probe) != 1 || len(died) != 0 {
		t.Fatalf("first wakeup at 300 ms: probe %v, died %v; want one probe and no death", probe, died)
	}
	for ms := 301; ms <= 600; ms++ {
		if ms == 320 {
			// The kernel answers the first probe 20 ms later.
			d.Answered("o", at(ms))
		}
		if _, died := d.Tick(at(ms)); len(died) > 0 {
			t.Fatalf("dead at %d ms although its kernel answered this round", ms)
		}
	}

	// The same, the kernel gone: dead once the four probes sent from 300
	// ms on (300, 317, 334, 351) each went 75 ms unanswered, at 426 ms.
	d = New(o)
	d.Watch([]string{"o"}, at(0))
	d.Beat("o", at(0))
	for ms := 300; ms <= 600; ms++ {
		if _, died := d.Tick(at(ms)); len(died) > 0 {
			if ms != 426 {
				t.Errorf("kernel gone: dead at %d ms, want 426", ms)
			}
			return
		}
	}
	t.Error("kernel gone: never dead")
}

// TestOnlyProbesSentCount: a probe that could not be sent (no interface
// on the peer's subnet, a socket refused) does not count, so a peer that
// cannot be probed is never dead by its silence alone; and a probe sent
// later than Tick asked for has its whole time to be answered from then.
func TestOnlyProbesSentCount(t *testing.T) {
	o := Defaults(200*time.Millisecond, 50*time.Millisecond)

	d := New(o)
	d.Watch([]string{"o"}, at(0))
	d.Beat("o", at(0))
	tries := 0
	for ms := 1; ms <= 2000; ms++ {
		probe, died := d.Tick(at(ms))
		if len(died) > 0 {
			t.Fatalf("dead at %d ms on probes that were never sent", ms)
		}
		if len(probe) > 0 {
			tries++
			d.ProbeFailed("o")
		}
	}
	// Retried every ProbeInterval, not in a loop: 1925 ms / 16.7 ms.
	if tries < 100 || tries > 120 {
		t.Errorf("%d attempts to probe in 2 s, want one every %s", tries, o.ProbeInterval)
	}

	// Each probe leaves 10 ms after Tick asked for it: dead 10 ms later.
	d = New(o)
	d.Watch([]string{"o"}, at(0))
	d.Beat("o", at(0))
	for ms := 1; ms <= 1000; ms++ {
		probe, died := d.Tick(at(ms))
		if len(probe) > 0 {
			d.ProbeSent("o", at(ms+10))
		}
		if len(died) > 0 {
			// Probes asked for at 75, 92, 109, 126 go out 10 ms later.
			if ms != 211 {
				t.Errorf("probes sent 10 ms late: dead at %d ms, want 211", ms)
			}
			return
		}
	}
	t.Error("never dead")
}
func TestKernelDiesWhileSpeakerHung(t *testing.T) {
	// The speaker hangs at 500 (its kernel answers), and the node loses
	// power at 1500: a later round of probes finds the kernel gone.
	o := Defaults(200*time.Millisecond, 50*time.Millisecond)
	d := New(o)
	d.Watch([]string{"o"}, at(0))
	diedAt := -1
	for ms := 0; ms <= 3000; ms += 5 {
		if ms <= 500 && ms%50 == 0 {
			d.Beat("o", at(ms))
		}
		probe, died := d.Tick(at(ms))
		if len(probe) > 0 && ms < 1500 {
			d.Answered("o", at(ms))
		}
		if len(died) > 0 {
			diedAt = ms
			break
		}
	}
	if diedAt < 1500 || diedAt > 1500+2*200 {
		t.Errorf("died at %d ms, want within 400 ms after the kernel died at 1500", diedAt)
	}
}

func TestDeadStaysDeadWhenNoLongerWatched(t *testing.T) {
	o := Defaults(150*time.Millisecond, 20*time.Millisecond)
	base := time.Unix(1000, 0)
	d := New(o)
	d.Watch([]string{"o", "p"}, base)
	for ms := 0; ms <= 300; ms += 5 {
		now := base.Add(time.Duration(ms) * time.Millisecond)
		d.Beat("p", now)
		d.Tick(now)
	}
	if _, ok := d.Dead()["o"]; !ok {
		t.Fatalf("o not dead after 300 ms of silence: %v", d.Dead())
	}
	// Its addresses moved: nobody watches o or p any more.
	d.Watch(nil, base.Add(time.Second))
	if _, ok := d.Dead()["o"]; !ok {
		t.Error("o came back to life when it was no longer watched")
	}
	if len(d.peers) != 1 {
		t.Errorf("kept %d peers, want only the dead one", len(d.peers))
	}
	if !d.Beat("o", base.Add(2*time.Second)) || len(d.Dead()) != 0 || len(d.peers) != 0 {
		t.Errorf("a heartbeat from unwatched dead o: dead %v, peers %d", d.Dead(), len(d.peers))
	}
	d.Watch([]string{"o"}, base.Add(3*time.Second))
	d.Tick(base.Add(3*time.Second + 100*time.Millisecond))
	d.Forget("o")
	if len(d.peers) != 0 {
		t.Error("Forget kept the peer")
	}
}

func TestDeadSinceIsTheLastHeartbeat(t *testing.T) {
	base := time.Unix(1000, 0)
	d := New(Defaults(200*time.Millisecond, 50*time.Millisecond))
	d.Watch([]string{"o"}, base)
	d.Beat("o", base.Add(40*time.Millisecond))
	for ms := 0; ms <= 500; ms += 5 {
		d.Tick(base.Add(time.Duration(ms) * time.Millisecond))
	}
	if got := d.Dead()["o"]; !got.Equal(base.Add(40 * time.Millisecond)) {
		t.Errorf("dead since %v, want the last heartbeat at +40ms", got.Sub(base))
	}
}

func TestValidate(t *testing.T) {
	for _, c := range [][2]time.Duration{{200 * time.Millisecond, 50 * time.Millisecond}, {150 * time.Millisecond, 20 * time.Millisecond}, {time.Second, 100 * time.Millisecond}} {
		if err := Defaults(c[0], c[1]).Validate(); err != nil {
			t.Errorf("Defaults(%s, %s): %v", c[0], c[1], err)
		}
	}
	ms := time.Millisecond
	for _, o := range []Options{
		{},
		{DeadAfter: time.Second, ProbeAfter: time.Second, ProbeInterval: ms, Probes: 1, AnswerWithin: ms},
		{DeadAfter: time.Second, ProbeAfter: ms, ProbeInterval: 0, Probes: 1, AnswerWithin: ms},
		{DeadAfter: time.Second, ProbeAfter: ms, ProbeInterval: ms, Probes: 0, AnswerWithin: ms},
		{DeadAfter: time.Second, ProbeAfter: ms, ProbeInterval: ms, Probes: 1, AnswerWithin: 0},
		{DeadAfter: 100 * ms, ProbeAfter: 50 * ms, ProbeInterval: 100 * ms, Probes: 4, AnswerWithin: ms},
		{DeadAfter: 100 * ms, ProbeAfter: 50 * ms, ProbeInterval: ms, Probes: 4, AnswerWithin: 200 * ms},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestDrivenByNext runs the detector as the heartbeat does, waking only at
// Next, with 50 ms heartbeats: a crash is found 200 ms after the last
// heartbeat, a silent speaker whose kernel answers never is, and the
// detector wakes far less often than the heartbeats come.
func TestDrivenByNext(t *testing.T) {
	o := Defaults(200*time.Millisecond, 50*time.Millisecond)
	if o.ProbeAfter != 75*time.Millisecond || o.AnswerWithin != 75*time.Millisecond {
		t.Fatalf("probing after %s, answers within %s; want 75ms and 75ms", o.ProbeAfter, o.AnswerWithin)
	}
	for _, tc := range []struct {
		name      string
		lastBeat  int // ms: heartbeats every 50 ms until then
		kernel    bool
		wantDied  int
		maxWakeup int
	}{
		{"crash", 1000, false, 1201, 30},
		{"speaker hung, kernel answers", 1000, true, -1, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(o)
			d.Watch([]string{"o"}, at(0))
			died, wakeups := -1, 0
			nextBeat := 0
			for now := 0; now <= 3000; {
				if nextBeat <= tc.lastBeat && nextBeat <= now {
					d.Beat("o", at(nextBeat))
					nextBeat += 50
				}
				if n := d.Next(); !n.IsZero() && !n.After(at(now)) {
					wakeups++
					probe, dead := d.Tick(at(now))
					if len(probe) > 0 && tc.kernel {
						d.Answered("o", at(now))
					}
					if len(dead) > 0 {
						died = now
						break
					}
				}
				now++
			}
			if died != tc.wantDied {
				t.Errorf("died at %d ms, want %d", died, tc.wantDied)
			}
			if wakeups > tc.maxWakeup {
				t.Errorf("%d wakeups in 3 s, want at most %d", wakeups, tc.maxWakeup)
			}
		})
	}
}
