package speakerlist

import "github.com/prometheus/client_golang/prometheus"

var (
	descMembers = prometheus.NewDesc("pharos_memberlist_members",
		"Alive members of the speakers' memberlist cluster that this speaker sees, itself included.", nil, nil)
	descEvents = prometheus.NewDesc("pharos_memberlist_events_total",
		"Memberlist notifications this speaker received, by event: join (itself included, once at start), leave (a member left or was declared dead), update (a member's metadata changed).",
		[]string{"event"}, nil)
)

// Collector exports the membership as this node sees it, read at scrape
// time.
func (l *List) Collector() prometheus.Collector { return (*collector)(l) }

type collector List

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descMembers
	ch <- descEvents
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	l := (*List)(c)
	ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(len(l.Members())))
	for _, e := range []struct {
		name string
		n    uint64
	}{{"join", l.joins.Load()}, {"leave", l.leaves.Load()}, {"update", l.updates.Load()}} {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(e.n), e.name)
	}
}
