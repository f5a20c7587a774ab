package chart_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/pharos-lb/pharos/internal/testenv"
)

const poolFlag = "pools[0].addresses[0]=192.168.1.240-192.168.1.250"

func TestLint(t *testing.T) {
	for _, args := range [][]string{
		{"lint", chartDir},
		{"lint", "--strict", chartDir, "-f", fullValues},
		{"lint", "--strict", chartDir, "--set", poolFlag},
	} {
		out, err := runHelm(t, nil, args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "0 chart(s) failed") {
			t.Errorf("helm %s:\n%s", strings.Join(args, " "), out)
		}
	}
	// The schema catches a misspelt key.
	if _, err := runHelm(t, nil, "lint", "--strict", chartDir, "--set", "pool[0].addresses[0]=198.18.0.1-198.18.0.2"); err == nil {
		t.Error("helm lint accepted the unknown value 'pool'")
	}
}

// The chart's CRDs are copies of config/crd/bases (make generate).
func TestCRDsAreCopies(t *testing.T) {
	want, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", "*.yaml"))
	have, _ := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if len(want) == 0 || len(want) != len(have) {
		t.Fatalf("charts/pharos/crds has %d files, config/crd/bases %d: run make generate", len(have), len(want))
	}
	for _, w := range want {
		a, _ := os.ReadFile(w)
		b, err := os.ReadFile(filepath.Join(chartDir, "crds", filepath.Base(w)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("charts/pharos/crds/%s differs from config/crd/bases: run make generate", filepath.Base(w))
		}
	}
}

func TestDefaults(t *testing.T) {
	objs := render(t)

	// Controller.
	d := into[appsv1.Deployment](t, find(t, objs, "Deployment", "pharos-controller"))
	if d.Namespace != releaseNS || d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("controller Deployment: namespace %q, replicas %v; want %q, 2", d.Namespace, d.Spec.Replicas, releaseNS)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != "pharos-controller" {
		t.Errorf("controller ServiceAccount %q", pod.ServiceAccountName)
	}
	c := pod.Containers[0]
	if c.Image != "ghcr.io/pharos-lb/pharos:0.1.0" || !reflect.DeepEqual(c.Command, []string{"/controller"}) {
		t.Errorf("controller image %q command %q", c.Image, c.Command)
	}
	wantArgs := []string{
		"--namespace=pharos-system",
		"--leader-election-id=pharos-controller",
		"--memberlist-secret=pharos-memberlist",
		"--forwarding=kube-proxy",
		"--servicelb-namespace=kube-system",
		"--webhook-port=9443",
		"--webhook-service=pharos-webhook",
		"--webhook-configuration=pharos-webhook",
		"--webhook-secret=pharos-webhook-cert",
		"--metrics-bind-address=:7472",
		"--health-probe-bind-address=:7473",
		"--zap-log-level=info",
	}
	if !reflect.DeepEqual(c.Args, wantArgs) {
		t.Errorf("controller args\n got %q\nwant %q", c.Args, wantArgs)
	}
	assertFieldRefEnv(t, c, "POD_NAMESPACE", "metadata.namespace")
	assertPorts(t, c, map[string]int32{"webhook": 9443, "metrics": 7472, "health": 7473})
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port != intstr.FromString("health") {
		t.Errorf("controller readinessProbe %+v", p)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port != intstr.FromString("health") {
		t.Errorf("controller livenessProbe %+v", p)
	}
	assertNonRoot(t, "controller", pod, c)
	aff := pod.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" ||
		len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
		t.Errorf("controller affinity: want one preferred anti-affinity term by hostname, got %+v", aff)
	}
	pdb := into[policyv1.PodDisruptionBudget](t, find(t, objs, "PodDisruptionBudget", "pharos-controller"))
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 ||
		!reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget spec %+v", pdb.Spec)
	}

	// Speaker.
	ds := into[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "pharos-speaker"))
	sp := ds.Spec.Template.Spec
	if !sp.HostNetwork || sp.DNSPolicy != corev1.DNSClusterFirstWithHostNet || sp.ServiceAccountName != "pharos-speaker" {
		t.Errorf("speaker: hostNetwork %v dnsPolicy %q serviceAccount %q", sp.HostNetwork, sp.DNSPolicy, sp.ServiceAccountName)
	}
	if sp.TerminationGracePeriodSeconds == nil || *sp.TerminationGracePeriodSeconds != 10 {
		t.Errorf("speaker terminationGracePeriodSeconds %v, want 10", sp.TerminationGracePeriodSeconds)
	}
	if u := ds.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil ||
		u.RollingUpdate.MaxUnavailable == nil || u.RollingUpdate.MaxUnavailable.IntValue() != 1 {
		t.Errorf("speaker updateStrategy %+v", u)
	}
	sc := sp.Containers[0]
	wantArgs = []string{
		"--memberlist-secret=pharos-system/pharos-memberlist",
		"--memberlist-port=7946",
		"--heartbeat-port=7947",
		"--failover-detection=200ms",
		"--metrics-bind-address=:7474",
		"--health-probe-bind-address=:7475",
		"--forwarding=kube-proxy",
		"--log-level=info",
	}
	if !reflect.DeepEqual(sc.Command, []string{"/speaker"}) || !reflect.DeepEqual(sc.Args, wantArgs) {
		t.Errorf("speaker command %q args\n got %q\nwant %q", sc.Command, sc.Args, wantArgs)
	}
	assertFieldRefEnv(t, sc, "NODE_NAME", "spec.nodeName")
	assertFieldRefEnv(t, sc, "POD_NAMESPACE", "metadata.namespace")
	// A rolling update must wait for each new speaker to be ready (joined,
	// announcing) and settled before it stops the next.
	if p := sc.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "health" {
		t.Errorf("speaker readinessProbe %+v, want GET /readyz on port health", p)
	}
	if ds.Spec.MinReadySeconds < 1 {
		t.Errorf("speaker minReadySeconds %d; want time for the members to see a new speaker", ds.Spec.MinReadySeconds)
	}
	s := sc.SecurityContext
	if s == nil || s.RunAsUser == nil || *s.RunAsUser != 0 || s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem ||
		s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation || s.Privileged != nil && *s.Privileged {
		t.Errorf("speaker securityContext %+v", s)
	} else if s.Capabilities == nil || !reflect.DeepEqual(s.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!reflect.DeepEqual(s.Capabilities.Add, []corev1.Capability{"NET_RAW"}) {
		t.Errorf("speaker capabilities %+v, want drop [ALL] add exactly [NET_RAW]", s.Capabilities)
	}
	if len(sp.Tolerations) != 0 {
		t.Errorf("speaker tolerations by default: %+v", sp.Tolerations)
	}
	if !reflect.DeepEqual(sp.NodeSelector, map[string]string{"kubernetes.io/os": "linux"}) {
		t.Errorf("speaker nodeSelector %v", sp.NodeSelector)
	}

	// The memberlist Secret is rendered empty: the controller generates the
	// key, so a render without the cluster (helm template, Argo CD) never
	// replaces it.
	ml := into[corev1.Secret](t, find(t, objs, "Secret", "pharos-memberlist"))
	if len(ml.Data) != 0 || len(ml.StringData) != 0 {
		t.Errorf("memberlist Secret rendered with data %v", ml.Data)
	}

	// The webhook.
	cert := find(t, objs, "Secret", "pharos-webhook-cert")
	if _, has := cert.Object["data"]; has {
		t.Error("the webhook-cert Secret renders data: an upgrade would wipe the controller's certificate")
	}
	if _, has := cert.Object["stringData"]; has {
		t.Error("the webhook-cert Secret renders stringData")
	}
	if cert.Object["type"] != "Opaque" {
		t.Errorf("webhook-cert type %v", cert.Object["type"])
	}
	svc := into[corev1.Service](t, find(t, objs, "Service", "pharos-webhook"))
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort != intstr.FromInt32(9443) || svc.Spec.Ports[0].Name != "webhook" {
		t.Errorf("webhook Service ports %+v", svc.Spec.Ports)
	}
	if !reflect.DeepEqual(svc.Spec.Selector, d.Spec.Selector.MatchLabels) {
		t.Errorf("webhook Service selects %v, the controller pods are %v", svc.Spec.Selector, d.Spec.Selector.MatchLabels)
	}
	assertWebhookConfiguration(t, objs, releaseNS, admissionregistrationv1.Fail)

	// Nothing optional. The values-config hooks are always there, so that
	// emptying `pools` deletes the pools made before.
	for _, kind := range []string{"Namespace", "IPAddressPool", "L2Advertisement", "ServiceMonitor", "PrometheusRule"} {
		if o := ofKind(objs, kind); len(o) != 0 {
			t.Errorf("defaults render a %s", kind)
		}
	}
	for _, o := range objs {
		if isValuesConfigHook(o) {
			continue
		}
		if o.GetKind() == "Job" {
			t.Errorf("defaults render Job %s", o.GetName())
		}
		if len(o.GetAnnotations()) != 0 {
			t.Errorf("%s/%s has annotations %v by default", o.GetKind(), o.GetName(), o.GetAnnotations())
		}
		assertNamespace(t, o, releaseNS)
		if l := o.GetLabels(); l["app.kubernetes.io/instance"] != release || l["app.kubernetes.io/managed-by"] != "Helm" || l["app.kubernetes.io/name"] != "pharos" {
			t.Errorf("%s/%s labels %v", o.GetKind(), o.GetName(), l)
		}
	}
}

