package kubecheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func TestTransient(t *testing.T) {
	gr := schema.GroupResource{Resource: "services"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused, as a client request fails", &url.Error{Op: "Get", URL: "https://198.18.0.1:6443/api", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}, true},
		{"wrapped by the component", fmt.Errorf("pharos-speaker: discovery of pharos.io/v1beta1: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), true},
		{"a timeout", context.DeadlineExceeded, true},
		{"503 from an apiserver starting up", apierrors.NewServiceUnavailable("starting"), true},
		{"500", apierrors.NewInternalError(errors.New("etcd")), true},
		{"429", apierrors.NewTooManyRequests("slow down", 1), true},
		{"403: RBAC must be fixed", apierrors.NewForbidden(gr, "x", errors.New("no")), false},
		{"401: credentials must be fixed", apierrors.NewUnauthorized("who"), false},
		{"404", apierrors.NewNotFound(gr, "x"), false},
		{"a missing CRD, as Check words it", errors.New("pharos-speaker cannot start:\n  - the CRD ipaddresspools.pharos.io (pharos.io/v1beta1) is not installed"), false},
		{"nil", nil, false},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestCheckRetriesUntilTheAPIServerAnswers: Check against an address
// where nothing listens yet fails transiently; Retry keeps calling it,
// says so once, and returns as soon as the apiserver (here a listener that
// starts later and answers 403 to everything) gives a definitive answer.
func TestCheckRetriesUntilTheAPIServerAnswers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens: connection refused
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: "http://" + addr, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	check := func(ctx context.Context) error {
		return Check(ctx, cs, Options{Component: "test", Resources: PharosCRDs})
	}
	if err := check(context.Background()); !Transient(err) {
		t.Fatalf("Check with no apiserver: %v, want a transient error", err)
	}
	waiting, calls := 0, 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		time.Sleep(600 * time.Millisecond)
		srv, err := net.Listen("tcp", addr)
		if err != nil {
			return
		}
		go serve403(srv)
	}()
	err = Retry(ctx, RetryOptions{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond, Settle: 100 * time.Millisecond, Waiting: func(error) { waiting++ }},
		func(ctx context.Context) error { calls++; return check(ctx) })
	if err == nil || Transient(err) || !containsForbidden(err) {
		t.Fatalf("Retry returned %v, want the definitive 403 once the server answers", err)
	}
	if waiting != 1 || calls < 3 {
		t.Errorf("Waiting called %d times (want 1), fn %d times (want several)", waiting, calls)
	}
}

func containsForbidden(err error) bool {
	var status apierrors.APIStatus
	return errors.As(err, &status) && status.Status().Code == 403
}

// TestRetrySettlesAfterAnOutage: a 403 is retried for Settle (an
// apiserver whose authorizer has not loaded RBAC yet refuses everyone,
// whether or not this process saw it unreachable first), reported at
// once through Waiting; one that lasts past Settle is returned.
func TestRetrySettlesAfterAnOutage(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "", errors.New("RBAC not loaded"))
	refused := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	var reported []error
	opts := RetryOptions{Initial: time.Millisecond, Max: time.Millisecond, Settle: 200 * time.Millisecond,
		Waiting: func(err error) { reported = append(reported, err) }}

	calls := 0
	start := time.Now()
	err := Retry(context.Background(), opts, func(context.Context) error { calls++; return forbidden })
	if !apierrors.IsForbidden(err) || time.Since(start) < 200*time.Millisecond || calls < 3 {
		t.Errorf("a lasting 403 with no outage: %v after %d calls and %s, want it after Settle", err, calls, time.Since(start))
	}
	if len(reported) != 1 || !apierrors.IsForbidden(reported[0]) {
		t.Errorf("Waiting got %v, want the 403 once, at the start", reported)
	}

	calls = 0
	err = Retry(context.Background(), opts, func(context.Context) error {
		calls++
		if calls < 4 {
			return forbidden // a process started just as the apiserver did
		}
		return nil
	})
	if err != nil || calls != 4 {
		t.Errorf("403 for a moment at start, then fine: %v after %d calls", err, calls)
	}

	calls = 0
	err = Retry(context.Background(), opts, func(context.Context) error {
		calls++
		switch {
		case calls < 3:
			return refused
		case calls < 6:
			return forbidden // the authorizer warming up
		}
		return nil
	})
	if err != nil || calls != 6 {
		t.Errorf("refused, then 403 for a moment, then fine: %v after %d calls", err, calls)
	}

	start = time.Now()
	calls = 0
	err = Retry(context.Background(), opts, func(context.Context) error {
		calls++
		if calls < 3 {
			return refused
		}
		return forbidden
	})
	if !apierrors.IsForbidden(err) || time.Since(start) < 200*time.Millisecond {
		t.Errorf("a 403 that lasts: %v after %s, want it after Settle", err, time.Since(start))
	}
}
