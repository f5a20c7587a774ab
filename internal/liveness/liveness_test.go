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
}

// run watches peer "o" from t=0, applies the events, ticks every 5 ms until
// end, and returns when o was declared dead (-1: never) and how many probes
// were asked for before then.
func run(t *testing.T, o Options, events []event, end int, answerProbes bool) (diedAt, probes int) {
	t.Helper()
	base := time.Unix(1000, 0)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	d := New(o)
	d.Watch([]string{"o"}, at(0))
	diedAt = -1
	for ms := 0; ms <= end; ms += 5 {
		for _, e := range events {
			if e.at == ms {
				switch e.kind {
				case "beat":
					if d.Beat("o", at(ms)) {
						diedAt = -1 // revived
					}
				case "answer":
					d.Answered("o", at(ms))
				}
			}
		}
		probe, died := d.Tick(at(ms))
		if len(probe) > 0 {
			probes++
			if answerProbes {
				// The kernel answers 1 ms later: before the next tick.
				d.Answered("o", at(ms).Add(time.Millisecond))
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
		out = append(out, event{ms, "beat"})
	}
	return out
}

func TestDetectorSpecification(t *testing.T) {
	o := Defaults(150*time.Millisecond, 20*time.Millisecond)
	for _, tc := range []struct {
		name         string
		events       []event
		end          int
		answerProbes bool
		wantDied     int // ms, -1: never
		wantProbes   int // -1: any
	}{
		{name: "steady heartbeats: never probed, never dead",
			events: beats(0, 2000, 20), end: 2000, wantDied: -1, wantProbes: 0},
		{name: "one heartbeat lost now and then: no probe",
			events: slices.DeleteFunc(beats(0, 2000, 20), func(e event) bool { return e.at%200 == 0 && e.at > 0 }), end: 2000, wantDied: -1, wantProbes: 0},
		{name: "node crash at 500 (silence, kernel silent): dead 150 ms after the last beat",
			events: beats(0, 500, 20), end: 1500, wantDied: 650, wantProbes: -1},
		{name: "speaker paused 100 ms (SIGSTOP): silence 120 ms, probes answered, alive",
			events: append(beats(0, 500, 20), beats(620, 2000, 20)...), end: 2000, answerProbes: true, wantDied: -1, wantProbes: -1},
		{name: "speaker paused 100 ms, probes unanswered (lossy link): under DeadAfter, alive",
			events: append(beats(0, 500, 20), beats(620, 2000, 20)...), end: 2000, wantDied: -1, wantProbes: -1},
		{name: "speaker starved 1 s, kernel answers: never dead",
			events: append(beats(0, 500, 20), beats(1500, 3000, 20)...), end: 3000, answerProbes: true, wantDied: -1, wantProbes: -1},
		{name: "speaker hung for good, kernel answers: left to memberlist",
			events: beats(0, 500, 20), end: 5000, answerProbes: true, wantDied: -1, wantProbes: -1},
		{name: "one late answer of the round is enough",
			events: append(beats(0, 500, 20), event{640, "answer"}), end: 700, wantDied: -1, wantProbes: -1},
		{name: "an answer before the round does not count",
			events: append(beats(0, 500, 20), event{510, "answer"}), end: 1000, wantDied: 650, wantProbes: -1},
		{name: "never a first heartbeat: dead DeadAfter after watching began",
			events: nil, end: 1000, wantDied: 150, wantProbes: -1},
		{name: "dead, then a heartbeat: alive again",
			events: append(beats(0, 500, 20), beats(800, 1000, 20)...), end: 1000, wantDied: -1, wantProbes: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			died, probes := run(t, o, tc.events, tc.end, tc.answerProbes)
			if died != tc.wantDied {
				t.Errorf("died at %d ms, want %d", died, tc.wantDied)
			}
			if tc.wantProbes >= 0 && probes != tc.wantProbes {
				t.Errorf("%d probes, want %d", probes, tc.wantProbes)
			}
		})
	}
}

func TestKernelDiesWhileSpeakerHung(t *testing.T) {
	// The speaker hangs at 500 (its kernel answers), and the node loses
	// power at 1500: a later round of probes finds the kernel gone.
	o := Defaults(150*time.Millisecond, 20*time.Millisecond)
	base := time.Unix(1000, 0)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	d := New(o)
	d.Watch([]string{"o"}, at(0))
	diedAt := -1
	for ms := 0; ms <= 3000; ms += 5 {
		if ms <= 500 && ms%20 == 0 {
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
	if diedAt < 1500 || diedAt > 1500+2*150 {
		t.Errorf("died at %d ms, want within 300 ms after the kernel died at 1500", diedAt)
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
	d := New(Defaults(150*time.Millisecond, 20*time.Millisecond))
	d.Watch([]string{"o"}, base)
	d.Beat("o", base.Add(40*time.Millisecond))
	for ms := 0; ms <= 400; ms += 5 {
		d.Tick(base.Add(time.Duration(ms) * time.Millisecond))
	}
	if got := d.Dead()["o"]; !got.Equal(base.Add(40 * time.Millisecond)) {
		t.Errorf("dead since %v, want the last heartbeat at +40ms", got.Sub(base))
	}
}

func TestValidate(t *testing.T) {
	if err := Defaults(150*time.Millisecond, 20*time.Millisecond).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{
		{},
		{DeadAfter: time.Second, ProbeAfter: time.Second, ProbeInterval: time.Millisecond, Probes: 1},
		{DeadAfter: time.Second, ProbeAfter: time.Millisecond, ProbeInterval: 0, Probes: 1},
		{DeadAfter: time.Second, ProbeAfter: time.Millisecond, ProbeInterval: time.Millisecond, Probes: 0},
		{DeadAfter: 100 * time.Millisecond, ProbeAfter: 50 * time.Millisecond, ProbeInterval: 100 * time.Millisecond, Probes: 4},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestDrivenByNext runs the detector as the heartbeat does, waking only at
// Next, with 50 ms heartbeats: a crash is found 150 ms after the last
// heartbeat, a silent speaker whose kernel answers never is, and the
// detector wakes far less often than the heartbeats come.
func TestDrivenByNext(t *testing.T) {
	o := Defaults(150*time.Millisecond, 50*time.Millisecond)
	if o.ProbeAfter != 75*time.Millisecond {
		t.Fatalf("probing after %s, want 75ms", o.ProbeAfter)
	}
	for _, tc := range []struct {
		name      string
		lastBeat  int // ms: heartbeats every 50 ms until then
		kernel    bool
		wantDied  int
		maxWakeup int
	}{
		{"crash", 1000, false, 1150, 30},
		{"speaker hung, kernel answers", 1000, true, -1, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := time.Unix(1000, 0)
			at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
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
