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
// supported() tells the caller beforehand. Liveness and startup probes are
// not run at all: the lab restarts a process when it exits, not when a
// probe says it hangs.
//
// The kubelet waits a full period between attempts from the start; the lab
// tries a starting container every second (at most every period) until it
// first succeeds, so that a rollout in a test does not wait ten seconds per
// pod. After that, periodSeconds, timeoutSeconds and both thresholds hold.
func probeReadiness(ctx context.Context, p *corev1.Probe, host netip.Addr, ports []corev1.ContainerPort, set func(bool)) {
	period := seconds(p.PeriodSeconds, 10)
	timeout := seconds(p.TimeoutSeconds, 1)
	successes, failures := threshold(p.SuccessThreshold), threshold(p.FailureThreshold)
	ready, everReady := false, false
	okRun, failRun := 0, 0
	wait := time.Duration(p.InitialDelaySeconds) * time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := probeOnce(pctx, p, host, ports)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			okRun, failRun = okRun+1, 0
			if !ready && okRun >= successes {
				ready, everReady = true, true
				set(true)
			}
		} else {
			okRun, failRun = 0, failRun+1
			if ready && failRun >= failures {
				ready = false
				set(false)
			}
		}
		wait = period
		if !everReady {
			wait = min(period, time.Second)
		}
	}
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