func assertWebhookConfiguration(t *testing.T, objs []*unstructured.Unstructured, ns string, policy admissionregistrationv1.FailurePolicyType) {
	t.Helper()
	vwc := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", "pharos-webhook"))
	want := map[string]string{
		"ipaddresspools.pharos.io":    "ipaddresspool",
		"l2advertisements.pharos.io":  "l2advertisement",
		"bgppeers.pharos.io":          "bgppeer",
		"bgpadvertisements.pharos.io": "bgpadvertisement",
		"communities.pharos.io":       "community",
		"bfdprofiles.pharos.io":       "bfdprofile",
		// Deleting a pool in use: a warning only, never blocking.
		"ipaddresspools-delete.pharos.io": "ipaddresspool",
	}
	// A BFDProfile that a BGPPeer names may not be deleted.
	ops := func(name string) []admissionregistrationv1.OperationType {
		switch name {
		case "bfdprofiles.pharos.io":
			return []admissionregistrationv1.OperationType{"CREATE", "UPDATE", "DELETE"}
		case "ipaddresspools-delete.pharos.io":
			return []admissionregistrationv1.OperationType{"DELETE"}
		}
		return []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}
	}
	resource := func(name string) string {
		return strings.TrimSuffix(strings.TrimSuffix(name, ".pharos.io"), "-delete")
	}
	if len(vwc.Webhooks) != len(want) {
		t.Fatalf("%d webhooks, want %d", len(vwc.Webhooks), len(want))
	}
	for _, w := range vwc.Webhooks {
		kind, ok := want[w.Name]
		if !ok {
			t.Errorf("unexpected webhook %q", w.Name)
			continue
		}
		s := w.ClientConfig.Service
		if s == nil || s.Name != "pharos-webhook" || s.Namespace != ns || s.Path == nil || *s.Path != "/validate-pharos-io-v1beta1-"+kind ||
			s.Port == nil || *s.Port != 443 {
			t.Errorf("%s: clientConfig.service %+v", w.Name, s)
		}
		if len(w.ClientConfig.CABundle) != 0 || w.ClientConfig.URL != nil {
			t.Errorf("%s: caBundle or url rendered: the controller injects the CA", w.Name)
		}
		if len(w.Rules) != 1 || !reflect.DeepEqual(w.Rules[0].APIGroups, []string{"pharos.io"}) ||
			!reflect.DeepEqual(w.Rules[0].APIVersions, []string{"v1beta1"}) ||
			!reflect.DeepEqual(w.Rules[0].Resources, []string{resource(w.Name)}) ||
			!reflect.DeepEqual(w.Rules[0].Operations, ops(w.Name)) {
			t.Errorf("%s: rules %+v", w.Name, w.Rules)
		}
		wantPolicy, wantTimeout := policy, int32(10)
		if w.Name == "ipaddresspools-delete.pharos.io" {
			wantPolicy, wantTimeout = admissionregistrationv1.Ignore, 5
		}
		if w.FailurePolicy == nil || *w.FailurePolicy != wantPolicy || w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone ||
			!reflect.DeepEqual(w.AdmissionReviewVersions, []string{"v1"}) || w.TimeoutSeconds == nil || *w.TimeoutSeconds != wantTimeout ||
			w.MatchPolicy == nil || *w.MatchPolicy != admissionregistrationv1.Equivalent {
			t.Errorf("%s: failurePolicy %v sideEffects %v reviewVersions %v timeout %v matchPolicy %v",
				w.Name, w.FailurePolicy, w.SideEffects, w.AdmissionReviewVersions, w.TimeoutSeconds, w.MatchPolicy)
		}
	}
}

