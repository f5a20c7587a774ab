package bgpannounce

import (
	"net/netip"
	"testing"

	"github.com/pharos-lb/pharos/internal/metricstest"
	"github.com/pharos-lb/pharos/internal/speaker"
)

// TestMetricsFollowTheNamingConventions lints every metric of the BGP
// announcer's collector as `promtool check metrics` would, with a peer
// that has a BFD profile, so that each one has a series; the peer need
// not answer.
func TestMetricsFollowTheNamingConventions(t *testing.T) {
	b := New(Options{Node: "n1", Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	defer b.Close()
	silent := bgpPeer("silent", freePort(t), "fast")
	silent.Spec.PeerAddress = "127.0.0.2"
	b.Apply(speaker.Compute(bgpSnapshot(silent)))
	metricstest.Lint(t, b.Collector())
}
