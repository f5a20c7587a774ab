package chart_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/pharos-lb/pharos/controller/memberlistkey"
	pwebhook "github.com/pharos-lb/pharos/controller/webhook"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// TestInstallUpgrade installs the chart with helm into the test apiserver,
// plays the parts that need running pods (the post-install hooks' pools,
// the controller's certificate), upgrades, and checks what the design
// promises: the first upgrade adopts the pools that the install hook
// created, in place; the memberlist key, the webhook certificate and the
// CA bundle survive the upgrade; the ServiceAccounts get exactly the access
// they need; uninstall removes the adopted pools.
//
// No pod runs here (no kubelet), so the hooks, whose Jobs would never
// finish, are skipped (--no-hooks) and the pools the install hook would
// create are created from the chart's own rendering; the lab's e2e test
// runs the chart with its hooks. The webhook's failurePolicy
// is Ignore, as no controller serves it.
var installRuns atomic.Int32

func TestInstallUpgrade(t *testing.T) {
	ctx := context.Background()
	const (
		rel    = "edge" // objects are named edge-pharos-*
		prefix = "edge-pharos"
	)
	// A namespace per run: a deleted one stays Terminating here, where no
	// namespace controller runs.
	ns := fmt.Sprintf("pharos-install-%d", installRuns.Add(1))
	user, err := env.AddUser(envtest.User{Name: "helm-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	kc := []string{"KUBECONFIG=" + kcPath}
	values := []string{
		"--set", "pools[0].name=install-test", "--set", "pools[0].addresses[0]=198.18.200.0/28",
		"--set", "webhook.failurePolicy=Ignore",
	}

	chart := chartDir

	notes, err := runHelm(t, kc, append([]string{"install", rel, chart, "-n", ns, "--create-namespace", "--no-hooks"}, values...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = runHelm(t, kc, "uninstall", rel, "-n", ns, "--no-hooks")
		_ = k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
	for _, want := range []string{"kubectl -n " + ns + " get pods", "kubectl get ipaddresspools", "install-test", "type: LoadBalancer", "--disable=servicelb"} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, notes)
		}
	}

	// The post-install hooks' pools, as Helm would create them.
	hooks, err := runHelm(t, nil, append([]string{"template", rel, chartDir, "-n", ns, "--kube-version", kubeVersion, "--show-only", "templates/pools.yaml"}, values...)...)
	if err != nil {
		t.Fatal(err)
	}
	hookObjs, err := decodeYAML(hooks)
	if err != nil {
		t.Fatal(err)
	}
	if len(hookObjs) != 2 {
		t.Fatalf("templates/pools.yaml renders %d objects, want a pool and its L2Advertisement", len(hookObjs))
	}
	uids := map[string]types.UID{}
	for _, o := range hookObjs {
		if o.GetAnnotations()["helm.sh/hook"] != "post-install" {
			t.Fatalf("%s %s is not a post-install hook on install", o.GetKind(), o.GetName())
		}
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("creating hook %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		uids[o.GetKind()] = o.GetUID()
	}

	// What the controller does at start, with its own code: generate the
	// memberlist key and the webhook certificate into the Secrets the chart
	// created empty, and inject the CA bundle.
	keeper := &memberlistkey.Keeper{Secret: types.NamespacedName{Namespace: ns, Name: prefix + "-memberlist"}, Reader: k8s, Writer: k8s}
	if err := keeper.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	certs := pwebhook.NewCertManager(k8s, k8s, pwebhook.CertOptions{
		Namespace: ns, SecretName: prefix + "-webhook-cert", ServiceName: prefix + "-webhook", ConfigurationName: prefix + "-webhook",
	})
	if err := certs.Sync(ctx); err != nil {
		t.Fatalf("the controller's certificate manager with the chart's objects and names: %v", err)
	}
	cert := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: prefix + "-webhook-cert"}, cert); err != nil {
		t.Fatal(err)
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: prefix + "-webhook"}, vwc); err != nil {
		t.Fatal(err)
	}
	for _, w := range vwc.Webhooks {
		if !bytes.Contains(w.ClientConfig.CABundle, []byte("BEGIN CERTIFICATE")) {
			t.Fatalf("webhook %s got no CA bundle", w.Name)
		}
	}
	memberlist := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: prefix + "-memberlist"}, memberlist); err != nil {
		t.Fatal(err)
	}
	key := memberlist.Data["key"]
	if k, err := speakerlist.ParseKey(key); err != nil || len(k) != 32 {
		t.Fatalf("memberlist key: %d bytes, %v", len(k), err)
	}

	// The first upgrade renders the pools as ordinary resources.
	if _, err := runHelm(t, kc, append([]string{"upgrade", rel, chart, "-n", ns, "--no-hooks"}, values...)...); err != nil {
		t.Fatalf("the upgrade did not adopt the install hook's pools: %v", err)
	}
	for _, o := range hookObjs {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(o.GroupVersionKind())
		if err := k8s.Get(ctx, client.ObjectKey{Name: o.GetName()}, got); err != nil {
			t.Fatal(err)
		}
		if got.GetUID() != uids[o.GetKind()] {
			t.Errorf("the upgrade replaced %s %s (new UID): its addresses could move", o.GetKind(), o.GetName())
		}
		// Helm adopts an existing object by patching it from the rendered
		// manifest to itself, so the hook annotations stay on the object;
		// Helm reads hooks from manifests only, and ignores them there.
		if a := got.GetAnnotations(); a["meta.helm.sh/release-name"] != rel || a["meta.helm.sh/release-namespace"] != ns {
			t.Errorf("after the upgrade, %s %s has annotations %v", o.GetKind(), o.GetName(), a)
		}
	}
	manifest, err := runHelm(t, kc, "get", "manifest", rel, "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(manifest, "kind: IPAddressPool") || !strings.Contains(manifest, "name: install-test") {
		t.Error("after the upgrade, the release does not own the pool")
	}
	certBefore := cert.Data
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(cert), cert); err != nil || !reflect.DeepEqual(cert.Data, certBefore) {
		t.Errorf("the upgrade changed the webhook certificate Secret (err %v)", err)
	}
	bundleBefore := vwc.Webhooks[0].ClientConfig.CABundle
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(vwc), vwc); err != nil {
		t.Fatal(err)
	}
	for _, w := range vwc.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, bundleBefore) {
			t.Errorf("the upgrade dropped webhook %s's CA bundle", w.Name)
		}
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(memberlist), memberlist); err != nil || !bytes.Equal(memberlist.Data["key"], key) {
		t.Errorf("the upgrade changed the memberlist key (err %v)", err)
	}

	// Access of the ServiceAccounts, as the apiserver's RBAC decides it.
	controller := "system:serviceaccount:" + ns + ":" + prefix + "-controller"
	speaker := "system:serviceaccount:" + ns + ":" + prefix + "-speaker"
	check := "system:serviceaccount:" + ns + ":" + prefix + "-webhook-check"
	for _, c := range []struct {
		user string
		attr authorizationv1.ResourceAttributes
		want bool
	}{
		{speaker, authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: ns, Name: prefix + "-memberlist"}, true},
		{speaker, authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: ns, Name: prefix + "-webhook-cert"}, false},
		{speaker, authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: ns}, false},
		{speaker, authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: "default", Name: prefix + "-memberlist"}, false},
		{speaker, authorizationv1.ResourceAttributes{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices"}, true},
		{speaker, authorizationv1.ResourceAttributes{Verb: "patch", Resource: "services", Subresource: "status", Namespace: "default"}, true},
		{speaker, authorizationv1.ResourceAttributes{Verb: "update", Resource: "services", Subresource: "status", Namespace: "default"}, false},
		{controller, authorizationv1.ResourceAttributes{Verb: "update", Resource: "secrets", Namespace: ns, Name: prefix + "-webhook-cert"}, true},
		{controller, authorizationv1.ResourceAttributes{Verb: "update", Resource: "secrets", Namespace: ns, Name: prefix + "-memberlist"}, true},
		{controller, authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: ns, Name: "some-other-secret"}, false},
		{controller, authorizationv1.ResourceAttributes{Verb: "update", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: prefix + "-webhook"}, true},
		{controller, authorizationv1.ResourceAttributes{Verb: "update", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "another"}, false},
		{controller, authorizationv1.ResourceAttributes{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: ns}, true},
		{controller, authorizationv1.ResourceAttributes{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: "default"}, false},
		{controller, authorizationv1.ResourceAttributes{Verb: "watch", Group: "apps", Resource: "daemonsets", Namespace: "kube-system"}, true},
		{controller, authorizationv1.ResourceAttributes{Verb: "watch", Group: "apps", Resource: "daemonsets", Namespace: "default"}, false},
		{controller, authorizationv1.ResourceAttributes{Verb: "update", Group: "pharos.io", Resource: "ipaddresspools", Subresource: "status"}, true},
		{controller, authorizationv1.ResourceAttributes{Verb: "create", Group: "pharos.io", Resource: "ipaddresspools"}, false},
		{controller, authorizationv1.ResourceAttributes{Verb: "update", Group: "pharos.io", Resource: "bgppeers", Subresource: "status"}, true},
		{controller, authorizationv1.ResourceAttributes{Verb: "update", Group: "pharos.io", Resource: "bgpadvertisements", Subresource: "status"}, true},
		{controller, authorizationv1.ResourceAttributes{Verb: "watch", Group: "pharos.io", Resource: "bfdprofiles"}, true},
		{controller, authorizationv1.ResourceAttributes{Verb: "list", Group: "pharos.io", Resource: "communities"}, true},
		{controller, authorizationv1.ResourceAttributes{Verb: "update", Group: "pharos.io", Resource: "bgppeers"}, false},
		{controller, authorizationv1.ResourceAttributes{Verb: "delete", Group: "pharos.io", Resource: "bfdprofiles"}, false},
		{controller, authorizationv1.ResourceAttributes{Verb: "get", Group: "pharos.io", Resource: "bgpnodestatuses"}, false},
		// The webhook check's account exists only while its hook runs.
		{check, authorizationv1.ResourceAttributes{Verb: "create", Group: "pharos.io", Resource: "ipaddresspools"}, false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: c.user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			ResourceAttributes: &c.attr,
		}}
		if err := k8s.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != c.want {
			t.Errorf("%s may %s %s/%s %s/%s: %v, want %v", c.user[strings.LastIndex(c.user, ":")+1:], c.attr.Verb,
				c.attr.Resource, c.attr.Subresource, c.attr.Namespace, c.attr.Name, sar.Status.Allowed, c.want)
		}
	}

	// Helm itself keeps the pools of values (the chart's pre-delete hook,
	// skipped here, deletes them; the lab's e2e test runs it): a rollback
	// to the install revision, whose manifest lacks them, must not delete
	// them behind the Services' backs.
	if _, err := runHelm(t, kc, "uninstall", rel, "-n", ns, "--no-hooks"); err != nil {
		t.Fatal(err)
	}
	for _, o := range hookObjs {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(o.GroupVersionKind())
		if err := k8s.Get(ctx, client.ObjectKey{Name: o.GetName()}, got); err != nil {
			t.Errorf("after uninstall without hooks, %s %s: %v; Helm must keep it", o.GetKind(), o.GetName(), err)
			continue
		}
		_ = k8s.Delete(ctx, got)
	}
}
