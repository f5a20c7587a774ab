package heartbeat

import "github.com/prometheus/client_golang/prometheus"

var (
	descSent = prometheus.NewDesc("pharos_heartbeat_sent_total",
		"Fast heartbeats this speaker sent to the successors of the addresses it announces.", nil, nil)
	descReceived = prometheus.NewDesc("pharos_heartbeat_received_total",
		"Fast heartbeats this speaker accepted from the nodes it would take addresses over from.", nil, nil)
	descRejected = prometheus.NewDesc("pharos_heartbeat_rejected_total",
		"Datagrams on the heartbeat port refused: malformed, not authenticated by the cluster's key, replayed, or this node's own.", nil, nil)
	descProbes = prometheus.NewDesc("pharos_heartbeat_probes_total",
		"ARP/NDP probes of a silent peer's kernel on the LAN.", nil, nil)
	descDeaths = prometheus.NewDesc("pharos_heartbeat_peer_deaths_total",
		"Peers found dead: no heartbeat for the detection time and no answer from their kernel.", nil, nil)
	descRevivals = prometheus.NewDesc("pharos_heartbeat_peer_revivals_total",
		"Peers found dead that sent heartbeats again.", nil, nil)
	descDead = prometheus.NewDesc("pharos_heartbeat_dead_peers",
		"Peers this speaker currently holds dead that memberlist still lists.", nil, nil)
)

// Collector exports the heartbeat counters, read at scrape time.
func (h *Heartbeat) Collector() prometheus.Collector { return (*collector)(h) }

type collector Heartbeat

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSent, descReceived, descRejected, descProbes, descDeaths, descRevivals, descDead} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	h := (*Heartbeat)(c)
	s := &h.stats
	for _, m := range []struct {
		d *prometheus.Desc
		v uint64
	}{{descSent, s.sent.Load()}, {descReceived, s.received.Load()}, {descRejected, s.rejected.Load()},
		{descProbes, s.probes.Load()}, {descDeaths, s.deaths.Load()}, {descRevivals, s.revivals.Load()}} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
	}
	ch <- prometheus.MustNewConstMetric(descDead, prometheus.GaugeValue, float64(len(h.Dead())))
}
