package l2announce

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descRequests = prometheus.NewDesc("pharos_l2_requests_total",
		"ARP requests and Neighbor Solicitations received, by interface, protocol and outcome (answered, ignored, malformed).",
		[]string{"interface", "protocol", "result"}, nil)
	descGratuitous = prometheus.NewDesc("pharos_l2_gratuitous_sent_total",
		"Gratuitous ARP and unsolicited Neighbor Advertisements sent on takeover, by interface.",
		[]string{"interface"}, nil)
	descSendErrors = prometheus.NewDesc("pharos_l2_send_errors_total",
		"Frames the kernel refused to send, by interface.", []string{"interface"}, nil)
	descReadErrors = prometheus.NewDesc("pharos_l2_read_errors_total",
		"Failed reads from the announcers' sockets, by interface.", []string{"interface"}, nil)
	descAnnounced = prometheus.NewDesc("pharos_l2_announced_addresses",
		"Addresses this node announces by layer 2 now, by interface and family.", []string{"interface", "family"}, nil)
	descFailed = prometheus.NewDesc("pharos_l2_announce_failures",
		"Addresses this node won but cannot announce now (its interface is missing or its sockets failed).", nil, nil)
)

// Collector exports the announcer's counters (layer2.Stats of every
// interface, closed ones included, so the totals never go down) and its
// current announcements.
func (l *Layer2) Collector() prometheus.Collector { return (*collector)(l) }

type collector Layer2

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descGratuitous, descSendErrors, descReadErrors, descAnnounced, descFailed} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	l := (*Layer2)(c)
	for name, s := range l.Stats() {
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{name}, labels...)...)
		}
		counter(descRequests, s.ARPAnswered, "arp", "answered")
		counter(descRequests, s.ARPIgnored, "arp", "ignored")
		counter(descRequests, s.ARPMalformed, "arp", "malformed")
		counter(descRequests, s.NDPAnswered, "ndp", "answered")
		counter(descRequests, s.NDPIgnored, "ndp", "ignored")
		counter(descRequests, s.NDPMalformed, "ndp", "malformed")
		counter(descGratuitous, s.GratuitousSent)
		counter(descSendErrors, s.SendErrors)
		counter(descReadErrors, s.ReadErrors)
	}
	type key struct{ iface, family string }
	counts := map[key]int{}
	for ip, iface := range l.Owned() {
		family := "ipv4"
		if ip.Is6() {
			family = "ipv6"
		}
		counts[key{iface, family}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descAnnounced, prometheus.GaugeValue, float64(n), k.iface, k.family)
	}
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.GaugeValue, float64(len(l.Failed())))
}
