package allocation_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/controller/advertisement"
	"github.com/pharos-lb/pharos/controller/allocation"
	"github.com/pharos-lb/pharos/internal/testenv"
)

var (
	restCfg *rest.Config
	k8s     client.Client
	scheme  = runtime.NewScheme()
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
	restCfg = cfg
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
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

// controllerOpts tune a test controller.
type controllerOpts struct {
	class       string
	leaderElect bool
	identity    string
	// noServiceLB turns K3s ServiceLB detection off; by default it watches
	// kube-system, as the controller's flag does.
	noServiceLB bool
	// intercept, if set, wraps the manager's client, to inject failures.
	intercept *interceptor.Funcs
	// logger, if set, receives the controller's logs.
	logger *logr.Logger
	// forwarding is the cluster's default forwarding mode (--forwarding);
	// empty leaves the controller's default.
	forwarding string
}

// runningController is a controller manager started by a test.
type runningController struct {
	mgr    ctrl.Manager
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// startController runs the Pharos controller in-process against the real
// apiserver until the test ends or stop is called.
func startController(t *testing.T, o controllerOpts) *runningController {
	t.Helper()
	opts := ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
		// The event broadcaster's shutdown can wait for the whole timeout.
		GracefulShutdownTimeout: ptr.To(2 * time.Second),
	}
	if o.leaderElect {
		opts.LeaderElection = true
		opts.LeaderElectionID = "pharos-controller-test"
		opts.LeaderElectionNamespace = "default"
		opts.LeaderElectionReleaseOnCancel = true
		opts.LeaseDuration = ptr.To(4 * time.Second)
		opts.RenewDeadline = ptr.To(3 * time.Second)
		opts.RetryPeriod = ptr.To(500 * time.Millisecond)
	}
	if o.intercept != nil {
		opts.NewClient = func(cfg *rest.Config, co client.Options) (client.Client, error) {
			c, err := client.NewWithWatch(cfg, co)
			if err != nil {
				return nil, err
			}
			return interceptor.NewClient(c, *o.intercept), nil
		}
	}
	if o.logger != nil {
		opts.Logger = *o.logger
	}
	cfg := rest.CopyConfig(restCfg)
	if o.identity != "" {
		cfg.UserAgent = o.identity
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	aopts := allocation.Options{LoadBalancerClass: o.class, PoolStatusInterval: 200 * time.Millisecond, ServiceLBNamespace: "kube-system", Forwarding: o.forwarding}
	if o.noServiceLB {
		aopts.ServiceLBNamespace = ""
	}
	if err := allocation.New(mgr, aopts).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := advertisement.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc := &runningController{mgr: mgr, cancel: cancel, done: make(chan struct{})}
	go func() {
		rc.err = mgr.Start(ctx)
		close(rc.done)
	}()
	t.Cleanup(rc.stop)
	return rc
}

func (rc *runningController) stop() {
	rc.cancel()
	start := time.Now()
	select {
	case <-rc.done:
	case <-time.After(30 * time.Second):
	}
	if d := time.Since(start); d > 5*time.Second {
		fmt.Fprintf(os.Stderr, "controller took %s to stop\n", d)
	}
}

var nameSeq atomic.Int64

// testNamespace creates a namespace for one test and deletes it after.
func testNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nameSeq.Add(1), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	if len(name) > 60 {
		name = name[:60]
	}
	name = strings.TrimRight(name, "-")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteServices(t, name) })
	return name
}

// deleteServices removes a namespace's Services (envtest has no namespace
// controller, so namespaces themselves never finish deleting).
func deleteServices(t *testing.T, ns string) {
	_ = k8s.DeleteAllOf(context.Background(), &corev1.Service{}, client.InNamespace(ns))
}

type poolOpt func(*v1beta1.IPAddressPool)

func noAutoAssign(p *v1beta1.IPAddressPool) { p.Spec.AutoAssign = ptr.To(false) }
func allocateTo(sa v1beta1.ServiceAllocation) poolOpt {
	return func(p *v1beta1.IPAddressPool) { p.Spec.ServiceAllocation = &sa }
}

// createPool creates a pool that is deleted when the test ends.
func createPool(t *testing.T, name string, addrs []string, opts ...poolOpt) *v1beta1.IPAddressPool {
	t.Helper()
	p := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.IPAddressPoolSpec{Addresses: addrs}}
	for _, o := range opts {
		o(p)
	}
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatalf("creating pool %s: %v", name, err)
	}
	t.Cleanup(func() { deletePool(name) })
	return p
}