func assertNonRoot(t *testing.T, what string, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	p := pod.SecurityContext
	if p == nil || p.RunAsNonRoot == nil || !*p.RunAsNonRoot || p.RunAsUser == nil || *p.RunAsUser != 65532 ||
		p.RunAsGroup == nil || *p.RunAsGroup != 65532 || p.SeccompProfile == nil || p.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s pod securityContext %+v", what, p)
	}
	s := c.SecurityContext
	if s == nil || s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem || s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation ||
		s.Capabilities == nil || !reflect.DeepEqual(s.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(s.Capabilities.Add) != 0 {
		t.Errorf("%s container securityContext %+v", what, s)
	}
}

func assertFieldRefEnv(t *testing.T, c corev1.Container, name, path string) {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == name {
			if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path {
				t.Errorf("%s: env %s is %+v, want fieldRef %s", c.Name, name, e, path)
			}
			return
		}
	}
	t.Errorf("%s: no env %s", c.Name, name)
}

func assertPorts(t *testing.T, c corev1.Container, want map[string]int32) {
	t.Helper()
	have := map[string]int32{}
	for _, p := range c.Ports {
		have[p.Name] = p.ContainerPort
	}
	if !reflect.DeepEqual(have, want) {
		t.Errorf("%s ports %v, want %v", c.Name, have, want)
	}
}

