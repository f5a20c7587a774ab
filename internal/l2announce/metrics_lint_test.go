package l2announce

import (
	"context"
	"testing"

	"github.com/pharos-lb/pharos/internal/layer2"
	"github.com/pharos-lb/pharos/internal/metricstest"
)

// TestMetricsFollowTheNamingConventions lints every metric of the
// layer-2 announcer's collector as `promtool check metrics` would, with an
// interface open and an address owned, so that each one has a series.
func TestMetricsFollowTheNamingConventions(t *testing.T) {
	l := New(Options{Node: "n1",
		LookupLink: func(string) (Link, error) { return Link{Index: 1}, nil },
		Open: func(context.Context, layer2.Options) (Interface, error) {
			return &recorded{stats: layer2.Stats{ARPAnswered: 1}}, nil
		}})
	defer l.Close()
	l.Apply(stateFor(t, "n1", "eth0", "198.18.9.0/24", nil, "198.18.9.10"))
	metricstest.Lint(t, l.Collector())
}
