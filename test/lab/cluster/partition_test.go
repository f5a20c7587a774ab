package cluster

import (
	"sort"
	"testing"
	"time"
)

// TestSummarizeARP reads a watch with two episodes of two MACs: TwoMAC
// spans both, LongestTwoMAC is the longer one alone.
func TestSummarizeARP(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int, mac string) ARPAnswer {
		return ARPAnswer{At: t0.Add(time.Duration(ms) * time.Millisecond), MAC: mac}
	}
	var answers []ARPAnswer
	for ms := 0; ms < 10000; ms += 10 {
		answers = append(answers, at(ms, "A"))
	}
	// B answers too from 2,000 to 2,290 ms, and from 6,000 to 6,990 ms.
	for ms := 2000; ms < 2300; ms += 10 {
		answers = append(answers, at(ms, "B"))
	}
	for ms := 6000; ms < 7000; ms += 10 {
		answers = append(answers, at(ms, "B"))
	}
	sort.Slice(answers, func(i, j int) bool { return answers[i].At.Before(answers[j].At) })
	s := SummarizeARP(answers, 30*time.Millisecond, t0, t0.Add(10*time.Second))
	if s.LongestTwoMAC < 960*time.Millisecond || s.LongestTwoMAC > 1050*time.Millisecond {
		t.Errorf("longest episode %v, want about 1s", s.LongestTwoMAC)
	}
	if s.TwoMAC < 4900*time.Millisecond || s.TwoMAC > 5100*time.Millisecond {
		t.Errorf("two MACs over %v, want about 5s from the first to the last", s.TwoMAC)
	}
	if len(s.MACs) != 2 || s.LongestSilence > 20*time.Millisecond {
		t.Errorf("summary %s", s)
	}
}
