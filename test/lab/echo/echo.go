// Package echo is the workload of the lab's pods: a tiny HTTP server that
// tells every client which pod and node answered and which source address
// the request arrived from. Tests read that line to check load-balancer
// behaviour (which backend was picked, and whether the client address was
// preserved or SNATed on the way).
package echo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Options says who this server claims to be and where it listens.
type Options struct {
	// Pod is the pod name reported in every answer and in X-Pharos-Pod.
	Pod string
	// Node is the node name reported in every answer.
	Node string
	// Ports are the TCP ports to serve on; empty means port 80.
	Ports []int
}

// HeaderPod is the response header that carries the pod name, so a client
// can tell the backend without parsing the body.
const HeaderPod = "X-Pharos-Pod"

// Handler answers every request, whatever its method or path, with exactly
// one line: "pod=<pod> node=<node> client=<remote ip:port>\n". The client is
// r.RemoteAddr, i.e. the source address as the server saw it, which is the
// point: it shows whether the path to the pod preserved the client address.
func Handler(pod, node string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := fmt.Sprintf("pod=%s node=%s client=%s\n", pod, node, r.RemoteAddr)
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set(HeaderPod, pod)
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte(body))
		}
	})
}

// Serve listens on every port of opts on all addresses, IPv4 and IPv6 (Go's
// ":port" is a dual-stack [::] socket, and IPv4 clients show up with their
// plain IPv4 address), and serves Handler until ctx is done. It returns nil
// after a clean shutdown, or the first listen or serve error.
func Serve(ctx context.Context, opts Options) error {
	ports := opts.Ports
	if len(ports) == 0 {
		ports = []int{80}
	}
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}
	for _, p := range ports {
		if p <= 0 || p > 65535 {
			closeAll()
			return fmt.Errorf("echo: invalid port %d", p)
		}
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			closeAll()
			return fmt.Errorf("echo: listen on port %d: %w", p, err)
		}
		listeners = append(listeners, l)
	}
	return serveListeners(ctx, opts, listeners)
}

// serveListeners serves Handler on already-open listeners; it exists so the
// test can use ports the kernel picked.
func serveListeners(ctx context.Context, opts Options, listeners []net.Listener) error {
	h := Handler(opts.Pod, opts.Node)
	errc := make(chan error, len(listeners))
	servers := make([]*http.Server, 0, len(listeners))
	for _, l := range listeners {
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout:       30 * time.Second,
		}
		servers = append(servers, srv)
		go func(l net.Listener) {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("echo: serve on %s: %w", l.Addr(), err)
				return
			}
			errc <- nil
		}(l)
	}

	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
		// One server stopped on its own (it can only be an error); take the
		// others down with it so the caller sees a clean failure.
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(shutCtx)
	}
	return first
}
