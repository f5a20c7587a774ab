package kubecheck_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/pharos-lb/pharos/internal/kubecheck"
	"github.com/pharos-lb/pharos/internal/testenv"
)

var env *envtest.Environment
var admin kubernetes.Interface

func TestMain(m *testing.M) {
	e, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "these tests need a real kube-apiserver:", err)
		os.Exit(1)
	}
	env = e
	admin = kubernetes.NewForConfigOrDie(cfg)
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// userClient returns a client authenticated as a user with no permissions
// beyond what every authenticated user has.
func userClient(t *testing.T, name string) kubernetes.Interface {
	t.Helper()
	u, err := env.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(u.Config())
}

var opts = kubecheck.Options{
	Component: "pharos-test",
	Resources: []kubecheck.Resource{
		{GroupVersion: "pharos.io/v1beta1", Resource: "ipaddresspools"},
		{GroupVersion: "pharos.io/v1beta1", Resource: "notyetreleaseds"},
		{GroupVersion: "nothere.io/v1", Resource: "widgets"},
	},
	CRDHint: "install the CRDs",
	Permissions: []kubecheck.Permission{
		{Verb: "list", Group: "pharos.io", Resource: "ipaddresspools", Why: "read the pools"},
		{Verb: "update", Resource: "services", Subresource: "status", Why: "write addresses"},
		{Verb: "get", Resource: "secrets", Namespace: "pharos-system", Name: "pharos-memberlist", Why: "read the key"},
	},
	RBACHint: "see the chart's RBAC",
}

func TestCheckNamesEveryMissingCRDAndPermission(t *testing.T) {
	err := kubecheck.Check(context.Background(), userClient(t, "nobody"), opts)
	if err == nil {
		t.Fatal("an unprivileged user without two CRDs passed the check")
	}
	msg := err.Error()
	for _, want := range []string{
		"pharos-test cannot start",
		"the CRD notyetreleaseds.pharos.io (pharos.io/v1beta1) is not installed; install the CRDs",
		"the CRD widgets.nothere.io (nothere.io/v1) is not installed",
		`"nobody" may not list ipaddresspools.pharos.io cluster-wide (needed to read the pools); see the chart's RBAC`,
		`"nobody" may not update services/status cluster-wide (needed to write addresses)`,
		`"nobody" may not get secrets named "pharos-memberlist" in namespace pharos-system (needed to read the key)`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "ipaddresspools.pharos.io (pharos.io/v1beta1) is not installed") {
		t.Errorf("an installed CRD reported missing:\n%s", msg)
	}
}

func TestCheckPassesWithTheRulesGranted(t *testing.T) {
	ctx := context.Background()
	cs := userClient(t, "granted")
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "kubecheck-granted"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"pharos.io"}, Resources: []string{"ipaddresspools"}, Verbs: []string{"list"}},
		{APIGroups: []string{""}, Resources: []string{"services/status"}, Verbs: []string{"update"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{"pharos-memberlist"}},
	}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "kubecheck-granted"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "granted"}}}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	o := opts
	o.Resources = opts.Resources[:1]
	if err := kubecheck.Check(ctx, cs, o); err != nil {
		t.Fatalf("check failed with every rule granted: %v", err)
	}
	// One rule short: only that one is reported.
	o.Permissions = append(o.Permissions, kubecheck.Permission{Verb: "watch", Group: "pharos.io", Resource: "ipaddresspools", Why: "follow the pools"})
	err := kubecheck.Check(ctx, cs, o)
	if err == nil || strings.Count(err.Error(), "may not") != 1 || !strings.Contains(err.Error(), "watch ipaddresspools.pharos.io") {
		t.Fatalf("with watch missing: %v", err)
	}
}
