package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Metrics ports of the controller and the speakers, as the chart has them.
const (
	ControllerMetricsPort = 7472
	SpeakerMetricsPort    = 7474
	prometheusPort        = 9090
)

// Scrape jobs of the lab's Prometheus: the names the chart's
// ServiceMonitors give them for the release "pharos", which the alerting
// rules (charts/pharos/files/alerts.yaml) select.
const (
	ControllerMetricsJob = "pharos-controller-metrics"
	SpeakerMetricsJob    = "pharos-speaker-metrics"
)

// ControllerMetricsAddr is where the lab's controller serves its metrics:
// the control-plane host's LAN address, so that the client namespace's
// Prometheus reaches it.
func (l *Lab) ControllerMetricsAddr() string {
	return net.JoinHostPort(l.Control.V4.String(), strconv.Itoa(ControllerMetricsPort))
}

// SpeakerMetricsAddr is where node n's speaker serves its metrics: the
// node's LAN address.
func (l *Lab) SpeakerMetricsAddr(n Node) string {
	return net.JoinHostPort(n.V4.String(), strconv.Itoa(SpeakerMetricsPort))
}

// prometheusName is the Prometheus component's name (its log is
// LogDir()/<name>.log).
func (l *Lab) prometheusName() string { return l.Client.Name + "-prometheus" }

// PrometheusURL is the base URL of the lab's Prometheus, reachable from
// the LAN hosts (Exec, HTTPGet in l.Client.Name).
func (l *Lab) PrometheusURL() string {
	return "http://" + net.JoinHostPort(l.Client.V4.String(), strconv.Itoa(prometheusPort))
}

// prometheusConfig scrapes the controller and every speaker each second and
// loads the chart's alerting rules.
func (l *Lab) prometheusConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
  - job_name: %s
    static_configs:
`, filepath.Join(l.RepoRoot, "charts", "pharos", "files", "alerts.yaml"), ControllerMetricsJob, l.ControllerMetricsAddr(), SpeakerMetricsJob)
	// lab_node, not node: pharos_speaker_announced_addresses has a node
	// label of its own.
	for _, n := range l.Nodes {
		fmt.Fprintf(&b, "      - targets: [%q]\n        labels: {lab_node: %q}\n", l.SpeakerMetricsAddr(n), n.Name)
	}
	return b.String()
}

// StartPrometheus starts Prometheus (Debian's package prometheus, or
// $PROMETHEUS) in the client namespace, scraping the controller and the
// speakers every second, with its configuration and data under the lab's
// directory; Down kills it with the rest. It waits until the server is
// ready, and does nothing if it already runs.
func (l *Lab) StartPrometheus(ctx context.Context) error {
	if l.Running(l.prometheusName()) {
		return nil
	}
	bin := os.Getenv("PROMETHEUS")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("prometheus"); err != nil {
			return fmt.Errorf("the lab's Prometheus needs the prometheus server (Debian package prometheus; hack/ci-deps.sh installs it), or $PROMETHEUS: %w", err)
		}
	}
	dir := filepath.Join(l.Dir, "prometheus")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(l.prometheusConfig()), 0o644); err != nil {
		return err
	}
	if err := l.Start(Process{Name: l.prometheusName(), Netns: l.Client.Name, Argv: []string{bin,
		"--config.file=" + config,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=1d",
		"--web.listen-address=" + net.JoinHostPort(l.Client.V4.String(), strconv.Itoa(prometheusPort)),
		"--log.level=warn",
	}}); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := l.HTTPGet(ctx, l.Client.Name, l.PrometheusURL()+"/-/ready")
		if err == nil && strings.Contains(out, "Ready") {
			return nil
		}
		if !l.Running(l.prometheusName()) {
			return fmt.Errorf("prometheus exited; see %s", filepath.Join(l.LogDir(), l.prometheusName()+".log"))
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("prometheus not ready within 30s: %w", err)
			}
			return fmt.Errorf("prometheus not ready within 30s: %s", strings.TrimSpace(out))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// StopPrometheus stops the lab's Prometheus, if it runs.
func (l *Lab) StopPrometheus() error {
	return l.Stop(l.prometheusName(), syscall.SIGTERM)
}

// Sample is one series of a Prometheus instant query's result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// PromQuery runs an instant PromQL query against the lab's Prometheus,
// from the client namespace.
func (l *Lab) PromQuery(ctx context.Context, query string) ([]Sample, error) {
	out, err := l.Exec(ctx, l.Client.Name, "curl", "-sS", "--max-time", "5", "-g",
		l.PrometheusURL()+"/api/v1/query?query="+url.QueryEscape(query))
	if err != nil {
		return nil, err
	}
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return nil, fmt.Errorf("query %q: %w: %s", query, err, out)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", query, resp.Error)
	}
	if resp.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q gave a %s, want a vector", query, resp.Data.ResultType)
	}
	samples := make([]Sample, 0, len(resp.Data.Result))
	for _, r := range resp.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %w", query, r.Value[1], err)
		}
		samples = append(samples, Sample{Labels: r.Metric, Value: v})
	}
	return samples, nil
}

// PromGet fetches a path of the lab's Prometheus API (/api/v1/rules, say)
// from the client namespace and decodes its JSON into v.
func (l *Lab) PromGet(ctx context.Context, path string, v any) error {
	out, err := l.Exec(ctx, l.Client.Name, "curl", "-sS", "--max-time", "5", "-g", l.PrometheusURL()+path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("%s: %w: %s", path, err, out)
	}
	return nil
}
