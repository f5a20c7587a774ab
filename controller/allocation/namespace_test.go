package allocation_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/controller/allocation"
)

// logLines collects a controller's log lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() *logr.Logger {
	lg := funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{})
	return &lg
}

// matching returns the lines that contain every substring.
func (l *logLines) matching(substrs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, line := range l.lines {
		for _, s := range substrs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

// counter reads a counter from the registry that the controller's metrics
// endpoint serves, summed over the series whose labels include want.
func counter(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if l[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

const nsLookupFailures = "pharos_controller_namespace_lookup_failures_total"

// failNamespaceGet returns interceptors that fail the controller's reads of
// Namespace ns with NotFound, as a cache that has not seen it yet does,
// while failing is set; failures counts them.
func failNamespaceGet(ns string, failing *atomic.Bool, failures *atomic.Int64) *interceptor.Funcs {
	return &interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, isNS := obj.(*corev1.Namespace); isNS && key.Name == ns && failing.Load() {
				failures.Add(1)
				return apierrors.NewNotFound(corev1.Resource("namespaces"), key.Name)
			}
			return c.Get(ctx, key, obj, opts...)
		},
	}
}

// notAssigned fails if the Service has an address or an IPAllocated
// condition: with its Namespace unknown it must be left alone.
func notAssigned(t *testing.T, ns, name string) string {
	s := getService(t, ns, name)
	if got := ingressIPs(s); got != "" {
		return fmt.Sprintf("assigned %s without its Namespace's labels (pool %q)", got, s.Annotations[v1beta1.AnnotationAllocatedFromPool])
	}
	if c := meta.FindStatusCondition(s.Status.Conditions, v1beta1.ConditionIPAllocated); c != nil {
		return fmt.Sprintf("status written without its Namespace's labels: %+v", c)
	}
	return ""
}

// A Service whose Namespace the controller cannot read (its cache lags)
// must not be assigned as if the Namespace had no labels: it would land in
// a fallback pool and stay there. It waits, retried with backoff, is
// logged once and counted, and gets the pool its Namespace selects.
func TestNamespaceLookupFailureWaits(t *testing.T) {
	ns := testNamespace(t, map[string]string{"tier": "prod"})
	createPool(t, "nswait-general", []string{"198.18.60.0/30"}, allocateTo(v1beta1.ServiceAllocation{Priority: 1}))
	createPool(t, "nswait-prod", []string{"198.18.61.0/30"}, allocateTo(v1beta1.ServiceAllocation{
		Priority:           10,
		NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "prod"}}},
	}))
	var failing atomic.Bool
	var failures atomic.Int64
	failing.Store(true)
	logs := &logLines{}
	before := counter(t, nsLookupFailures, nil)
	startController(t, controllerOpts{intercept: failNamespaceGet(ns, &failing, &failures), logger: logs.logger()})

	createService(t, ns, "web")
	consistently(t, 2*time.Second, func() string { return notAssigned(t, ns, "web") })
	// Retried with backoff (250 ms, 500 ms, 1 s, ...), not once only and
	// not in a hot loop.
	if n := failures.Load(); n < 3 || n > 10 {
		t.Errorf("%d Namespace lookups in 2 s, want a few retries", n)
	}
	warnings := logs.matching("cannot read the Service's Namespace")
	if len(warnings) != 1 {
		t.Errorf("%d warnings, want 1 for all the retries: %q", len(warnings), warnings)
	} else {
		for _, want := range []string{`"service"="` + ns + `/web"`, `"namespace"="` + ns + `"`, "Warning:"} {
			if !strings.Contains(warnings[0], want) {
				t.Errorf("warning %q lacks %s", warnings[0], want)
			}
		}
	}

	// The cache catches up: the Service gets the pool its Namespace
	// selects, by the next retry.
	failing.Store(false)
	waitIPs(t, ns, "web", "198.18.61.0")
	waitReason(t, ns, "web", "Allocated", `IPAddressPool "nswait-prod"`)
	if got, want := counter(t, nsLookupFailures, nil)-before, float64(failures.Load()); got != want {
		t.Errorf("%s rose by %v, want %v (the failed lookups)", nsLookupFailures, got, want)
	}
}

// The Namespace's own watch event, not only the backoff, re-queues a
// Service that waits for its Namespace: in production the cache's lag ends
// with that event, well before a long backoff would.
func TestNamespaceEventRequeuesWaitingService(t *testing.T) {
	allocation.SetNamespaceRetry(t, time.Hour, time.Hour)
	ns := testNamespace(t, map[string]string{"team": "green"})
	createPool(t, "nsevent-general", []string{"198.18.62.0/30"}, allocateTo(v1beta1.ServiceAllocation{Priority: 1}))
	createPool(t, "nsevent-green", []string{"198.18.63.0/30"}, allocateTo(v1beta1.ServiceAllocation{
		Priority:           10,
		NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"team": "green"}}},
	}))
	var failing atomic.Bool
	var failures atomic.Int64
	failing.Store(true)
	startController(t, controllerOpts{intercept: failNamespaceGet(ns, &failing, &failures)})

	createService(t, ns, "web")
	eventually(t, waitTime, func() string {
		if failures.Load() == 0 {
			return "the controller has not looked the Namespace up"
		}
		return ""
	})
	consistently(t, time.Second, func() string { return notAssigned(t, ns, "web") })

	// The Namespace reaches the cache: its event (here, a label change)
	// re-queues the Service within the hour-long backoff.
	failing.Store(false)
	nsObj := &corev1.Namespace{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Name: ns}, nsObj); err != nil {
		t.Fatal(err)
	}
	nsObj.Labels["touched"] = "yes"
	if err := k8s.Update(context.Background(), nsObj); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, ns, "web", "198.18.63.0")
}
