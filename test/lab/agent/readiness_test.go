package agent

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
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
