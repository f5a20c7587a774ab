//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
)

// A pool of 4 addresses that only the Service "metrics" takes
// (autoAssign false), announced from every node.
const metricsApp = `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: metrics}
spec:
  addresses: ["198.18.104.1-198.18.104.4"]
  autoAssign: false
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: metrics}
spec:
  ipAddressPools: [metrics]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: metrics, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {run: metrics}}
  template:
    metadata: {labels: {run: metrics}}
    spec:
      containers: [{name: metrics, image: echo, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: metrics, namespace: default, annotations: {pharos.io/address-pool: metrics}}
spec:
  type: LoadBalancer
  selector: {run: metrics}
  ports: [{port: 80, protocol: TCP}]
`

const metricsPoolSize = 4

// metricsRefused asks for a pool that does not exist: the controller
// refuses it (NoMatchingPool) and counts the refusal.
const metricsRefused = `apiVersion: v1
kind: Service
metadata: {name: metrics-refused, namespace: default, annotations: {pharos.io/address-pool: metrics-no-such-pool}}
spec:
  type: LoadBalancer
  selector: {run: metrics}
  ports: [{port: 80, protocol: TCP}]
`

// arpingReplies reads how many replies iputils arping received.
var arpingReplies = regexp.MustCompile(`Received (\d+) response`)

// l2Announced finds each address, node and interfaces in an Announced
// condition's message ("IP from node N on IFACES (ARP|NDP)", joined by
// "; "), as internal/inspect reads it.
var l2Announced = regexp.MustCompile(`(?:^|; )(\S+) from node (\S+) on (\S*) \((?:ARP|NDP)\)`)

