package chart_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var (
	alertsFile    = filepath.Join(chartDir, "files", "alerts.yaml")
	dashboardFile = filepath.Join(chartDir, "files", "dashboard.json")
)

// ruleGroups reads files/alerts.yaml's groups as `helm template` renders
// them (YAML decoded into JSON types).
func ruleGroups(t *testing.T) []any {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(b)), 4096).Decode(&file); err != nil {
		t.Fatal(err)
	}
	groups, _ := file["groups"].([]any)
	if len(groups) == 0 {
		t.Fatalf("%s has no groups", alertsFile)
	}
	return groups
}

func allRules(groups []any) []map[string]any {
	var out []map[string]any
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			out = append(out, r.(map[string]any))
		}
	}
	return out
}

// TestPrometheusRuleIsTheFile: monitoring.prometheusRule.enabled renders
// files/alerts.yaml (which test/monitoring checks with promtool) unchanged
// for the release "pharos", whose jobs the file names; another release's
// rules select its own jobs; disabledAlerts and ruleLabels apply.
func TestPrometheusRuleIsTheFile(t *testing.T) {
	want := ruleGroups(t)
	for name, args := range map[string][]string{
		"monitoring": {"--set", "monitoring.prometheusRule.enabled=true"},
		// The former spelling still works.
		"prometheus": {"--set", "prometheus.prometheusRule.enabled=true"},
	} {
		rule := find(t, render(t, args...), "PrometheusRule", "pharos")
		if rule.GetAPIVersion() != "monitoring.coreos.com/v1" || rule.GetNamespace() != releaseNS {
			t.Errorf("%s: PrometheusRule %s in %q", name, rule.GetAPIVersion(), rule.GetNamespace())
		}
		got, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.MarshalIndent(got, "", "  ")
			wj, _ := json.MarshalIndent(want, "", "  ")
			t.Errorf("%s: the PrometheusRule's groups differ from files/alerts.yaml:\n%s\nwant\n%s", name, gj, wj)
		}
	}

	// Off by default (TestDefaults checks no PrometheusRule renders).

	// Release "edge": the jobs are edge-pharos-*-metrics, the names of
	// its metrics Services.
	objs, err := tryRenderRelease(t, "edge", "--set", "monitoring.prometheusRule.enabled=true", "--set", "monitoring.serviceMonitor.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	find(t, objs, "Service", "edge-pharos-controller-metrics")
	find(t, objs, "Service", "edge-pharos-speaker-metrics")
	jobs := map[string]bool{}
	for _, r := range allRules(mustGroups(t, find(t, objs, "PrometheusRule", "edge-pharos"))) {
		expr, _ := r["expr"].(string)
		if strings.Contains(expr, `job="pharos-`) {
			t.Errorf("release edge: %s selects the release pharos's job: %s", r["alert"], expr)
		}
		for _, j := range []string{"edge-pharos-controller-metrics", "edge-pharos-speaker-metrics"} {
			if strings.Contains(expr, `job="`+j+`"`) {
				jobs[j] = true
			}
		}
	}
	if len(jobs) != 2 {
		t.Errorf("release edge: the rules select jobs %v, want both metrics Services", jobs)
	}

	// disabledAlerts, ruleLabels, poolExhaustionThreshold.
	rules := allRules(mustGroups(t, find(t, render(t,
		"--set", "monitoring.prometheusRule.enabled=true",
		"--set", "monitoring.prometheusRule.disabledAlerts={PharosBFDDown,PharosBGPSessionDown}",
		"--set", "monitoring.prometheusRule.ruleLabels.team=network",
		"--set", "monitoring.prometheusRule.ruleLabels.severity=info",
		"--set", "monitoring.prometheusRule.poolExhaustionThreshold=0.8",
	), "PrometheusRule", "pharos")))
	if len(rules) != len(allRules(want))-2 {
		t.Errorf("disabling 2 alerts left %d of %d", len(rules), len(allRules(want)))
	}
	for _, r := range rules {
		labels, _ := r["labels"].(map[string]any)
		switch r["alert"] {
		case "PharosBFDDown", "PharosBGPSessionDown":
			t.Errorf("disabled alert %s rendered", r["alert"])
		case "PharosPoolNearlyExhausted":
			if expr, _ := r["expr"].(string); !strings.Contains(expr, "> 0.8") || strings.Contains(expr, "0.9") {
				t.Errorf("poolExhaustionThreshold=0.8: expr %q", expr)
			}
		}
		if labels["team"] != "network" || (labels["severity"] != "warning" && labels["severity"] != "critical") {
			t.Errorf("ruleLabels: %s has labels %v; want team network and its own severity", r["alert"], labels)
		}
	}
}

func mustGroups(t *testing.T, rule *unstructured.Unstructured) []any {
	t.Helper()
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	if len(groups) == 0 {
		t.Fatalf("PrometheusRule %s has no groups", rule.GetName())
	}
	return groups
}

