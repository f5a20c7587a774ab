package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeReadiness runs a container's readiness probe against host until ctx
// ends, and calls set with each change of result (starting from not
// ready). Only httpGet and tcpSocket probes are run; a container with
// another kind (exec, grpc) is taken as ready once started, which
// supported() tells the caller beforehand.
//
// The kubelet waits a full period between attempts from the start; the lab
// tries a starting container every second (at most every period) until it
// first succeeds, so that a rollout in a test does not wait ten seconds per
// pod. After that, periodSeconds, timeoutSeconds and both thresholds hold.
func probeReadiness(ctx context.Context, p *corev1.Probe, host netip.Addr, ports []corev1.ContainerPort, set func(bool)) {
	runProbe(ctx, newProber(p, false), p, host, ports, func(ok bool, _ error) { set(ok) })
}

// probeLiveness runs a container's liveness probe against host until ctx
// ends or the probe fails failureThreshold times in a row, and then calls
// failed once with the last attempt's error and returns: the caller kills
// the container, as the kubelet does, and a restarted container gets a
// probe of its own. The first attempt comes initialDelaySeconds after the
// start, then one every periodSeconds, each given timeoutSeconds.
func probeLiveness(ctx context.Context, p *corev1.Probe, host netip.Addr, ports []corev1.ContainerPort, failed func(error)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runProbe(ctx, newProber(p, true), p, host, ports, func(ok bool, err error) {
		if !ok {
			failed(err)
			cancel()
		}
	})
}

// runProbe runs attempts as pr schedules them until ctx ends, and calls
// changed with each change of pr's result and the attempt that made it.
func runProbe(ctx context.Context, pr *prober, p *corev1.Probe, host netip.Addr, ports []corev1.ContainerPort, changed func(bool, error)) {
	wait := pr.initialDelay
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		pctx, cancel := context.WithTimeout(ctx, pr.timeout)
		err := probeOnce(pctx, p, host, ports)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if pr.observe(err == nil) {
			changed(pr.result, err)
		}
		wait = pr.next()
	}
}

// prober is the state of one probe of one container between attempts, as
// the kubelet's probe worker keeps it: the result (readiness: ready;
// liveness: alive), which flips after successThreshold successes or
// failureThreshold failures in a row.
type prober struct {
	liveness                           bool
	initialDelay, period, timeout      time.Duration
	successThreshold, failureThreshold int

	result  bool
	passed  bool // the result has been true since the start
	okRun   int  // consecutive successes
	failRun int  // consecutive failures
}

// newProber starts a probe of p as the kubelet does: a liveness probe
// passes until it fails (and needs one success to pass again, the only
// successThreshold the API allows it), a readiness probe fails until it
// passes. Unset fields take the API's defaults.
func newProber(p *corev1.Probe, liveness bool) *prober {
	pr := &prober{
		liveness:         liveness,
		initialDelay:     time.Duration(max(p.InitialDelaySeconds, 0)) * time.Second,
		period:           seconds(p.PeriodSeconds, 10),
		timeout:          seconds(p.TimeoutSeconds, 1),
		successThreshold: threshold(p.SuccessThreshold),
		failureThreshold: failureThreshold(p),
		result:           liveness,
	}
	if liveness {
		pr.successThreshold = 1
	}
	return pr
}

// observe records one attempt and reports whether the result changed.
func (pr *prober) observe(ok bool) bool {
	if ok {
		pr.okRun, pr.failRun = pr.okRun+1, 0
		if !pr.result && pr.okRun >= pr.successThreshold {
			pr.result, pr.passed = true, true
			return true
		}
		return false
	}
	pr.okRun, pr.failRun = 0, pr.failRun+1
	if pr.result && pr.failRun >= pr.failureThreshold {
		pr.result = false
		return true
	}
	return false
}

// next is the wait before the next attempt: the period, except that a
// readiness probe that has never passed is tried every second (at most
// every period).
func (pr *prober) next() time.Duration {
	if !pr.liveness && !pr.passed {
		return min(pr.period, time.Second)
	}
	return pr.period
}

func seconds(v, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

func threshold(v int32) int {
	return max(int(v), 1)
}

// failureThreshold is the probe's failureThreshold, 3 when unset as the
// API defaults it.
func failureThreshold(p *corev1.Probe) int {
	if p.FailureThreshold <= 0 {
		return 3
	}
	return int(p.FailureThreshold)
}

// probeSupported reports whether probeReadiness can run p.
func probeSupported(p *corev1.Probe) bool {
	return p != nil && (p.HTTPGet != nil || p.TCPSocket != nil)
}

// probeOnce runs one attempt: an HTTP status from 200 to 399 or a TCP
// connection is a success, as for the kubelet. A redirect is not followed;
// the kubelet counts one to another host as a success too.
func probeOnce(ctx context.Context, p *corev1.Probe, host netip.Addr, ports []corev1.ContainerPort) error {
	switch {
	case p.HTTPGet != nil:
		g := p.HTTPGet
		port, err := probePort(g.Port, ports)
		if err != nil {
			return err
		}
		h := host.String()
		if g.Host != "" {
			h = g.Host
		}
		scheme := strings.ToLower(string(g.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(h, strconv.Itoa(port))+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/lab")
		for _, hd := range g.HTTPHeaders {
			if strings.EqualFold(hd.Name, "Host") {
				req.Host = hd.Value
			} else {
				req.Header.Add(hd.Name, hd.Value)
			}
		}
		c := http.Client{
			Transport: &http.Transport{
				// The kubelet does not verify a probe's certificate either.
				TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
				DisableKeepAlives: true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with status %d", resp.StatusCode)
		}
		return nil
	case p.TCPSocket != nil:
		port, err := probePort(p.TCPSocket.Port, ports)
		if err != nil {
			return err
		}
		h := host.String()
		if p.TCPSocket.Host != "" {
			h = p.TCPSocket.Host
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(h, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return c.Close()
	}
	return nil
}

// probePort resolves a probe's port, which may name a container port.
func probePort(port intstr.IntOrString, ports []corev1.ContainerPort) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, p := range ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("probe port %q is not a container port", port.StrVal)
}
