package bgpannounce

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descSessionUp = prometheus.NewDesc("pharos_bgp_session_up",
		"1 if this node's BGP session with the BGPPeer (named by peer) is Established, else 0.", []string{"peer"}, nil)
	descSessionState = prometheus.NewDesc("pharos_bgp_session_state",
		"1 for the current FSM state of this node's BGP session with the BGPPeer, 0 for the other states (idle, connect, active, opensent, openconfirm, established); "+
			"a BGPPeer this node cannot configure (see its BGPNodeStatus) has 0 for every state.", []string{"peer", "state"}, nil)
	descAdvertised = prometheus.NewDesc("pharos_bgp_advertised_prefixes",
		"Prefixes this node advertises to the BGPPeer now (GoBGP's count of advertised routes).", []string{"peer"}, nil)
	descBFDUp = prometheus.NewDesc("pharos_bgp_bfd_up",
		"1 if the BFD session watching this node's BGP session with the BGPPeer is Up, else 0; only for BGPPeers with a bfdProfile.", []string{"peer"}, nil)
)

// fsmStates are the values of pharos_bgp_session_state's state label.
var fsmStates = []string{"idle", "connect", "active", "opensent", "openconfirm", "established"}

// scrapeTimeout bounds the GoBGP query of one scrape.
const scrapeTimeout = 5 * time.Second

// Collector exports the sessions' state, read from the announcer and GoBGP
// at scrape time: a BGPPeer that is gone has no series.
func (b *BGP) Collector() prometheus.Collector { return (*collector)(b) }

type collector BGP

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessionUp, descSessionState, descAdvertised, descBFDUp} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	b := (*BGP)(c)
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	sessions := b.Sessions(ctx)
	b.mu.Lock()
	bfd := map[string]bool{}
	for name, ps := range b.peers {
		bfd[name] = ps.cfg.BFDProfile != ""
	}
	b.mu.Unlock()
	gauge := func(d *prometheus.Desc, v bool, labels ...string) {
		f := 0.0
		if v {
			f = 1
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, f, labels...)
	}
	for _, s := range sessions {
		gauge(descSessionUp, s.State == "Established", s.Peer)
		for _, st := range fsmStates {
			gauge(descSessionState, strings.ToLower(s.State) == st, s.Peer, st)
		}
		ch <- prometheus.MustNewConstMetric(descAdvertised, prometheus.GaugeValue, float64(s.PrefixesSent), s.Peer)
		if bfd[s.Peer] {
			gauge(descBFDUp, s.BFDState == "Up", s.Peer)
		}
	}
}