// dashboardMetrics are the metrics the dashboard must chart (the catalogue
// of the controller's and speakers' metrics).
var dashboardMetrics = []string{
	"pharos_pool_addresses", "pharos_pool_addresses_in_use",
	"pharos_controller_allocations_total", "pharos_controller_allocation_refusals_total",
	"pharos_controller_pending_services",
	"pharos_speaker_announced_addresses",
	"pharos_l2_requests_total", "pharos_l2_responses_sent_total", "pharos_l2_gratuitous_sent_total",
	"pharos_l2_failover_duration_seconds_bucket",
	"pharos_memberlist_members", "pharos_memberlist_events_total",
	"pharos_bgp_session_state", "pharos_bgp_session_up", "pharos_bgp_advertised_prefixes", "pharos_bgp_bfd_up",
	"pharos_forwarding_sync_duration_seconds_bucket", "pharos_forwarding_sync_errors_total",
	"pharos_heartbeat_peer_deaths_total", "pharos_heartbeat_peer_revivals_total", "pharos_heartbeat_sent_total",
	"pharos_heartbeat_received_total", "pharos_heartbeat_rejected_total", "pharos_heartbeat_probes_total", "pharos_heartbeat_dead_peers",
}

// TestGrafanaDashboard: monitoring.grafanaDashboard.enabled renders
// files/dashboard.json, valid JSON that charts every metric of the
// catalogue, in a ConfigMap with the Grafana sidecar's label (configurable),
// which the apiserver accepts.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("files/dashboard.json: %v", err)
	}
	exprs := dashboardExprs(file)
	if len(exprs) < 20 {
		t.Errorf("the dashboard has only %d queries", len(exprs))
	}
	all := strings.Join(exprs, "\n")
	for _, m := range dashboardMetrics {
		if !strings.Contains(all, m) {
			t.Errorf("no dashboard panel charts %s", m)
		}
	}
	if file["uid"] == "" || file["title"] == "" {
		t.Errorf("dashboard uid %v title %v", file["uid"], file["title"])
	}

	for _, o := range render(t) {
		if _, ok := o.GetLabels()["grafana_dashboard"]; ok || o.GetName() == "pharos-dashboard" {
			t.Errorf("defaults render the dashboard %s/%s", o.GetKind(), o.GetName())
		}
	}

	objs := render(t, "--set", "monitoring.grafanaDashboard.enabled=true")
	cm := find(t, objs, "ConfigMap", "pharos-dashboard")
	if cm.GetNamespace() != releaseNS || cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap in %q with labels %v; want %s and grafana_dashboard: \"1\"", cm.GetNamespace(), cm.GetLabels(), releaseNS)
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	if len(data) != 1 {
		t.Fatalf("dashboard ConfigMap has keys %d, want one", len(data))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(data["pharos.json"]), &got); err != nil {
		t.Fatalf("the ConfigMap's pharos.json is not JSON: %v", err)
	}
	if !reflect.DeepEqual(got, file) {
		t.Error("the ConfigMap's pharos.json differs from files/dashboard.json")
	}
	if err := k8s.Create(context.Background(), cm.DeepCopy(), client.DryRunAll); err != nil {
		t.Errorf("dry-run create of the dashboard ConfigMap: %v", err)
	}

	// The sidecar's label and namespace, and the folder annotation.
	cm = find(t, render(t, "--set", "monitoring.grafanaDashboard.enabled=true",
		"--set", "monitoring.grafanaDashboard.labelKey=example.com/dashboard",
		"--set", "monitoring.grafanaDashboard.labelValue=yes",
		"--set", "monitoring.grafanaDashboard.namespace=monitoring",
		"--set", "monitoring.grafanaDashboard.annotations.grafana_folder=Network",
	), "ConfigMap", "pharos-dashboard")
	if cm.GetLabels()["example.com/dashboard"] != "yes" || cm.GetLabels()["grafana_dashboard"] != "" || cm.GetNamespace() != "monitoring" || cm.GetAnnotations()["grafana_folder"] != "Network" {
		t.Errorf("custom label, namespace and annotation: %s labels %v annotations %v", cm.GetNamespace(), cm.GetLabels(), cm.GetAnnotations())
	}
	if _, err := tryRender(t, "--set", "monitoring.grafanaDashboard.enabled=true", "--set", "monitoring.grafanaDashboard.labelKey="); err == nil {
		t.Error("an empty labelKey rendered")
	}
}

// dashboardExprs returns the PromQL of every panel, rows' included.
func dashboardExprs(d map[string]any) []string {
	var out []string
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			pm, _ := p.(map[string]any)
			targets, _ := pm["targets"].([]any)
			for _, tg := range targets {
				if e, _ := tg.(map[string]any)["expr"].(string); e != "" {
					out = append(out, e)
				}
			}
			sub, _ := pm["panels"].([]any)
			walk(sub)
		}
	}
	panels, _ := d["panels"].([]any)
	walk(panels)
	return out
}
