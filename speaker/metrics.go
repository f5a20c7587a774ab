package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

var descAnnouncedAddresses = prometheus.NewDesc("pharos_speaker_announced_addresses",
	"Addresses this node announces now, by protocol: layer2 (per interface, the addresses it answers ARP and NDP for) "+
		"and bgp (interface empty, the addresses its BGP routes carry, to every peer the advertisements name).",
	[]string{"node", "protocol", "interface"}, nil)

// announcedCollector exports pharos_speaker_announced_addresses from the
// announcers' state at scrape time: an interface that carries nothing has
// no series, and BGP always has one.
type announcedCollector Speaker

// announcedAddresses returns the speaker's announced-addresses collector.
func (s *Speaker) announcedAddresses() prometheus.Collector { return (*announcedCollector)(s) }

func (c *announcedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descAnnouncedAddresses }

func (c *announcedCollector) Collect(ch chan<- prometheus.Metric) {
	s := (*Speaker)(c)
	perIface := map[string]int{}
	for _, iface := range s.l2.Owned() {
		perIface[iface]++
	}
	for iface, n := range perIface {
		ch <- prometheus.MustNewConstMetric(descAnnouncedAddresses, prometheus.GaugeValue, float64(n), s.node, "layer2", iface)
	}
	ch <- prometheus.MustNewConstMetric(descAnnouncedAddresses, prometheus.GaugeValue, float64(s.bgp.Addresses()), s.node, "bgp", "")
}
