package webhook_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/controller/allocation"
	pwebhook "github.com/pharos-lb/pharos/controller/webhook"
	"github.com/pharos-lb/pharos/internal/certs"
	"github.com/pharos-lb/pharos/internal/testenv"
)

const ns = "pharos-system"

var (
	restCfg *rest.Config
	k8s     client.Client
	scheme  = runtime.NewScheme()
	// warnings collects the apiserver's warnings (admission warnings
	// included) for requests made through k8s.
	warnings = &warningLog{}
)

func TestMain(m *testing.M) {
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1beta1.AddToScheme(scheme)
	if os.Getenv("PHAROS_TEST_VERBOSE") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(discard{})))
	}
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration tests need a real kube-apiserver:", err)
		os.Exit(1)
	}
	restCfg = rest.CopyConfig(cfg)
	restCfg.WarningHandler = warnings
	k8s, err = client.New(restCfg, client.Options{Scheme: scheme})
	if err == nil {
		err = k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

type warningLog struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningLog) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warningLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// served is a webhook server as the controller runs it, on 127.0.0.1.
type served struct {
	name   string // ValidatingWebhookConfiguration and Secret prefix
	port   int
	certs  *pwebhook.CertManager
	cancel context.CancelFunc
	done   chan struct{}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serve starts the controller's webhook server and certificate manager,
// and the configuration that makes the real apiserver call it by URL.
func serve(t *testing.T, name string, policy certs.Policy, failure admissionregistrationv1.FailurePolicyType) *served {
	t.Helper()
	s := &served{name: name, port: freePort(t), done: make(chan struct{})}
	ctx := context.Background()
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	// As charts/pharos/templates/webhook.yaml registers them.
	for _, w := range []struct{ name, resource, path string }{
		{"ipaddresspools.pharos.io", "ipaddresspools", pwebhook.PathIPAddressPool},
		{"l2advertisements.pharos.io", "l2advertisements", pwebhook.PathL2Advertisement},
		{"bgppeers.pharos.io", "bgppeers", pwebhook.PathBGPPeer},
		{"bgpadvertisements.pharos.io", "bgpadvertisements", pwebhook.PathBGPAdvertisement},
		{"communities.pharos.io", "communities", pwebhook.PathCommunity},
		{"bfdprofiles.pharos.io", "bfdprofiles", pwebhook.PathBFDProfile},
	} {
		ops := []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}
		if w.resource == "bfdprofiles" {
			ops = append(ops, "DELETE")
		}
		cfg.Webhooks = append(cfg.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name:                    w.name,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(fmt.Sprintf("https://127.0.0.1:%d%s", s.port, w.path))},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: ops, Rule: admissionregistrationv1.Rule{APIGroups: []string{"pharos.io"}, APIVersions: []string{"v1beta1"}, Resources: []string{w.resource}}}},
			FailurePolicy:           ptr.To(failure),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](5),
		})
	}
	if err := k8s.Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), cfg) })
	s.start(t, policy)
	t.Cleanup(s.stop)
	return s
}

func (s *served) start(t *testing.T, policy certs.Policy) {
	t.Helper()
	direct, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	s.certs = pwebhook.NewCertManager(direct, direct, pwebhook.CertOptions{
		Namespace: ns, SecretName: s.name + "-cert", ServiceName: s.name, ConfigurationName: s.name,
		ExtraHosts: []string{"127.0.0.1"}, Policy: policy, Interval: 200 * time.Millisecond,
	})
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: s.port,
			TLSOpts: pwebhook.TLSOptions(s.certs)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(s.certs); err != nil {
		t.Fatal(err)
	}
	pwebhook.Register(mgr.GetWebhookServer(), scheme, mgr.GetAPIReader())
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func() { defer close(s.done); _ = mgr.Start(ctx) }()
	waitAnswering(t, 20*time.Second)
}

func (s *served) stop() {
	s.cancel()
	<-s.done
}

