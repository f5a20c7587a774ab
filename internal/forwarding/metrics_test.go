package forwarding

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pharos-lb/pharos/internal/metricstest"
	"github.com/pharos-lb/pharos/internal/speaker"
)

// syncErrors reads pharos_forwarding_sync_errors_total.
func syncErrors(f *Forwarding) float64 { return testutil.ToFloat64(f.m.errors) }

// TestSyncErrorsCounted: a node that should forward directly but cannot
// program nftables (here: no network namespace to program) counts one
// failed attempt per attempt, the first at once and one more each resync,
// not a hot loop; a node with nothing to forward never tries, so counts
// none.
func TestSyncErrorsCounted(t *testing.T) {
	st := speaker.Compute(snapshot())
	winner := st.Lookup(netip.MustParseAddr(vip4)).Election.Winner

	f := New(Options{Node: winner, NetNS: -1, Resync: time.Hour})
	defer f.Close()
	f.Apply(st)
	for deadline := time.Now().Add(5 * time.Second); syncErrors(f) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("after 5 s: no sync error counted")
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := syncErrors(f); n != 1 {
		t.Errorf("%v sync errors after one attempt, want 1", n)
	}

	retrying := New(Options{Node: winner, NetNS: -1, Resync: 50 * time.Millisecond})
	defer retrying.Close()
	retrying.Apply(st)
	for deadline := time.Now().Add(5 * time.Second); syncErrors(retrying) < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s of resyncs every 50 ms: %v sync errors, want each failed retry counted", syncErrors(retrying))
		}
	}

	snap := snapshot()
	snap.Services[0] = svc("web", []string{vip4, vip6}, viaProxy)
	idle := New(Options{Node: winner, NetNS: -1, Resync: 50 * time.Millisecond})
	defer idle.Close()
	idle.Apply(speaker.Compute(snap))
	time.Sleep(300 * time.Millisecond)
	if n := syncErrors(idle); n != 0 {
		t.Errorf("%v sync errors on a node with nothing to forward, want 0", n)
	}
}

// TestMetricsFollowTheNamingConventions lints every metric of the
// forwarding path's collector as `promtool check metrics` would. The drop
// counters are read from the kernel's table, which a unit test does not
// program: a sample of them is linted instead.
func TestMetricsFollowTheNamingConventions(t *testing.T) {
	f := New(Options{Node: "n1", NetNS: -1})
	defer f.Close()
	metricstest.Lint(t, f.Collector(), prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, 0, "default/web"))
}
