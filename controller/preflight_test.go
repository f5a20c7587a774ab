package main

import (
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/pharos-lb/pharos/internal/kubecheck"
)

// generatedRoles reads config/rbac/role.yaml, which controller-gen writes
// from the kubebuilder:rbac markers of controller/**.
func generatedRoles(t *testing.T) (cluster []rbacv1.PolicyRule, byNamespace map[string][]rbacv1.PolicyRule) {
	t.Helper()
	f, err := os.Open("../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byNamespace = map[string][]rbacv1.PolicyRule{}
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		var r rbacv1.Role // a ClusterRole decodes the same, without a namespace
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		switch r.Kind {
		case "ClusterRole":
			cluster = append(cluster, r.Rules...)
		case "Role":
			byNamespace[r.Namespace] = append(byNamespace[r.Namespace], r.Rules...)
		}
	}
	if len(cluster) == 0 {
		t.Fatal("config/rbac/role.yaml has no ClusterRole: run make generate")
	}
	return cluster, byNamespace
}

func ruleAllows(rules []rbacv1.PolicyRule, p kubecheck.Permission) bool {
	res := p.Resource
	if p.Subresource != "" {
		res += "/" + p.Subresource
	}
	for _, r := range rules {
		if slices.Contains(r.APIGroups, p.Group) && slices.Contains(r.Resources, res) && slices.Contains(r.Verbs, p.Verb) &&
			(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, p.Name)) {
			return true
		}
	}
	return false
}

// TestPreflightMatchesMarkers checks that what preflight requires, the
// markers grant (or the controller would refuse to start under the RBAC
// the chart and config/rbac give it), and that every pharos.io permission
// the markers declare is checked by preflight (a new CRD the controller
// reads gets its preflight entry).
func TestPreflightMatchesMarkers(t *testing.T) {
	const ns = "pharos-system" // the markers' namespace= and the default --namespace
	perms := preflightPermissions(preflightOptions{
		leaderElect: true, leaseNamespace: ns, leaseName: "pharos-controller", memberlistSecret: "pharos-memberlist",
		webhook: true, namespace: ns, secret: "pharos-webhook-cert", configuration: "pharos-webhook",
	})
	cluster, namespaced := generatedRoles(t)
	for _, p := range perms {
		if !ruleAllows(cluster, p) && (p.Namespace == "" || !ruleAllows(namespaced[p.Namespace], p)) {
			t.Errorf("preflight requires %s, which no kubebuilder:rbac marker of controller/** grants", p)
		}
	}
	for _, r := range cluster {
		if !slices.Contains(r.APIGroups, "pharos.io") {
			continue
		}
		for _, res := range r.Resources {
			resource, sub, _ := strings.Cut(res, "/")
			for _, verb := range r.Verbs {
				if verb == "get" {
					continue // served from the informers' cache, which list and watch fill
				}
				want := kubecheck.Permission{Verb: verb, Group: "pharos.io", Resource: resource, Subresource: sub}
				if !slices.ContainsFunc(perms, func(p kubecheck.Permission) bool {
					return p.Verb == want.Verb && p.Group == want.Group && p.Resource == want.Resource && p.Subresource == want.Subresource && p.Namespace == ""
				}) {
					t.Errorf("the markers grant %s, which preflight does not check", want)
				}
			}
		}
	}
}
