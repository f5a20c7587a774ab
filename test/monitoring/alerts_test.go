// Package monitoring tests Pharos's alerting rules,
// charts/pharos/files/alerts.yaml, with Prometheus's promtool: the file
// parses (promtool check rules), and the unit tests of alerts_test.yaml
// (promtool test rules) show each alert firing for the series that should
// trigger it and staying quiet for those that should not.
//
// promtool comes from $PROMTOOL, else from PATH (Debian's package
// prometheus, which hack/ci-deps.sh installs). Without it the tests skip,
// unless PHAROS_REQUIRE_PROMTOOL is set, as in CI, where they fail.
package monitoring_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/pharos-lb/pharos/internal/testenv"
)

var (
	rulesFile = filepath.Join(testenv.RepoRoot(), "charts", "pharos", "files", "alerts.yaml")
	testsFile = filepath.Join(testenv.RepoRoot(), "test", "monitoring", "alerts_test.yaml")
)

func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("PHAROS_REQUIRE_PROMTOOL") != "" {
		t.Fatalf("PHAROS_REQUIRE_PROMTOOL is set and promtool is not on PATH: install the Debian package prometheus (hack/ci-deps.sh does) or set PROMTOOL")
	}
	t.Skip("promtool is not on PATH: install the Debian package prometheus (hack/ci-deps.sh does), or set PROMTOOL; PHAROS_REQUIRE_PROMTOOL=1 makes this a failure")
	return ""
}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out.String())
	}
	return out.String()
}

func TestCheckRules(t *testing.T) {
	out := run(t, promtool(t), "check", "rules", rulesFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules:\n%s", out)
	}
}

func TestRulesUnitTests(t *testing.T) {
	// promtool resolves rule_files against the test file's directory.
	out := run(t, promtool(t), "test", "rules", testsFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func decode(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096).Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestRulesConventions needs no promtool: every rule is an alert with a
// severity Alertmanager can route on and the two annotations, and
// alerts_test.yaml has a case where it fires and one where it does not.
func TestRulesConventions(t *testing.T) {
	var file struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	decode(t, rulesFile, &file)
	var alerts []string
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || !strings.HasPrefix(r.Alert, "Pharos") {
				t.Errorf("group %s: rule %q is not an alert named Pharos*", g.Name, r.Alert)
			}
			if slices.Contains(alerts, r.Alert) {
				t.Errorf("alert %s appears twice", r.Alert)
			}
			alerts = append(alerts, r.Alert)
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s has no %s annotation", r.Alert, a)
				}
			}
		}
	}
	if len(alerts) < 10 {
		t.Fatalf("only %d alerts in %s", len(alerts), rulesFile)
	}

	var tests struct {
		RuleFiles []string `json:"rule_files"`
		Tests     []struct {
			Name  string `json:"name"`
			Cases []struct {
				Alert string `json:"alertname"`
				Exp   []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	decode(t, testsFile, &tests)
	if len(tests.RuleFiles) != 1 || filepath.Clean(filepath.Join(filepath.Dir(testsFile), tests.RuleFiles[0])) != filepath.Clean(rulesFile) {
		t.Errorf("alerts_test.yaml tests %v, want %s", tests.RuleFiles, rulesFile)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, c := range tc.Cases {
			if !slices.Contains(alerts, c.Alert) {
				t.Errorf("test %q expects alert %s, which the rules lack", tc.Name, c.Alert)
			}
			if len(c.Exp) > 0 {
				fires[c.Alert] = true
			} else {
				quiet[c.Alert] = true
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("no test in alerts_test.yaml shows %s firing", a)
		}
		if !quiet[a] {
			t.Errorf("no test in alerts_test.yaml shows %s quiet", a)
		}
	}
}
