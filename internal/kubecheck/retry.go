package kubecheck

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Transient reports whether err may go away by itself: the apiserver is
// unreachable (connection refused or reset, a timeout, a broken
// connection: it restarts, or the node boots before the control plane),
// overloaded (429) or failing (5xx). A component retries these at start
// instead of exiting into a kubelet's CrashLoopBackOff, which would delay
// it by up to five minutes after the apiserver returns. What an
// administrator must fix (403, 401, a missing CRD, a bad request) is not
// transient.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		// The status code decides: client-go marks a response it could not
		// decode (a 403 from a proxy, say) as "unexpected", whatever its code.
		if code := status.Status().Code; code >= 400 && code < 500 && code != 429 && code != 408 {
			return false
		}
		return apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsServerTimeout(err) ||
			apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) || apierrors.IsUnexpectedServerError(err) ||
			status.Status().Code >= 500
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	// Some client-go paths flatten the cause into text.
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "i/o timeout", "no route to host", "TLS handshake timeout", "http2: client connection lost"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// RetryOptions configure Retry.
type RetryOptions struct {
	// Initial is the first wait (default 250 ms); each next one doubles, up
	// to Max (default 4 s). A short Max matters more than saving requests:
	// after an outage every speaker should announce again within seconds.
	Initial, Max time.Duration
	// Settle is how long definitive-looking answers (a 403, a missing
	// CRD) are retried before Retry returns them: an apiserver that has
	// just started answers, and even reports ready, before its authorizer
	// has loaded the RBAC roles, refusing everyone for seconds (over 11 s
	// seen in the lab). A process that starts then, not only one that saw
	// the apiserver unreachable, must not exit into a kubelet's back-off
	// for it. Waiting reports the first refusal at once, so a real one is
	// seen without delay. Default 30 s.
	Settle time.Duration
	// Waiting is called once, at the first transient failure, and
	// Recovered once when fn then succeeds: one log line each, however
	// long the outage.
	Waiting   func(err error)
	Recovered func(waited time.Duration)
}

// Retry calls fn until it succeeds, fails with an error that is not
// Transient (returned as is), or ctx ends.
func Retry(ctx context.Context, o RetryOptions, fn func(ctx context.Context) error) error {
	if o.Initial <= 0 {
		o.Initial = 250 * time.Millisecond
	}
	if o.Max <= 0 {
		o.Max = 4 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 30 * time.Second
	}
	wait, start, failed := o.Initial, time.Now(), false
	var answered time.Time // the first definitive-looking answer
	for {
		err := fn(ctx)
		if err == nil {
			if failed && o.Recovered != nil {
				o.Recovered(time.Since(start))
			}
			return nil
		}
		if !Transient(err) {
			if answered.IsZero() {
				answered = time.Now()
			}
			if time.Since(answered) > o.Settle {
				return err
			}
		}
		if !failed && o.Waiting != nil {
			o.Waiting(err)
		}
		failed = true
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, o.Max)
	}
}
