package chart_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pharos-lb/pharos/internal/testenv"
)

// grant is one verb on one resource, cluster-wide (ns "") or in a
// namespace, on every object (names nil) or on the named ones.
type grant struct {
	group, resource, verb, ns string
	names                     []string
}

func (g grant) String() string {
	s := fmt.Sprintf("%s %s.%s", g.verb, g.resource, g.group)
	if g.group == "" {
		s = fmt.Sprintf("%s %s", g.verb, g.resource)
	}
	if g.ns != "" {
		s += " in " + g.ns
	} else {
		s += " cluster-wide"
	}
	if g.names != nil {
		s += fmt.Sprintf(" named %v", g.names)
	}
	return s
}

func expand(rules []rbacv1.PolicyRule, ns string) []grant {
	var out []grant
	for _, r := range rules {
		for _, group := range r.APIGroups {
			for _, res := range r.Resources {
				for _, verb := range r.Verbs {
					out = append(out, grant{group: group, resource: res, verb: verb, ns: ns, names: r.ResourceNames})
				}
			}
		}
	}
	return out
}

// covers says whether code-declared grant g allows everything chart grant
// c allows: same verb and resource, a scope at least as wide (a
// cluster-wide rule covers any namespace), and names at least as wide.
func covers(g, c grant) bool {
	if g.group != c.group || g.resource != c.resource || g.verb != c.verb {
		return false
	}
	if g.ns != "" && g.ns != c.ns {
		return false
	}
	if g.names == nil {
		return true
	}
	if c.names == nil {
		return false
	}
	for _, n := range c.names {
		if !slices.Contains(g.names, n) {
			return false
		}
	}
	return true
}

// grants says whether chart grant c grants code-declared grant g. What the
// code uses cluster-wide (its informers list every namespace) needs a
// ClusterRole; what it uses in one namespace (a marker with namespace=) may
// come from a Role there.
func grants(c, g grant) bool {
	if g.group != c.group || g.resource != c.resource || g.verb != c.verb {
		return false
	}
	if g.ns == "" {
		return c.ns == ""
	}
	return c.ns == "" || c.ns == g.ns
}

// generatedGrants reads the ClusterRoles and Roles that controller-gen
// writes from the kubebuilder:rbac markers into the YAML files of dir (not
// its subdirectories).
func generatedGrants(t *testing.T, dir string) []grant {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) == 0 {
		t.Fatalf("no generated RBAC in %s: run make generate", dir)
	}
	var out []grant
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeYAML(string(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, o := range objs {
			switch o.GetKind() {
			case "ClusterRole":
				out = append(out, expand(into[rbacv1.ClusterRole](t, o).Rules, "")...)
			case "Role":
				out = append(out, expand(into[rbacv1.Role](t, o).Rules, o.GetNamespace())...)
			}
		}
	}
	return out
}

// chartGrants returns what the rendered chart grants the ServiceAccount
// ns/name, through its ClusterRoleBindings and RoleBindings.
func chartGrants(t *testing.T, objs []*unstructured.Unstructured, ns, name string) []grant {
	t.Helper()
	bound := func(subjects []rbacv1.Subject) bool {
		for _, s := range subjects {
			if s.Kind == "ServiceAccount" && s.Namespace == ns && s.Name == name {
				return true
			}
		}
		return false
	}
	rulesOf := func(kind, ns, name string) []rbacv1.PolicyRule {
		for _, o := range objs {
			if o.GetKind() == kind && o.GetName() == name && o.GetNamespace() == ns {
				if kind == "ClusterRole" {
					return into[rbacv1.ClusterRole](t, o).Rules
				}
				return into[rbacv1.Role](t, o).Rules
			}
		}
		t.Fatalf("a binding refers to %s %s/%s, which the chart does not render", kind, ns, name)
		return nil
	}
	var out []grant
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRoleBinding":
			b := into[rbacv1.ClusterRoleBinding](t, o)
			if bound(b.Subjects) {
				out = append(out, expand(rulesOf("ClusterRole", "", b.RoleRef.Name), "")...)
			}
		case "RoleBinding":
			b := into[rbacv1.RoleBinding](t, o)
			if !bound(b.Subjects) {
				continue
			}
			if b.RoleRef.Kind == "ClusterRole" {
				out = append(out, expand(rulesOf("ClusterRole", "", b.RoleRef.Name), b.Namespace)...)
			} else {
				out = append(out, expand(rulesOf("Role", b.Namespace, b.RoleRef.Name), b.Namespace)...)
			}
		}
	}
	return out
}

// withheld are generated grants that the chart deliberately does not give,
// each with the reason.
var withheld = map[string]map[string]string{
	"controller": {
		"create secrets in pharos-system": "the chart creates the webhook's Secret itself (templates/webhook.yaml); " +
			"create cannot be limited to one name, so granting it would allow creating any Secret in the namespace",
	},
}

func withheldKey(g grant) string {
	return strings.TrimSuffix(g.String(), fmt.Sprintf(" named %v", g.names))
}

// TestRBACMatchesMarkers checks, for the controller's and the speaker's
// ServiceAccounts, that (a) every permission the chart grants is declared
// by a kubebuilder:rbac marker of that component's code (the chart may
// narrow it to the release namespace or to named objects), and (b) every
// permission the markers declare is granted by the chart (narrowed or not).
// The markers of namespaced permissions say namespace=pharos-system, the
// namespace the chart is rendered into here.
func TestRBACMatchesMarkers(t *testing.T) {
	objs := render(t, "--set", poolFlag)
	rbacDir := filepath.Join(testenv.RepoRoot(), "config", "rbac")
	for component, dir := range map[string]string{
		"controller": rbacDir,
		"speaker":    filepath.Join(rbacDir, "speaker"),
	} {
		t.Run(component, func(t *testing.T) {
			sa := release + "-" + component
			find(t, objs, "ServiceAccount", sa)
			gen := generatedGrants(t, dir)
			chart := chartGrants(t, objs, releaseNS, sa)
			if len(chart) == 0 {
				t.Fatalf("the chart grants ServiceAccount %s nothing", sa)
			}
			var extra, missing []string
			for _, c := range chart {
				if !slices.ContainsFunc(gen, func(g grant) bool { return covers(g, c) }) {
					extra = append(extra, c.String())
				}
			}
			for _, g := range gen {
				if _, ok := withheld[component][withheldKey(g)]; ok {
					continue
				}
				if !slices.ContainsFunc(chart, func(c grant) bool { return grants(c, g) }) {
					missing = append(missing, g.String())
				}
			}
			sort.Strings(extra)
			sort.Strings(missing)
			if len(extra) > 0 {
				t.Errorf("the chart grants %s permissions that no kubebuilder:rbac marker in %s/** declares (add the marker, or drop the rule from templates/rbac.yaml):\n  %s",
					sa, component, strings.Join(slices.Compact(extra), "\n  "))
			}
			if len(missing) > 0 {
				t.Errorf("the markers of %s/** declare permissions (%s) that the chart does not grant %s:\n  %s",
					component, dir, sa, strings.Join(slices.Compact(missing), "\n  "))
			}
		})
	}
}

// The webhook check's ServiceAccount may only create IPAddressPools, which
// it does with dryRun=All.
func TestWebhookCheckRBAC(t *testing.T) {
	objs := render(t, "--set", poolFlag)
	got := chartGrants(t, objs, releaseNS, release+"-webhook-check")
	want := []grant{{group: "pharos.io", resource: "ipaddresspools", verb: "create"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("webhook-check may %v, want %v", got, want)
	}
}
