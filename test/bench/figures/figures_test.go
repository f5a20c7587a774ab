package figures

import "testing"

func TestPercentile(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for p, want := range map[int]float64{50: 5, 95: 10, 90: 9, 10: 1} {
		if got := Percentile(v, p); got != want {
			t.Errorf("p%d = %v, want %v", p, got, want)
		}
	}
	if Percentile(nil, 95) != 0 {
		t.Error("no values")
	}
}
