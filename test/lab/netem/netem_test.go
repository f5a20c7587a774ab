package netem

import (
	"math"
	"math/rand"
	"testing"
	"time"
)

func TestDecideDrawsLossAndJitter(t *testing.T) {
	im := Impairment{Loss: 0.05, Delay: 20 * time.Millisecond, Jitter: 20 * time.Millisecond}
	rnd := rand.New(rand.NewSource(1))
	const n = 100000
	drops := 0
	var lo, hi time.Duration = time.Hour, 0
	var sum time.Duration
	for i := 0; i < n; i++ {
		drop, d := im.Decide(rnd)
		if drop {
			drops++
			continue
		}
		lo, hi = min(lo, d), max(hi, d)
		sum += d
	}
	if got := float64(drops) / n; math.Abs(got-0.05) > 0.005 {
		t.Errorf("lost %.3f of frames, want 0.05", got)
	}
	if lo < 0 || lo > time.Millisecond || hi > 40*time.Millisecond || hi < 39*time.Millisecond {
		t.Errorf("delays from %s to %s, want 0 to 40 ms", lo, hi)
	}
	if mean := sum / time.Duration(n-drops); mean < 19*time.Millisecond || mean > 21*time.Millisecond {
		t.Errorf("mean delay %s, want 20 ms", mean)
	}
	if drop, d := (Impairment{}).Decide(rnd); drop || d != 0 {
		t.Errorf("no impairment: drop %v, delay %s", drop, d)
	}
}
