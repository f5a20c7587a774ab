package l2announce

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descRequests = prometheus.NewDesc("pharos_l2_requests_total",
		"ARP and NDP frames that reached the speaker, by interface, protocol (arp, ndp), family (IPv4 for arp, IPv6 for ndp) and outcome: answered; ignored (passed by the socket's kernel filter but needing no answer, such as another station's reply for an address being probed, or a request for an address of the filter's last 32 bits that is not ours); malformed. Requests for addresses this node does not announce are dropped in the kernel and not counted.",
		[]string{"interface", "protocol", "family", "result"}, nil)
	descResponses = prometheus.NewDesc("pharos_l2_responses_sent_total",
		"ARP replies (IPv4) and Neighbor Advertisements (IPv6) sent in answer to requests for addresses this node announces, by family; gratuitous ones are in pharos_l2_gratuitous_sent_total.",
		[]string{"family"}, nil)
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
	for _, d := range []*prometheus.Desc{descRequests, descResponses, descGratuitous, descSendErrors, descReadErrors, descAnnounced, descFailed} {
		ch <- d
	}
	c.failover.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	l := (*Layer2)(c)
	var arpAnswered, ndpAnswered uint64
	for name, s := range l.Stats() {
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{name}, labels...)...)
		}
		counter(descRequests, s.ARPAnswered, "arp", "IPv4", "answered")
		counter(descRequests, s.ARPIgnored, "arp", "IPv4", "ignored")
		counter(descRequests, s.ARPMalformed, "arp", "IPv4", "malformed")
		counter(descRequests, s.NDPAnswered, "ndp", "IPv6", "answered")
		counter(descRequests, s.NDPIgnored, "ndp", "IPv6", "ignored")
		counter(descRequests, s.NDPMalformed, "ndp", "IPv6", "malformed")
		arpAnswered += s.ARPAnswered
		ndpAnswered += s.NDPAnswered
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
	// Answered counts only the answers the kernel took.
	ch <- prometheus.MustNewConstMetric(descResponses, prometheus.CounterValue, float64(arpAnswered), "IPv4")
	ch <- prometheus.MustNewConstMetric(descResponses, prometheus.CounterValue, float64(ndpAnswered), "IPv6")
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.GaugeValue, float64(len(l.Failed())))
	c.failover.Collect(ch)
}

// newFailoverHistogram is pharos_l2_failover_duration_seconds.
func newFailoverHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pharos_l2_failover_duration_seconds",
		Help: "Layer-2 failovers measured by the new owner: from the moment this speaker received memberlist's leave or dead " +
			"notification for the member that claimed the address, to the moment it handed the address to its interface's " +
			"announcer, which sends the first gratuitous ARP or unsolicited Neighbor Advertisement at once. Detection of the " +
			"failure (memberlist's probes and suspicion) comes before the start; takeovers that follow no departure (a " +
			"draining speaker hands over before it leaves, a new address, a re-election) are not observed.",
		Buckets: []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10},
	})
}