// assertNamespace checks that a namespaced object is in ns (the K3s
// ServiceLB Role lives in kube-system) and that a cluster-scoped one has
// no namespace.
func assertNamespace(t *testing.T, o *unstructured.Unstructured, ns string) {
	t.Helper()
	switch o.GetKind() {
	case "Namespace", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration", "IPAddressPool", "L2Advertisement":
		if o.GetNamespace() != "" {
			t.Errorf("cluster-scoped %s/%s has namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	default:
		want := ns
		if strings.HasSuffix(o.GetName(), "-servicelb") {
			want = "kube-system"
		}
		if o.GetNamespace() != want {
			t.Errorf("%s/%s is in namespace %q, want %q", o.GetKind(), o.GetName(), o.GetNamespace(), want)
		}
	}
	for _, b := range []string{"RoleBinding", "ClusterRoleBinding"} {
		if o.GetKind() == b {
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			for _, s := range subjects {
				if m := s.(map[string]any); m["namespace"] != ns {
					t.Errorf("%s/%s subject %v not in %q", b, o.GetName(), m, ns)
				}
			}
		}
	}
}

// hookAnnotations are the annotations of helm's hooks.
var hookAnnotations = []string{"helm.sh/hook", "helm.sh/hook-weight", "helm.sh/hook-delete-policy"}

func TestPoolsOnInstall(t *testing.T) {
	objs := render(t, "--set", poolFlag,
		"--set", "pools[1].addresses[0]=2001:db8:100::/120", "--set", "pools[1].autoAssign=false", "--set", "pools[1].l2Advertisement=false",
		"--set", "pools[2].name=lan", "--set", "pools[2].addresses[0]=198.18.100.0/24", "--set", "pools[2].avoidBuggyIPs=true",
		"--set", "l2Advertisements[0].name=extra", "--set", "l2Advertisements[0].spec.interfaces[0]=eth0")

	wantPools := map[string]map[string]any{
		"default": {"addresses": []any{"192.168.1.240-192.168.1.250"}},
		"pool-1":  {"addresses": []any{"2001:db8:100::/120"}, "autoAssign": false},
		"lan":     {"addresses": []any{"198.18.100.0/24"}, "avoidBuggyIPs": true},
	}
	wantAdvs := map[string]map[string]any{
		"default": {"ipAddressPools": []any{"default"}},
		"lan":     {"ipAddressPools": []any{"lan"}},
		"extra":   {"interfaces": []any{"eth0"}},
	}
	for kind, want := range map[string]map[string]map[string]any{"IPAddressPool": wantPools, "L2Advertisement": wantAdvs} {
		got := ofKind(objs, kind)
		if len(got) != len(want) {
			t.Errorf("%d %ss rendered, want %d", len(got), kind, len(want))
		}
		for _, o := range got {
			spec, _, _ := unstructured.NestedMap(o.Object, "spec")
			if !reflect.DeepEqual(spec, want[o.GetName()]) {
				t.Errorf("%s %s spec %v, want %v", kind, o.GetName(), spec, want[o.GetName()])
			}
			// A post-install hook after the webhook check, which a later
			// upgrade adopts: Helm's ownership metadata, no delete policy.
			a := o.GetAnnotations()
			wantA := map[string]string{
				"helm.sh/resource-policy":        "keep",
				"helm.sh/hook":                   "post-install",
				"helm.sh/hook-weight":            "10",
				"meta.helm.sh/release-name":      release,
				"meta.helm.sh/release-namespace": releaseNS,
			}
			if !reflect.DeepEqual(a, wantA) {
				t.Errorf("%s %s annotations %v, want %v", kind, o.GetName(), a, wantA)
			}
			if o.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" {
				t.Errorf("%s %s lacks the label app.kubernetes.io/managed-by: Helm", kind, o.GetName())
			}
		}
	}

	// The webhook check runs first.
	check := map[string]string{"ServiceAccount": "-30", "ClusterRole": "-30", "ClusterRoleBinding": "-20", "Job": "-10"}
	for kind, weight := range check {
		o := find(t, objs, kind, "pharos-webhook-check")
		a := o.GetAnnotations()
		// The RBAC goes even when the check fails (no cluster-scoped
		// leftovers outside the release); a failed Job stays for its log.
		policy := "before-hook-creation,hook-succeeded,hook-failed"
		if kind == "Job" {
			policy = "before-hook-creation,hook-succeeded"
		}
		if a["helm.sh/hook"] != "post-install" || a["helm.sh/hook-weight"] != weight || a["helm.sh/hook-delete-policy"] != policy {
			t.Errorf("%s pharos-webhook-check annotations %v, want post-install, weight %s, delete %s", kind, a, weight, policy)
		}
	}
	job := into[batchv1.Job](t, find(t, objs, "Job", "pharos-webhook-check"))
	pod := job.Spec.Template.Spec
	if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 1 || pod.RestartPolicy != corev1.RestartPolicyNever ||
		pod.ServiceAccountName != "pharos-webhook-check" {
		t.Errorf("webhook-check Job: backoffLimit %v restartPolicy %q serviceAccount %q", job.Spec.BackoffLimit, pod.RestartPolicy, pod.ServiceAccountName)
	}
	c := pod.Containers[0]
	if c.Image != "ghcr.io/pharos-lb/pharos:0.1.0" || !reflect.DeepEqual(c.Command, []string{"/controller", "check-webhook", "--timeout=120s"}) {
		t.Errorf("webhook-check image %q command %q", c.Image, c.Command)
	}
	assertNonRoot(t, "webhook-check", pod, c)
	// Its controller pods must not be selected by the webhook-check's.
	if pod := job.Spec.Template.Labels; pod["app.kubernetes.io/component"] != "webhook-check" {
		t.Errorf("webhook-check pod labels %v", pod)
	}

	// Everything else is an ordinary resource.
	for _, o := range objs {
		if o.GetName() == "pharos-webhook-check" || o.GetKind() == "IPAddressPool" || o.GetKind() == "L2Advertisement" || isValuesConfigHook(o) {
			continue
		}
		if _, hook := o.GetAnnotations()["helm.sh/hook"]; hook {
			t.Errorf("%s/%s is a hook", o.GetKind(), o.GetName())
		}
	}
}

func TestPoolsOnUpgrade(t *testing.T) {
	objs := render(t, "--is-upgrade", "--set", poolFlag, "--set", "l2Advertisements[0].name=extra")
	if len(ofKind(objs, "IPAddressPool")) != 1 || len(ofKind(objs, "L2Advertisement")) != 2 {
		t.Errorf("upgrade renders %d pools and %d L2Advertisements, want 1 and 2", len(ofKind(objs, "IPAddressPool")), len(ofKind(objs, "L2Advertisement")))
	}
	for _, o := range objs {
		if isValuesConfigHook(o) {
			continue
		}
		for _, a := range hookAnnotations {
			if _, has := o.GetAnnotations()[a]; has {
				t.Errorf("upgrade: %s/%s has %s", o.GetKind(), o.GetName(), a)
			}
		}
		if strings.Contains(o.GetName(), "webhook-check") {
			t.Errorf("upgrade renders %s/%s", o.GetKind(), o.GetName())
		}
	}
}

func TestWebhookDisabled(t *testing.T) {
	objs := render(t, "--set", "webhook.enabled=false", "--set", poolFlag)
	if len(ofKind(objs, "ValidatingWebhookConfiguration")) != 0 || lookup(objs, "Job", "pharos-webhook-check") != nil {
		t.Errorf("webhook disabled, yet its configuration or check Job is rendered")
	}
	if lookup(objs, "Service", "pharos-webhook") != nil || lookup(objs, "Secret", "pharos-webhook-cert") != nil {
		t.Error("webhook disabled, yet its Service or Secret is rendered")
	}
	d := into[appsv1.Deployment](t, find(t, objs, "Deployment", "pharos-controller"))
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--webhook-port=0") {
		t.Errorf("controller args %q lack --webhook-port=0", c.Args)
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--webhook-") && a != "--webhook-port=0" {
			t.Errorf("webhook disabled, yet the controller gets %s", a)
		}
	}
	for _, p := range c.Ports {
		if p.Name == "webhook" {
			t.Error("webhook disabled, yet the controller exposes the webhook port")
		}
	}
	// Without the webhook, nothing waits: the pools are ordinary resources.
	for _, o := range objs {
		if isValuesConfigHook(o) {
			continue
		}
		if _, hook := o.GetAnnotations()["helm.sh/hook"]; hook {
			t.Errorf("webhook disabled: %s/%s is a hook", o.GetKind(), o.GetName())
		}
	}
	if len(ofKind(objs, "IPAddressPool")) != 1 {
		t.Error("webhook disabled: the pool is not rendered")
	}
	// And the controller gets no permission on certificates or webhooks.
	for _, o := range ofKind(objs, "Role") {
		if strings.Contains(o.GetName(), "controller") && strings.Contains(toJSON(t, o), "webhook-cert") {
			t.Errorf("webhook disabled, yet Role %s grants the certificate Secret", o.GetName())
		}
	}
	if strings.Contains(toJSON(t, find(t, objs, "ClusterRole", "pharos-controller")), "validatingwebhookconfigurations") {
		t.Error("webhook disabled, yet the controller may change webhook configurations")
	}
}