// deletePool deletes a pool for good, even when the controller's
// pool-in-use finalizer holds it (its controller has stopped by then), so
// that no Terminating pool outlives its test.
func deletePool(name string) {
	ctx := context.Background()
	p := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	_ = k8s.Delete(ctx, p)
	if err := k8s.Get(ctx, types.NamespacedName{Name: name}, p); err == nil && len(p.Finalizers) > 0 {
		_ = k8s.Patch(ctx, p, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
	}
}

type svcOpt func(*corev1.Service)

func annotate(k, v string) svcOpt {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}
func withPorts(ps ...corev1.ServicePort) svcOpt {
	return func(s *corev1.Service) { s.Spec.Ports = ps }
}
func port(proto corev1.Protocol, n int32) corev1.ServicePort {
	return corev1.ServicePort{Name: strings.ToLower(string(proto)) + fmt.Sprint(n), Protocol: proto, Port: n, TargetPort: intstr.FromInt32(n)}
}
func dualStack(p corev1.IPFamilyPolicy, fams ...corev1.IPFamily) svcOpt {
	return func(s *corev1.Service) { s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &p, fams }
}
func localPolicy(selector map[string]string) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.Selector = selector
	}
}
func withClass(c string) svcOpt { return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c } }
func withLabels(l map[string]string) svcOpt {
	return func(s *corev1.Service) { s.Labels = l }
}
func loadBalancerIP(ip string) svcOpt { return func(s *corev1.Service) { s.Spec.LoadBalancerIP = ip } }

func newService(ns, name string, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{port(corev1.ProtocolTCP, 80)},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func createService(t *testing.T, ns, name string, opts ...svcOpt) *corev1.Service {
	t.Helper()
	s := newService(ns, name, opts...)
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatalf("creating Service %s/%s: %v", ns, name, err)
	}
	return s
}

func getService(t *testing.T, ns, name string) *corev1.Service {
	t.Helper()
	s := &corev1.Service{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		t.Fatalf("getting Service %s/%s: %v", ns, name, err)
	}
	return s
}

// updateService applies a change with retries on conflict.
func updateService(t *testing.T, ns, name string, change func(*corev1.Service)) {
	t.Helper()
	for i := 0; ; i++ {
		s := getService(t, ns, name)
		change(s)
		err := k8s.Update(context.Background(), s)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) || i > 20 {
			t.Fatalf("updating Service %s/%s: %v", ns, name, err)
		}
	}
}

func ingressIPs(s *corev1.Service) string {
	var ips []string
	for _, ing := range s.Status.LoadBalancer.Ingress {
		ips = append(ips, ing.IP)
	}
	return strings.Join(ips, ",")
}

// eventually polls cond until it returns "" or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("after %s: %s", timeout, last)
}

// consistently checks that cond stays "" for the duration.
func consistently(t *testing.T, d time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if msg := cond(); msg != "" {
			t.Fatal(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const waitTime = 20 * time.Second

// waitIPs waits until the Service's ingress is exactly want.
func waitIPs(t *testing.T, ns, name, want string) *corev1.Service {
	t.Helper()
	var s *corev1.Service
	eventually(t, waitTime, func() string {
		s = getService(t, ns, name)
		if got := ingressIPs(s); got != want {
			return fmt.Sprintf("Service %s/%s has ingress %q, want %q; condition %+v", ns, name, got, want, meta.FindStatusCondition(s.Status.Conditions, v1beta1.ConditionIPAllocated))
		}
		return ""
	})
	return s
}

// waitReason waits until the Service's IPAllocated condition has the
// reason and a message containing msg, and returns the condition.
func waitReason(t *testing.T, ns, name, reason, msg string) metav1.Condition {
	t.Helper()
	var c *metav1.Condition
	eventually(t, waitTime, func() string {
		s := getService(t, ns, name)
		c = meta.FindStatusCondition(s.Status.Conditions, v1beta1.ConditionIPAllocated)
		if c == nil || c.Reason != reason || !strings.Contains(c.Message, msg) {
			return fmt.Sprintf("Service %s/%s condition %+v, want reason %s with %q", ns, name, c, reason, msg)
		}
		return ""
	})
	return *c
}

// events returns the reasons and notes of the events about a Service, in
// time order.
func events(t *testing.T, ns, name string) []string {
	t.Helper()
	var list corev1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns),
		client.MatchingFieldsSelector{Selector: fields.SelectorFromSet(fields.Set{"involvedObject.name": name, "involvedObject.kind": "Service"})}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].EventTime.Time.Before(list.Items[j].EventTime.Time) })
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Type+" "+e.Reason+": "+e.Message)
	}
	return out
}

func countEvents(evs []string, substr string) int {
	n := 0
	for _, e := range evs {
		if strings.Contains(e, substr) {
			n++
		}
	}
	return n
}

// waitEvent waits for an event about the Service that contains substr.
func waitEvent(t *testing.T, ns, name, substr string) {
	t.Helper()
	eventually(t, waitTime, func() string {
		evs := events(t, ns, name)
		if countEvents(evs, substr) == 0 {
			return fmt.Sprintf("no event %q for %s/%s in %q", substr, ns, name, evs)
		}
		return ""
	})
}

func poolStatus(t *testing.T, name string) v1beta1.IPAddressPoolStatus {
	t.Helper()
	p := &v1beta1.IPAddressPool{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Name: name}, p); err != nil {
		t.Fatal(err)
	}
	return p.Status
}

// updatePool applies a change to a pool with retries on conflict.
func updatePool(t *testing.T, name string, change func(*v1beta1.IPAddressPool)) {
	t.Helper()
	for i := 0; ; i++ {
		p := &v1beta1.IPAddressPool{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Name: name}, p); err != nil {
			t.Fatal(err)
		}
		change(p)
		err := k8s.Update(context.Background(), p)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) || i > 20 {
			t.Fatalf("updating pool %s: %v", name, err)
		}
	}
}
