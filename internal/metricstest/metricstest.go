// Package metricstest checks Pharos's Prometheus collectors against the
// Prometheus naming conventions, for tests: the same checks as
// `promtool check metrics` (client_golang's promlint: counters end in
// _total and nothing else does, base units, help text, no camelCase), on
// every metric a collector describes, with the pharos_ prefix.
package metricstest

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// Prefix starts the name of every metric Pharos defines.
const Prefix = "pharos_"

// Lint fails t for every problem promlint finds in what c collects, for
// every metric c describes without a series to lint (give the collector
// the state that makes each metric emit, or pass a sample of it in extra),
// and for a name without Prefix. extra are collected along with c's own
// metrics: samples of metrics c describes but emits only in states a unit
// test cannot reach cheaply. It returns the names linted.
func Lint(t testing.TB, c prometheus.Collector, extra ...prometheus.Metric) []string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(withExtra{c, extra}); err != nil {
		t.Fatalf("registering the collector: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	var gathered []string
	for _, mf := range mfs {
		gathered = append(gathered, mf.GetName())
	}
	described := Described(c)
	for _, name := range described {
		if !slices.Contains(gathered, name) {
			t.Errorf("%s is described but has no series, so it is not linted: give the collector a state in which it emits it", name)
		}
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), Prefix) {
			t.Errorf("%s: a Pharos metric's name starts with %s", mf.GetName(), Prefix)
		}
		// promlint finds only a missing HELP; client_golang always has one,
		// empty if not given.
		if strings.TrimSpace(mf.GetHelp()) == "" {
			t.Errorf("%s: no help text", mf.GetName())
		}
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatalf("linting: %v", err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	return gathered
}

// fqName reads a descriptor's name from its String(), the only place
// client_golang shows it.
var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// Described returns the names of the metrics c describes, sorted, without
// duplicates.
func Described(c prometheus.Collector) []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var names []string
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Collectors are several collectors as one, to lint together.
type Collectors []prometheus.Collector

// Describe implements prometheus.Collector.
func (cs Collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (cs Collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}

// withExtra is a collector that adds samples to another's metrics.
type withExtra struct {
	prometheus.Collector
	extra []prometheus.Metric
}

func (w withExtra) Collect(ch chan<- prometheus.Metric) {
	w.Collector.Collect(ch)
	for _, m := range w.extra {
		ch <- m
	}
}