// TestPrometheusScrapesPharos runs Prometheus in the client namespace,
// scraping the controller and every speaker (test/lab/cluster/prometheus.go)
// with the chart's alerting rules, and checks, once a Service has an
// address of its own pool: every target is up, promtool check metrics finds
// no fault in the names of the pharos_ metrics each serves, and each metric
// family the lab exercises has the values the cluster's state implies (a
// refused Service, an arping of the address and the speakers' joins
// included). Each family is a subtest, so that one missing metric does not
// hide the others.
func TestPrometheusScrapesPharos(t *testing.T) {
	ctx := context.Background()
	if err := lab.StartPrometheus(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lab.StopPrometheus() })
	if err := lab.Apply(ctx, metricsApp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = lab.Kubectl(ctx, "delete", "--wait=false", "-n", "default", "svc/metrics", "deploy/metrics")
		_, _ = lab.Kubectl(ctx, "delete", "--wait=false", "l2advertisement/metrics", "ipaddresspool/metrics")
	})
	ip := loadBalancerIPs(t, "metrics")[0]
	expectBody(t, lab.Client.Name, "http://"+ip+"/", "pod=metrics-")
	var node string
	cluster.Eventually(t, 30*time.Second, func() (err error) { node, err = announcer(t, "metrics", ip); return err })
	t.Logf("%s is announced by %s", ip, node)

	// query waits until f accepts the query's samples.
	query := func(t *testing.T, q string, f func([]cluster.Sample) error) {
		t.Helper()
		cluster.Eventually(t, 30*time.Second, func() error {
			s, err := lab.PromQuery(ctx, q)
			if err != nil {
				return err
			}
			if err := f(s); err != nil {
				return fmt.Errorf("%s: %w (samples %v)", q, err, s)
			}
			return nil
		})
	}
	one := func(want func(float64) bool, what string) func([]cluster.Sample) error {
		return func(s []cluster.Sample) error {
			if len(s) != 1 {
				return fmt.Errorf("%d series, want 1", len(s))
			}
			if !want(s[0].Value) {
				return fmt.Errorf("value %v, want %s", s[0].Value, what)
			}
			return nil
		}
	}
	eq := func(v float64) func([]cluster.Sample) error {
		return one(func(x float64) bool { return x == v }, fmt.Sprint(v))
	}
	atLeast := func(v float64) func([]cluster.Sample) error {
		return one(func(x float64) bool { return x >= v }, fmt.Sprint(">= ", v))
	}
	// now is the sum of the query's samples now (0 for none): a counter's
	// value before the test moves it.
	now := func(t *testing.T, q string) float64 {
		t.Helper()
		var sum float64
		cluster.Eventually(t, 30*time.Second, func() error {
			s, err := lab.PromQuery(ctx, q)
			if err != nil {
				return err
			}
			sum = 0
			for _, x := range s {
				sum += x.Value
			}
			return nil
		})
		return sum
	}

	t.Run("targets up", func(t *testing.T) {
		query(t, `up`, func(s []cluster.Sample) error {
			jobs := map[string]int{}
			for _, x := range s {
				if x.Value != 1 {
					return fmt.Errorf("%s %s is down", x.Labels["job"], x.Labels["instance"])
				}
				jobs[x.Labels["job"]]++
			}
			if jobs[cluster.ControllerMetricsJob] != 1 || jobs[cluster.SpeakerMetricsJob] != len(lab.Nodes) {
				return fmt.Errorf("targets up by job %v, want 1 controller and %d speakers", jobs, len(lab.Nodes))
			}
			return nil
		})
	})
	t.Run("metric names (promtool check metrics)", func(t *testing.T) {
		// What the controller and each speaker serve, judged by
		// Prometheus's own linter: Pharos's metrics (pharos_*) pass it;
		// the libraries' are not Pharos's to rename.
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("no promtool (Debian package prometheus)")
		}
		targets := map[string]string{"controller": lab.ControllerMetricsAddr()}
		for _, n := range lab.Nodes {
			targets["speaker "+n.Name] = lab.SpeakerMetricsAddr(n)
		}
		for name, addr := range targets {
			var body string
			cluster.Eventually(t, 30*time.Second, func() (err error) {
				body, err = lab.HTTPGet(ctx, lab.Client.Name, "http://"+addr+"/metrics")
				if err == nil && !strings.Contains(body, "\npharos_") {
					err = fmt.Errorf("no pharos_ metric in %d bytes", len(body))
				}
				return err
			})
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = strings.NewReader(body)
			out, _ := cmd.CombinedOutput() // exit status 3 for the libraries' problems
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, "pharos_") {
					t.Errorf("%s (%s): %s", name, addr, line)
				}
			}
		}
	})
	t.Run("pool gauges", func(t *testing.T) {
		query(t, `max(pharos_pool_addresses{pool="metrics",family="IPv4"})`, eq(metricsPoolSize))
		query(t, `max(pharos_pool_addresses_in_use{pool="metrics",family="IPv4"})`, eq(1))
		// An IPv4-only pool has no IPv6 series.
		query(t, `pharos_pool_addresses{pool="metrics",family="IPv6"}`, func(s []cluster.Sample) error {
			if len(s) != 0 {
				return fmt.Errorf("an IPv4 pool has IPv6 series")
			}
			return nil
		})
	})
	t.Run("allocations", func(t *testing.T) {
		query(t, `sum(pharos_controller_allocations_total{pool="metrics"})`, one(func(v float64) bool { return v >= 1 }, ">= 1"))
	})
	t.Run("pending services", func(t *testing.T) {
		query(t, `max(pharos_controller_pending_services)`, eq(0))
	})
	t.Run("allocation refusals", func(t *testing.T) {
		const refusals = `sum(pharos_controller_allocation_refusals_total{reason="NoMatchingPool"})`
		const pending = `max(pharos_controller_pending_services)`
		before, pendingBefore := now(t, refusals), now(t, pending)
		if err := lab.Apply(ctx, metricsRefused); err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = lab.Kubectl(ctx, "delete", "--wait=false", "-n", "default", "svc/metrics-refused") }()
		cluster.Eventually(t, 30*time.Second, func() error {
			reason := lab.MustKubectl(t, "get", "svc", "metrics-refused", "-o", `jsonpath={.status.conditions[?(@.type=="pharos.io/IPAllocated")].reason}`)
			if reason != "NoMatchingPool" {
				return fmt.Errorf("IPAllocated reason %q, want NoMatchingPool", reason)
			}
			return nil
		})
		// Counted under its reason; and the Service is pending until it
		// is deleted.
		query(t, refusals, atLeast(before+1))
		query(t, pending, eq(pendingBefore+1))
		if _, err := lab.Kubectl(ctx, "delete", "-n", "default", "svc/metrics-refused"); err != nil {
			t.Fatal(err)
		}
		query(t, pending, eq(pendingBefore))
	})
	t.Run("announced addresses", func(t *testing.T) {
		// What the Services' Announced conditions say each node announces
		// by layer 2, per interface: here the Service metrics on node, and
		// whatever earlier tests left.
		want := l2AnnouncedByNode(t)
		if !hasNode(want, node) {
			t.Fatalf("the conditions do not name %s: %v", node, want)
		}
		query(t, `sum by (node, interface) (pharos_speaker_announced_addresses{protocol="layer2"})`, func(s []cluster.Sample) error {
			got := map[string]float64{}
			for _, x := range s {
				if x.Value != 0 {
					got[x.Labels["node"]+" "+x.Labels["interface"]] = x.Value
				}
			}
			if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want)) {
				return fmt.Errorf("announced by node and interface %v, the conditions say %v", got, want)
			}
			return nil
		})
		// The Service's node announces at least its address; alone in the
		// lab (-run TestPrometheus), exactly it.
		query(t, fmt.Sprintf(`sum(pharos_speaker_announced_addresses{protocol="layer2",node=%q})`, node), one(func(v float64) bool { return v >= 1 }, ">= 1"))
	})
	t.Run("memberlist members", func(t *testing.T) {
		query(t, `pharos_memberlist_members`, func(s []cluster.Sample) error {
			if len(s) != len(lab.Nodes) {
				return fmt.Errorf("%d speakers report members, want %d", len(s), len(lab.Nodes))
			}
			for _, x := range s {
				if x.Value != float64(len(lab.Nodes)) {
					return fmt.Errorf("speaker %s sees %v members, want %d", x.Labels["lab_node"], x.Value, len(lab.Nodes))
				}
			}
			return nil
		})
	})
	t.Run("memberlist joins", func(t *testing.T) {
		// Each speaker was told of every member's join, its own included.
		query(t, `pharos_memberlist_events_total{event="join"}`, func(s []cluster.Sample) error {
			if len(s) != len(lab.Nodes) {
				return fmt.Errorf("%d speakers report joins, want %d", len(s), len(lab.Nodes))
			}
			for _, x := range s {
				if x.Value < float64(len(lab.Nodes)) {
					return fmt.Errorf("speaker %s saw %v joins, want at least the %d members", x.Labels["lab_node"], x.Value, len(lab.Nodes))
				}
			}
			return nil
		})
	})
	t.Run("gratuitous announcements", func(t *testing.T) {
		query(t, fmt.Sprintf(`sum(pharos_l2_gratuitous_sent_total{lab_node=%q})`, node), one(func(v float64) bool { return v > 0 }, "> 0"))
	})
	t.Run("ARP requests and responses", func(t *testing.T) {
		// The client asks the LAN for the address with iputils arping:
		// the announcing node counts each request it answered, and each
		// reply sent, at least as many as arping received.
		requests := fmt.Sprintf(`sum(pharos_l2_requests_total{lab_node=%q,protocol="arp",family="IPv4",result="answered"})`, node)
		responses := fmt.Sprintf(`sum(pharos_l2_responses_sent_total{lab_node=%q,family="IPv4"})`, node)
		beforeReq, beforeResp := now(t, requests), now(t, responses)
		macs, out := lab.LANMACs(ctx, ip)
		m := arpingReplies.FindStringSubmatch(out)
		if len(macs) != 1 || m == nil || m[1] == "0" {
			t.Fatalf("arping %s: want replies from one MAC:\n%s", ip, out)
		}
		replies, _ := strconv.Atoi(m[1])
		query(t, requests, atLeast(beforeReq+float64(replies)))
		query(t, responses, atLeast(beforeResp+float64(replies)))
	})
	t.Run("alerting rules", func(t *testing.T) {
		// The chart's rules load and evaluate without errors against the
		// real metrics, and none fires.
		cluster.Eventually(t, 30*time.Second, func() error {
			var resp struct {
				Data struct {
					Groups []struct {
						Rules []struct {
							Name      string `json:"name"`
							Health    string `json:"health"`
							LastError string `json:"lastError"`
						} `json:"rules"`
					} `json:"groups"`
				} `json:"data"`
			}
			if err := lab.PromGet(ctx, "/api/v1/rules", &resp); err != nil {
				return err
			}
			n := 0
			for _, g := range resp.Data.Groups {
				for _, r := range g.Rules {
					n++
					if r.Health != "ok" {
						return fmt.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
					}
				}
			}
			if n < 10 {
				return fmt.Errorf("%d rules loaded", n)
			}
			return nil
		})
		query(t, `ALERTS{alertstate="firing"}`, func(s []cluster.Sample) error {
			var firing []string
			for _, x := range s {
				// TestL2ExcludeLabelAndSplitBrain puts a second station on
				// an address on purpose: that alert is right to fire when
				// the whole suite runs.
				if x.Labels["alertname"] == "PharosL2SplitBrain" {
					continue
				}
				firing = append(firing, x.Labels["alertname"])
			}
			if len(firing) > 0 {
				return fmt.Errorf("alerts firing: %v", firing)
			}
			return nil
		})
	})
}