func TestNamespaceCreate(t *testing.T) {
	objs := render(t, "--set", "namespace.create=true", "--set", "namespace.name=lb-system", "--set", poolFlag)
	ns := find(t, objs, "Namespace", "lb-system")
	for _, mode := range []string{"enforce", "audit", "warn"} {
		if v := ns.GetLabels()["pod-security.kubernetes.io/"+mode]; v != "privileged" {
			t.Errorf("Namespace label pod-security.kubernetes.io/%s=%q, want privileged", mode, v)
		}
	}
	for _, o := range objs {
		assertNamespace(t, o, "lb-system")
	}
	d := into[appsv1.Deployment](t, find(t, objs, "Deployment", "pharos-controller"))
	if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--namespace=lb-system") {
		t.Errorf("controller args %q", d.Spec.Template.Spec.Containers[0].Args)
	}
	ds := into[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "pharos-speaker"))
	if !slices.Contains(ds.Spec.Template.Spec.Containers[0].Args, "--memberlist-secret=lb-system/pharos-memberlist") {
		t.Errorf("speaker args %q", ds.Spec.Template.Spec.Containers[0].Args)
	}
	assertWebhookConfiguration(t, objs, "lb-system", admissionregistrationv1.Fail)
	// Helm's release stays in the release namespace.
	if a := find(t, objs, "IPAddressPool", "default").GetAnnotations(); a["meta.helm.sh/release-namespace"] != releaseNS {
		t.Errorf("pool annotations %v: the release is in %s", a, releaseNS)
	}

	// The chart cannot create the release namespace.
	for _, args := range [][]string{
		{"--set", "namespace.create=true"},
		{"--set", "namespace.create=true", "--set", "namespace.name=" + releaseNS},
	} {
		_, err := tryRender(t, args...)
		if err == nil || !strings.Contains(err.Error(), "namespace.create=true needs namespace.name set to a namespace other than the release namespace") {
			t.Errorf("%v: want the chart's message, got %v", args, err)
		}
	}
	// namespace.name alone: an existing namespace, not created.
	objs = render(t, "--set", "namespace.name=lb-system")
	if len(ofKind(objs, "Namespace")) != 0 {
		t.Error("namespace.name without create renders a Namespace")
	}
	for _, o := range objs {
		assertNamespace(t, o, "lb-system")
	}
}

func TestTolerations(t *testing.T) {
	cp := []corev1.Toleration{
		{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: "node-role.kubernetes.io/master", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	}
	own := corev1.Toleration{Key: "example.com/dedicated", Operator: corev1.TolerationOpEqual, Value: "lb", Effect: corev1.TaintEffectNoSchedule}
	for _, tc := range []struct {
		args []string
		want []corev1.Toleration
	}{
		{[]string{"--set", "speaker.runOnControlPlane=true"}, cp},
		{[]string{"-f", fullValues}, append([]corev1.Toleration{own}, cp...)},
		{[]string{"--set", "speaker.tolerations[0].key=example.com/dedicated", "--set", "speaker.tolerations[0].operator=Equal",
			"--set", "speaker.tolerations[0].value=lb", "--set", "speaker.tolerations[0].effect=NoSchedule"}, []corev1.Toleration{own}},
	} {
		ds := into[appsv1.DaemonSet](t, find(t, render(t, tc.args...), "DaemonSet", "pharos-speaker"))
		if got := ds.Spec.Template.Spec.Tolerations; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: tolerations\n got %+v\nwant %+v", tc.args, got, tc.want)
		}
	}
	// The controller tolerates nothing by default.
	d := into[appsv1.Deployment](t, find(t, render(t, "--set", "speaker.runOnControlPlane=true"), "Deployment", "pharos-controller"))
	if len(d.Spec.Template.Spec.Tolerations) != 0 {
		t.Errorf("controller tolerations %+v", d.Spec.Template.Spec.Tolerations)
	}
}

