package agent

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestProbePort(t *testing.T) {
	ports := []corev1.ContainerPort{{Name: "health", ContainerPort: 7473}, {Name: "webhook", ContainerPort: 9443}}
	for _, tc := range []struct {
		port intstr.IntOrString
		want int
		ok   bool
	}{
		{intstr.FromInt32(7473), 7473, true},
		{intstr.FromString("webhook"), 9443, true},
		{intstr.FromString("7473"), 7473, true},
		{intstr.FromString("nope"), 0, false},
	} {
		got, err := probePort(tc.port, ports)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("probePort(%v) = %d, %v", tc.port, got, err)
		}
	}
}

// TestProbeReadiness runs an HTTP readiness probe against a server whose
// health the test flips: ready after the first success, not ready after
// failureThreshold failures, ready again after a success.
func TestProbeReadiness(t *testing.T) {
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || r.Header.Get("X-Test") != "1" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	host, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	probe := &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/readyz", Port: intstr.FromString("health"),
			HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Test", Value: "1"}},
		}},
		PeriodSeconds: 1, FailureThreshold: 2, TimeoutSeconds: 1,
	}
	if !probeSupported(probe) || probeSupported(&corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{}}}) {
		t.Fatal("probeSupported")
	}
	changes := make(chan bool, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go probeReadiness(ctx, probe, netip.MustParseAddr(host), []corev1.ContainerPort{{Name: "health", ContainerPort: int32(port)}}, func(ok bool) { changes <- ok })

	expect := func(want bool, within time.Duration) {
		t.Helper()
		select {
		case got := <-changes:
			if got != want {
				t.Fatalf("readiness changed to %v, want %v", got, want)
			}
		case <-time.After(within):
			t.Fatalf("readiness did not change to %v within %s", want, within)
		}
	}
	select {
	case got := <-changes:
		t.Fatalf("readiness %v before the server is healthy", got)
	case <-time.After(1500 * time.Millisecond):
	}
	healthy.Store(true)
	expect(true, 2*time.Second)
	healthy.Store(false)
	expect(false, 4*time.Second) // two failed probes a second apart
	healthy.Store(true)
	expect(true, 2*time.Second)
}

// TestProber steps the probe state machine as the kubelet's worker would.
func TestProber(t *testing.T) {
	type step struct {
		ok      bool
		changed bool
		result  bool
		next    time.Duration
	}
	for _, tc := range []struct {
		name     string
		probe    corev1.Probe
		liveness bool
		initial  bool
		delay    time.Duration
		steps    []step
	}{
		{
			name: "readiness, the controller's", probe: corev1.Probe{PeriodSeconds: 5, FailureThreshold: 3, SuccessThreshold: 1},
			initial: false,
			steps: []step{
				{false, false, false, time.Second}, // not ready yet: tried every second
				{true, true, true, 5 * time.Second},
				{false, false, true, 5 * time.Second},
				{false, false, true, 5 * time.Second},
				{true, false, true, 5 * time.Second}, // a success resets the count
				{false, false, true, 5 * time.Second},
				{false, false, true, 5 * time.Second},
				{false, true, false, 5 * time.Second}, // third failure in a row
				{true, true, true, 5 * time.Second},
			},
		},
		{
			name: "readiness with successThreshold 2", probe: corev1.Probe{PeriodSeconds: 3, SuccessThreshold: 2},
			steps: []step{
				{true, false, false, time.Second},
				{false, false, false, time.Second},
				{true, false, false, time.Second},
				{true, true, true, 3 * time.Second},
				// failureThreshold unset: the API's 3.
				{false, false, true, 3 * time.Second},
				{false, false, true, 3 * time.Second},
				{false, true, false, 3 * time.Second},
			},
		},
		{
			name: "liveness, the controller's", probe: corev1.Probe{InitialDelaySeconds: 15, PeriodSeconds: 20},
			liveness: true, initial: true, delay: 15 * time.Second,
			steps: []step{
				{false, false, true, 20 * time.Second},
				{true, false, true, 20 * time.Second},
				{false, false, true, 20 * time.Second},
				{false, false, true, 20 * time.Second},
				{false, true, false, 20 * time.Second}, // kill
				{true, true, true, 20 * time.Second},   // successThreshold is 1 for liveness
			},
		},
		{
			name: "liveness, the speaker's", probe: corev1.Probe{PeriodSeconds: 10, FailureThreshold: 6, SuccessThreshold: 3},
			liveness: true, initial: true,
			steps: []step{
				{false, false, true, 10 * time.Second}, {false, false, true, 10 * time.Second}, {false, false, true, 10 * time.Second},
				{false, false, true, 10 * time.Second}, {false, false, true, 10 * time.Second}, {false, true, false, 10 * time.Second},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := newProber(&tc.probe, tc.liveness)
			if pr.result != tc.initial || pr.initialDelay != tc.delay || pr.timeout != time.Second {
				t.Fatalf("start: result %v delay %s timeout %s", pr.result, pr.initialDelay, pr.timeout)
			}
			for i, s := range tc.steps {
				changed := pr.observe(s.ok)
				if changed != s.changed || pr.result != s.result || pr.next() != s.next {
					t.Fatalf("step %d (ok %v): changed %v result %v next %s, want %v %v %s", i, s.ok, changed, pr.result, pr.next(), s.changed, s.result, s.next)
				}
			}
		})
	}
}

// TestProbeLiveness runs an HTTP liveness probe against a server that
// turns unhealthy: failed is called once, after failureThreshold failures
// in a row, and the probe stops.
func TestProbeLiveness(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	var probes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		probes.Add(1)
		if !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	host, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	probe := &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(int32(port))}},
		PeriodSeconds: 1, FailureThreshold: 2,
	}
	failed := make(chan error, 2)
	done := make(chan struct{})
	go func() {
		probeLiveness(context.Background(), probe, netip.MustParseAddr(host), nil, func(err error) { failed <- err })
		close(done)
	}()
	time.Sleep(2500 * time.Millisecond)
	if len(failed) != 0 || probes.Load() < 2 {
		t.Fatalf("healthy: %d failures reported after %d probes", len(failed), probes.Load())
	}
	start := time.Now()
	healthy.Store(false)
	select {
	case err := <-failed:
		if took := time.Since(start); took > 3*time.Second || err == nil || !strings.Contains(err.Error(), "500") {
			t.Errorf("failed after %s with %v", took, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an unhealthy server was not reported")
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("the probe went on after reporting")
	}
	if len(failed) != 0 {
		t.Error("reported twice")
	}
}