// l2AnnouncedByNode counts, from every Service's pharos.io/Announced
// condition, the addresses announced by layer 2 per "node interface".
func l2AnnouncedByNode(t *testing.T) map[string]float64 {
	t.Helper()
	var list struct {
		Items []struct {
			Status struct {
				Conditions []struct {
					Type, Status, Message string
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(lab.MustKubectl(t, "get", "svc", "-A", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	// By address, not by Service: Services sharing an address each name
	// it, and a speaker counts it once.
	seen := map[string]bool{}
	want := map[string]float64{}
	for _, svc := range list.Items {
		for _, c := range svc.Status.Conditions {
			if c.Type != "pharos.io/Announced" || c.Status != "True" {
				continue
			}
			for _, m := range l2Announced.FindAllStringSubmatch(c.Message, -1) {
				for _, iface := range strings.Split(m[3], ",") {
					if key := m[1] + " " + m[2] + " " + iface; !seen[key] {
						seen[key] = true
						want[m[2]+" "+iface]++
					}
				}
			}
		}
	}
	return want
}

func hasNode(counts map[string]float64, node string) bool {
	for k := range counts {
		if strings.HasPrefix(k, node+" ") {
			return true
		}
	}
	return false
}

func sorted(m map[string]float64) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(out)
	return out
}
