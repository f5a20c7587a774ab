package heartbeat

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pharos-lb/pharos/internal/liveness"
	"github.com/pharos-lb/pharos/internal/metricstest"
)

// TestMetrics: the counters follow what the heartbeat saw, and every
// metric follows Prometheus's naming conventions. (The socket is bound on
// the loopback address and never used.)
func TestMetrics(t *testing.T) {
	h, err := New(Options{Node: "self", Key: key, BindAddr: netip.MustParseAddr("127.0.0.1"), Port: 0,
		Interval: 20 * time.Millisecond, Detection: liveness.Defaults(150*time.Millisecond, 20*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.sock.close()
	now := time.Now()
	h.SetPeers([]string{"a"}, nil, map[string]netip.Addr{"a": addrA})
	h.accept("a", 10, now)
	h.accept("a", 10, now) // replayed
	h.accept("a", 9, now)  // older
	// a falls silent; its probes go out and nobody answers them.
	h.sendProbe = func(string, netip.Addr, time.Time) bool { return true }
	for ms := 0; ms <= 300; ms += 5 {
		h.check(now.Add(time.Second + time.Duration(ms)*time.Millisecond))
	}
	want := `
# HELP pharos_heartbeat_dead_peers Peers this speaker currently holds dead that memberlist still lists.
# TYPE pharos_heartbeat_dead_peers gauge
pharos_heartbeat_dead_peers 1
# HELP pharos_heartbeat_peer_deaths_total Peers found dead: no heartbeat for the detection time and no answer from their kernel.
# TYPE pharos_heartbeat_peer_deaths_total counter
pharos_heartbeat_peer_deaths_total 1
# HELP pharos_heartbeat_received_total Fast heartbeats this speaker accepted from the nodes it would take addresses over from.
# TYPE pharos_heartbeat_received_total counter
pharos_heartbeat_received_total 1
# HELP pharos_heartbeat_rejected_total Datagrams on the heartbeat port refused: malformed, not authenticated by the cluster's key, replayed, or this node's own.
# TYPE pharos_heartbeat_rejected_total counter
pharos_heartbeat_rejected_total 2
`
	if err := testutil.CollectAndCompare(h.Collector(), strings.NewReader(want),
		"pharos_heartbeat_dead_peers", "pharos_heartbeat_peer_deaths_total", "pharos_heartbeat_received_total", "pharos_heartbeat_rejected_total"); err != nil {
		t.Error(err)
	}
	metricstest.Lint(t, h.Collector())
}
