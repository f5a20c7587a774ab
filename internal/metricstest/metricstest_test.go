package metricstest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.errors = append(r.errors, "fatal: "+fmt.Sprintf(format, args...))
}

// TestLintFindsWhatPromtoolRejects: each mistake that `promtool check
// metrics` rejects, a family with no series, and a name without the
// prefix are reported; well-named metrics pass.
func TestLintFindsWhatPromtoolRejects(t *testing.T) {
	vec := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pharos_unset", Help: "h"}, []string{"pool"})
	desc := prometheus.NewDesc("pharos_sampled_total", "h", []string{"x"}, nil)
	for _, tc := range []struct {
		name  string
		c     prometheus.Collector
		extra []prometheus.Metric
		want  []string
	}{
		{"good", Collectors{
			prometheus.NewCounter(prometheus.CounterOpts{Name: "pharos_requests_total", Help: "h"}),
			prometheus.NewGauge(prometheus.GaugeOpts{Name: "pharos_pool_addresses", Help: "h"}),
			prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pharos_sync_duration_seconds", Help: "h"}),
		}, nil, nil},
		{"gauge with _total", prometheus.NewGauge(prometheus.GaugeOpts{Name: "pharos_pool_addresses_total", Help: "h"}), nil,
			[]string{"non-counter metrics should not have \"_total\" suffix"}},
		{"counter without _total", prometheus.NewCounter(prometheus.CounterOpts{Name: "pharos_requests", Help: "h"}), nil,
			[]string{"counter metrics should have \"_total\" suffix"}},
		{"no help", prometheus.NewGauge(prometheus.GaugeOpts{Name: "pharos_frontends"}), nil,
			[]string{"no help text"}},
		{"not a base unit", prometheus.NewGauge(prometheus.GaugeOpts{Name: "pharos_sync_milliseconds", Help: "h"}), nil,
			[]string{"use base unit \"seconds\""}},
		{"no prefix", prometheus.NewGauge(prometheus.GaugeOpts{Name: "frontends", Help: "h"}), nil,
			[]string{"starts with pharos_"}},
		{"a vector without series", vec, nil, []string{"pharos_unset is described but has no series"}},
		{"a counter sampled by extra", descCollector{desc}, []prometheus.Metric{prometheus.MustNewConstMetric(desc, prometheus.CounterValue, 1, "a")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			Lint(r, tc.c, tc.extra...)
			got := strings.Join(r.errors, "\n")
			if len(tc.want) == 0 && got != "" {
				t.Errorf("problems in a good collector:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("problems %q lack %q", got, w)
				}
			}
		})
	}
}

// descCollector describes a descriptor and collects nothing.
type descCollector struct{ d *prometheus.Desc }

func (c descCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.d }
func (c descCollector) Collect(chan<- prometheus.Metric)    {}

func TestDescribed(t *testing.T) {
	c := Collectors{
		prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pharos_b_total", Help: "h"}, []string{"x"}),
		prometheus.NewGauge(prometheus.GaugeOpts{Name: "pharos_a", Help: "h"}),
		descCollector{prometheus.NewDesc("pharos_a", "h", nil, nil)},
	}
	if got := strings.Join(Described(c), " "); got != "pharos_a pharos_b_total" {
		t.Errorf("Described = %s", got)
	}
}