// waitAnswering waits until the webhook refuses its probe, as the chart's
// check-webhook hook does: an admission would only mean that the apiserver
// has not registered the configuration yet.
func waitAnswering(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		err = k8s.Create(context.Background(), pwebhook.Probe(), client.DryRunAll)
		if err != nil && strings.Contains(err.Error(), "denied the request") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the webhook did not refuse its probe within %s: %v", timeout, err)
}

func pool(name string, addrs ...string) *v1beta1.IPAddressPool {
	return &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.IPAddressPoolSpec{Addresses: addrs}}
}

func cleanupPools(t *testing.T) {
	t.Cleanup(func() {
		_ = k8s.DeleteAllOf(context.Background(), &v1beta1.IPAddressPool{})
		_ = k8s.DeleteAllOf(context.Background(), &v1beta1.L2Advertisement{})
	})
}

func mustContain(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("request admitted; want a rejection containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("rejection %q does not contain %q", err.Error(), p)
		}
	}
}

func TestWebhookRejectsWhatTheControllerWould(t *testing.T) {
	serve(t, "pharos-webhook", certs.Policy{}, admissionregistrationv1.Fail)
	cleanupPools(t)
	ctx := context.Background()

	warnings.take()
	if err := k8s.Create(ctx, pool("lan", "198.18.100.0/24")); err != nil {
		t.Fatalf("a valid pool was rejected: %v", err)
	}
	if w := strings.Join(warnings.take(), "\n"); !strings.Contains(w, `no L2Advertisement or BGPAdvertisement selects IPAddressPool "lan"`) {
		t.Errorf("creating a pool nothing announces gave warnings %q; want one saying so", w)
	}

	err := k8s.Create(ctx, pool("overlap", "198.18.101.0/24", "198.18.100.128-198.18.100.200"))
	mustContain(t, err,
		`admission webhook "ipaddresspools.pharos.io" denied the request`,
		`IPAddressPool.pharos.io "overlap" is invalid`,
		`spec.addresses[1]`,
		`IPAddressPool "lan"`,
		"remove the overlap")
	if !apierrors.IsInvalid(err) {
		t.Errorf("rejection is %v, want 422 Invalid so clients show the field", apierrors.ReasonForError(err))
	}

	if err := k8s.Create(ctx, pool("next", "198.18.101.0/24")); err != nil {
		t.Fatal(err)
	}
	var lan v1beta1.IPAddressPool
	if err := k8s.Get(ctx, types.NamespacedName{Name: "lan"}, &lan); err != nil {
		t.Fatal(err)
	}
	lan.Spec.Addresses = []string{"198.18.100.0/23"}
	mustContain(t, k8s.Update(ctx, &lan), `IPAddressPool "next"`, "spec.addresses[0]")

	adv := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns}, Spec: v1beta1.L2AdvertisementSpec{
		IPAddressPoolSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Sometimes"}}}},
	}}
	mustContain(t, k8s.Create(ctx, adv),
		`admission webhook "l2advertisements.pharos.io" denied the request`,
		"spec.ipAddressPoolSelectors[0]")

	warnings.take()
	later := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: ns}, Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"lan", "tomorrow"}}}
	if err := k8s.Create(ctx, later); err != nil {
		t.Fatalf("an advertisement naming a pool that comes later was rejected: %v", err)
	}
	if w := strings.Join(warnings.take(), "\n"); !strings.Contains(w, "tomorrow") {
		t.Errorf("warnings %q do not mention the missing pool", w)
	}
}