func TestFullValues(t *testing.T) {
	objs := render(t, "-f", fullValues)
	d := into[appsv1.Deployment](t, find(t, objs, "Deployment", "pharos-controller"))
	args := d.Spec.Template.Spec.Containers[0].Args
	for _, a := range []string{"--lb-class=pharos.io/lb", "--zap-log-level=debug", "--workers=16"} {
		if !slices.Contains(args, a) {
			t.Errorf("controller args %q lack %s", args, a)
		}
	}
	if d.Spec.Template.Spec.PriorityClassName != "system-cluster-critical" {
		t.Errorf("controller priorityClassName %q", d.Spec.Template.Spec.PriorityClassName)
	}
	ds := into[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "pharos-speaker"))
	if want := map[string]string{"kubernetes.io/os": "linux", "example.com/lb": "true"}; !reflect.DeepEqual(ds.Spec.Template.Spec.NodeSelector, want) {
		t.Errorf("speaker nodeSelector %v, want %v", ds.Spec.Template.Spec.NodeSelector, want)
	}
	if !slices.Contains(ds.Spec.Template.Spec.Containers[0].Args, "--drain-timeout=5s") {
		t.Errorf("speaker args %q", ds.Spec.Template.Spec.Containers[0].Args)
	}
	// With a class, ServiceLB never touches Pharos's Services: no Role in
	// kube-system.
	for _, o := range objs {
		if o.GetNamespace() == "kube-system" {
			t.Errorf("with loadBalancerClass, %s/%s is rendered in kube-system", o.GetKind(), o.GetName())
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--servicelb-namespace") {
			t.Errorf("with loadBalancerClass, the controller gets %s", a)
		}
	}
}

func TestServiceLBDetection(t *testing.T) {
	// Default: a Role on DaemonSets in kube-system, K3s's lbNamespace.
	objs := render(t)
	role := into[rbacv1.Role](t, find(t, objs, "Role", "pharos-controller-servicelb"))
	want := []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"daemonsets"}, Verbs: []string{"list", "watch"}}}
	if role.Namespace != "kube-system" || !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("ServiceLB Role in %q: %+v", role.Namespace, role.Rules)
	}
	rb := into[rbacv1.RoleBinding](t, find(t, objs, "RoleBinding", "pharos-controller-servicelb"))
	if rb.Namespace != "kube-system" || rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Name != "pharos-controller" {
		t.Errorf("ServiceLB RoleBinding %+v", rb)
	}
	// Another namespace, or none (detection off).
	objs = render(t, "--set", "serviceLBNamespace=k3s-lb")
	if r := find(t, objs, "Role", "pharos-controller-servicelb"); r.GetNamespace() != "k3s-lb" {
		t.Errorf("ServiceLB Role in %q, want k3s-lb", r.GetNamespace())
	}
	d := into[appsv1.Deployment](t, find(t, objs, "Deployment", "pharos-controller"))
	if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--servicelb-namespace=k3s-lb") {
		t.Errorf("controller args %q", d.Spec.Template.Spec.Containers[0].Args)
	}
	objs = render(t, "--set", "serviceLBNamespace=")
	if lookup(objs, "Role", "pharos-controller-servicelb") != nil || lookup(objs, "RoleBinding", "pharos-controller-servicelb") != nil {
		t.Error("serviceLBNamespace empty, yet the ServiceLB Role is rendered")
	}
	d = into[appsv1.Deployment](t, find(t, objs, "Deployment", "pharos-controller"))
	if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--servicelb-namespace=") {
		t.Errorf("serviceLBNamespace empty: controller args %q lack --servicelb-namespace= (the controller's default is kube-system)", d.Spec.Template.Spec.Containers[0].Args)
	}
}