func TestWebhookDownIsClearAndTheControllerStillReports(t *testing.T) {
	s := serve(t, "pharos-webhook-down", certs.Policy{}, admissionregistrationv1.Fail)
	cleanupPools(t)
	ctx := context.Background()
	if err := k8s.Create(ctx, pool("first", "198.18.110.0/24")); err != nil {
		t.Fatal(err)
	}
	s.stop()
	err := k8s.Create(ctx, pool("second", "198.18.110.0/25"))
	mustContain(t, err, `failed calling webhook "ipaddresspools.pharos.io"`)

	// With failurePolicy Ignore the object gets in; the controller's
	// condition then says what the webhook would have said.
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	if err := k8s.Get(ctx, types.NamespacedName{Name: s.name}, &cfg); err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Webhooks {
		cfg.Webhooks[i].FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	}
	if err := k8s.Update(ctx, &cfg); err != nil {
		t.Fatal(err)
	}
	// The apiserver applies the new policy once its informer sees it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := k8s.Create(ctx, pool("second", "198.18.110.0/25"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Fatalf("with failurePolicy Ignore and the webhook down: %v", err)
		}
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		// -count=N runs this test N times in one process.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := allocation.New(mgr, allocation.Options{}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(mctx) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		var p v1beta1.IPAddressPool
		if err := k8s.Get(ctx, types.NamespacedName{Name: "second"}, &p); err != nil {
			t.Fatal(err)
		}
		c := meta.FindStatusCondition(p.Status.Conditions, v1beta1.ConditionValid)
		if c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, `IPAddressPool "first"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool admitted while the webhook was down has condition %+v; want Valid=False naming the pool it overlaps", c)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestCertificateRotationKeepsTheWebhookAnswering(t *testing.T) {
	// Lifetimes of seconds: both the serving certificate and the CA are
	// renewed several times while requests keep flowing.
	policy := certs.Policy{CALifetime: 8 * time.Second, CertLifetime: 3 * time.Second}
	s := serve(t, "pharos-webhook-rotate", policy, admissionregistrationv1.Fail)
	cleanupPools(t)
	ctx := context.Background()
	if err := k8s.Create(ctx, pool("rot", "198.18.120.0/24")); err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	var caBundles = map[string]bool{}
	end := time.Now().Add(12 * time.Second)
	requests := 0
	for time.Now().Before(end) {
		err := k8s.Create(ctx, pool("rot-overlap", "198.18.120.0/25"), client.DryRunAll)
		requests++
		if err == nil || !strings.Contains(err.Error(), "denied the request") {
			t.Fatalf("request %d during rotation: %v; want the webhook's denial", requests, err)
		}
		if c, err := s.certs.GetCertificate(nil); err == nil {
			seen[string(c.Certificate[0])] = true
		}
		var cfg admissionregistrationv1.ValidatingWebhookConfiguration
		if err := k8s.Get(ctx, types.NamespacedName{Name: s.name}, &cfg); err == nil {
			caBundles[string(cfg.Webhooks[0].ClientConfig.CABundle)] = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(seen) < 3 {
		t.Fatalf("served %d distinct certificates in 12 s with a 3 s lifetime; want rotation", len(seen))
	}
	if len(caBundles) < 2 {
		t.Fatalf("caBundle took %d values in 12 s with an 8 s CA; want the CA rotated and re-injected", len(caBundles))
	}
	t.Logf("%d requests, all answered by the webhook; %d serving certificates, %d CA bundles", requests, len(seen), len(caBundles))
}

func TestReplicasShareOneCertificate(t *testing.T) {
	s := serve(t, "pharos-webhook-shared", certs.Policy{}, admissionregistrationv1.Fail)
	// A second replica on another port with the same Secret must load the
	// same bundle instead of minting its own (which would break the first
	// replica's CA in the configuration).
	other := pwebhook.NewCertManager(k8s, k8s, pwebhook.CertOptions{
		Namespace: ns, SecretName: s.name + "-cert", ServiceName: s.name, ConfigurationName: s.name, ExtraHosts: []string{"127.0.0.1"},
	})
	if err := other.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, _ := s.certs.GetCertificate(nil)
	b, _ := other.GetCertificate(nil)
	if a == nil || b == nil || string(a.Certificate[0]) != string(b.Certificate[0]) {
		t.Fatal("two replicas serve different certificates from one Secret")
	}
}