func TestMonitoring(t *testing.T) {
	objs := render(t, "--set", "prometheus.serviceMonitor.enabled=true", "--set", "prometheus.prometheusRule.enabled=true")
	cm := into[corev1.Service](t, find(t, objs, "Service", "pharos-controller-metrics"))
	if len(cm.Spec.Ports) != 1 || cm.Spec.Ports[0].Port != 7472 || cm.Spec.Ports[0].Name != "metrics" {
		t.Errorf("controller metrics Service ports %+v", cm.Spec.Ports)
	}
	sm := into[corev1.Service](t, find(t, objs, "Service", "pharos-speaker-metrics"))
	if sm.Spec.ClusterIP != corev1.ClusterIPNone || len(sm.Spec.Ports) != 1 || sm.Spec.Ports[0].Port != 7474 {
		t.Errorf("speaker metrics Service: clusterIP %q ports %+v; want headless on 7474", sm.Spec.ClusterIP, sm.Spec.Ports)
	}
	ds := into[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "pharos-speaker"))
	for k, v := range sm.Spec.Selector {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("speaker metrics Service selector %v does not select the speaker pods %v", sm.Spec.Selector, ds.Spec.Template.Labels)
		}
	}
	// Each ServiceMonitor selects its Service (the scrape job is named after
	// the Service, which the alerts use).
	for _, svc := range []*corev1.Service{cm, sm} {
		var found bool
		for _, mon := range ofKind(objs, "ServiceMonitor") {
			if mon.GetAPIVersion() != "monitoring.coreos.com/v1" {
				t.Errorf("ServiceMonitor apiVersion %s", mon.GetAPIVersion())
			}
			sel, _, _ := unstructured.NestedStringMap(mon.Object, "spec", "selector", "matchLabels")
			port, _ := endpointPort(mon)
			matches := len(sel) > 0
			for k, v := range sel {
				if svc.Labels[k] != v {
					matches = false
				}
			}
			if matches {
				found = true
				if port != "metrics" {
					t.Errorf("ServiceMonitor %s scrapes port %q", mon.GetName(), port)
				}
			}
		}
		if !found {
			t.Errorf("no ServiceMonitor selects Service %s (labels %v)", svc.Name, svc.Labels)
		}
	}

	alerts := alertsOf(find(t, objs, "PrometheusRule", "pharos"))
	for name, want := range map[string]struct {
		forDur string
		parts  []string
	}{
		"PharosPoolNearlyExhausted": {"10m", []string{"pharos_pool_addresses_in_use", "pharos_pool_addresses", "by (pool, family)", "> 0.9"}},
		"PharosSpeakerDown":         {"2m", []string{`up{job="pharos-speaker-metrics"} == 0`}},
		"PharosControllerDown":      {"", []string{`up{job="pharos-controller-metrics"}`}},
	} {
		a, ok := alerts[name]
		if !ok {
			t.Errorf("no alert %s; have %v", name, alerts)
			continue
		}
		expr, _ := a["expr"].(string)
		for _, p := range want.parts {
			if !strings.Contains(expr, p) {
				t.Errorf("%s expr %q lacks %q", name, expr, p)
			}
		}
		if want.forDur != "" && a["for"] != want.forDur {
			t.Errorf("%s for %v, want %s", name, a["for"], want.forDur)
		}
	}
	// The threshold is a value.
	rule := find(t, render(t, "--set", "prometheus.prometheusRule.enabled=true", "--set", "prometheus.prometheusRule.poolExhaustionThreshold=0.75"), "PrometheusRule", "pharos")
	if expr, _ := alertsOf(rule)["PharosPoolNearlyExhausted"]["expr"].(string); !strings.Contains(expr, "> 0.75") {
		t.Errorf("poolExhaustionThreshold=0.75 is not in the rule: %q", expr)
	}
}

// alertsOf returns a PrometheusRule's alerting rules by name.
func alertsOf(rule *unstructured.Unstructured) map[string]map[string]any {
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	alerts := map[string]map[string]any{}
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			m := r.(map[string]any)
			if name, ok := m["alert"].(string); ok {
				alerts[name] = m
			}
		}
	}
	return alerts
}

func toJSON(t *testing.T, o *unstructured.Unstructured) string {
	t.Helper()
	b, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func endpointPort(mon *unstructured.Unstructured) (string, bool) {
	eps, _, _ := unstructured.NestedSlice(mon.Object, "spec", "endpoints")
	if len(eps) != 1 {
		return "", false
	}
	p, ok := eps[0].(map[string]any)["port"].(string)
	return p, ok
}

func TestNames(t *testing.T) {
	for rel, prefix := range map[string]string{"pharos": "pharos", "pharos-lb": "pharos-lb", "edge": "edge-pharos"} {
		objs, err := tryRenderRelease(t, rel)
		if err != nil {
			t.Fatal(err)
		}
		find(t, objs, "Deployment", prefix+"-controller")
		find(t, objs, "DaemonSet", prefix+"-speaker")
		ds := into[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", prefix+"-speaker"))
		if !slices.Contains(ds.Spec.Template.Spec.Containers[0].Args, "--memberlist-secret=pharos-system/"+prefix+"-memberlist") {
			t.Errorf("release %s: speaker args %q", rel, ds.Spec.Template.Spec.Containers[0].Args)
		}
	}
	// One replica: no PodDisruptionBudget (it would block every drain).
	if objs := render(t, "--set", "controller.replicas=1"); len(ofKind(objs, "PodDisruptionBudget")) != 0 {
		t.Error("controller.replicas=1 renders a PodDisruptionBudget")
	}
}

// isValuesConfigHook reports whether o is one of the hooks that delete the
// pools and L2Advertisements of values (on uninstall, and those no longer
// in values after an upgrade or rollback).
func isValuesConfigHook(o *unstructured.Unstructured) bool {
	h := o.GetAnnotations()["helm.sh/hook"]
	return (o.GetName() == "pharos-uninstall" || o.GetName() == "pharos-values-prune") &&
		(strings.Contains(h, "pre-delete") || strings.Contains(h, "post-upgrade"))
}

func TestValuesConfigHooks(t *testing.T) {
	for _, args := range [][]string{
		{"--set", poolFlag, "--set", "pools[1].name=quiet", "--set", "pools[1].addresses[0]=198.18.101.0/24", "--set", "pools[1].l2Advertisement=false", "--set", "l2Advertisements[0].name=extra"},
		{"--is-upgrade", "--set", poolFlag},
		{"--set", "webhook.enabled=false", "--set", poolFlag},
		{}, // emptying pools must still delete the earlier ones
	} {
		objs := render(t, args...)
		job := into[batchv1.Job](t, find(t, objs, "Job", "pharos-uninstall"))
		if a := job.Annotations; a["helm.sh/hook"] != "pre-delete" || a["helm.sh/hook-delete-policy"] != "before-hook-creation,hook-succeeded" {
			t.Errorf("%v: uninstall Job annotations %v", args, a)
		}
		c := job.Spec.Template.Spec.Containers[0]
		sel := "--selector=app.kubernetes.io/instance=pharos,pharos.io/from-values=true"
		if !slices.Contains(c.Command, sel) || slices.ContainsFunc(c.Command, func(a string) bool { return strings.HasPrefix(a, "--keep") }) {
			t.Errorf("%v: uninstall Job command %q: want every object of the selector deleted", args, c.Command)
		}
		assertNonRoot(t, "uninstall", job.Spec.Template.Spec, c)

		prune := into[batchv1.Job](t, find(t, objs, "Job", "pharos-values-prune"))
		if a := prune.Annotations; a["helm.sh/hook"] != "post-upgrade,post-rollback" {
			t.Errorf("%v: prune Job annotations %v", args, a)
		}
		// It keeps exactly what values name now.
		var pools, advs []string
		for _, o := range ofKind(objs, "IPAddressPool") {
			pools = append(pools, o.GetName())
		}
		for _, o := range ofKind(objs, "L2Advertisement") {
			advs = append(advs, o.GetName())
		}
		pc := prune.Spec.Template.Spec.Containers[0].Command
		if !slices.Contains(pc, sel) || !slices.Contains(pc, "--keep-pools="+strings.Join(pools, ",")) || !slices.Contains(pc, "--keep-l2advertisements="+strings.Join(advs, ",")) {
			t.Errorf("%v: prune Job command %q; want the selector and keep lists %v and %v", args, pc, pools, advs)
		}

		role := into[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "pharos-uninstall"))
		want := []rbacv1.PolicyRule{
			{APIGroups: []string{"pharos.io"}, Resources: []string{"ipaddresspools", "l2advertisements"}, Verbs: []string{"list", "delete"}},
			// --force: the pool-in-use finalizer off the pools it deletes.
			{APIGroups: []string{"pharos.io"}, Resources: []string{"ipaddresspools"}, Verbs: []string{"get", "patch"}},
		}
		if !reflect.DeepEqual(role.Rules, want) {
			t.Errorf("%v: values-config ClusterRole rules %+v, want %+v", args, role.Rules, want)
		}
		for _, kind := range []string{"IPAddressPool", "L2Advertisement"} {
			for _, o := range ofKind(objs, kind) {
				if o.GetLabels()["pharos.io/from-values"] != "true" || o.GetLabels()["app.kubernetes.io/instance"] != "pharos" {
					t.Errorf("%v: %s/%s labels %v lack the hooks' selector", args, kind, o.GetName(), o.GetLabels())
				}
				if o.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
					t.Errorf("%v: %s/%s may be deleted by Helm itself (a rollback to the install revision would)", args, kind, o.GetName())
				}
			}
		}
	}
}

// TestForwardingAndBGPSecrets: forwarding.mode reaches both binaries, and
// NET_ADMIN is added to the speaker only when direct forwarding may be
// used; the speaker may read the BGP password Secrets named in values and
// no other Secret but its memberlist key.
func TestForwardingAndBGPSecrets(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		mode    string
		netAdmn bool
	}{
		{nil, "kube-proxy", false},
		{[]string{"--set", "forwarding.mode=direct"}, "direct", true},
		{[]string{"--set", "forwarding.mode=nodeport"}, "nodeport", true},
		{[]string{"--set", "forwarding.allowDirectServices=true"}, "kube-proxy", true},
	} {
		objs := render(t, tc.args...)
		d := into[appsv1.Deployment](t, find(t, objs, "Deployment", "pharos-controller"))
		ds := into[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "pharos-speaker"))
		sc := ds.Spec.Template.Spec.Containers[0]
		for what, args := range map[string][]string{"controller": d.Spec.Template.Spec.Containers[0].Args, "speaker": sc.Args} {
			if !slices.Contains(args, "--forwarding="+tc.mode) {
				t.Errorf("%v: %s args %v lack --forwarding=%s", tc.args, what, args, tc.mode)
			}
		}
		want := []corev1.Capability{"NET_RAW"}
		if tc.netAdmn {
			want = append(want, "NET_ADMIN")
		}
		if got := sc.SecurityContext.Capabilities.Add; !reflect.DeepEqual(got, want) {
			t.Errorf("%v: speaker adds %v, want %v", tc.args, got, want)
		}
	}
	if _, err := tryRender(t, "--set", "forwarding.mode=dsr"); err == nil || !strings.Contains(err.Error(), "forwarding") {
		t.Errorf("forwarding.mode=dsr: %v; the schema must refuse it, naming the value", err)
	}

	role := into[rbacv1.Role](t, find(t, render(t, "--set", "speaker.bgpPasswordSecrets={router-a,router-b}"), "Role", "pharos-speaker"))
	var names []string
	for _, r := range role.Rules {
		if slices.Contains(r.Resources, "secrets") {
			names = append(names, r.ResourceNames...)
		}
	}
	if want := []string{"pharos-memberlist", "router-a", "router-b"}; !reflect.DeepEqual(names, want) {
		t.Errorf("speaker may read Secrets %v, want exactly %v", names, want)
	}
}

// TestPlainHelmTemplate: `helm template t charts/pharos` with no flags, as
// GitOps pipelines and `| kubectl apply -f -` run it, renders (Helm then
// assumes Kubernetes v1.20; the binaries check the real version).
func TestPlainHelmTemplate(t *testing.T) {
	out, err := runHelm(t, nil, "template", "t", chartDir)
	if err != nil {
		t.Fatalf("helm template t charts/pharos: %v\n%s", err, out)
	}
	if !strings.Contains(out, "kind: DaemonSet") || !strings.Contains(out, "kind: Deployment") {
		t.Errorf("the plain render lacks the speaker DaemonSet or the controller Deployment:\n%.2000s", out)
	}
}
