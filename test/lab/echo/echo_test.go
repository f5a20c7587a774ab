package echo

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string) (string, http.Header) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp.Header
}

func TestServeDualStack(t *testing.T) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveListeners(ctx, Options{Pod: "web-1", Node: "n1"}, []net.Listener{l}) }()

	hosts := []string{"127.0.0.1"}
	if l6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		// This machine has IPv6 loopback, so check the IPv6 side as well.
		l6.Close()
		hosts = append(hosts, "::1")
	}
	for _, h := range hosts {
		body, hdr := get(t, "http://"+net.JoinHostPort(h, strconv.Itoa(port))+"/any/path")
		if hdr.Get(HeaderPod) != "web-1" {
			t.Errorf("%s: header %s = %q", h, HeaderPod, hdr.Get(HeaderPod))
		}
		prefix := "pod=web-1 node=n1 client=" + net.JoinHostPort(h, "")
		if !strings.HasPrefix(body, prefix) || !strings.HasSuffix(body, "\n") || strings.Count(body, "\n") != 1 {
			t.Errorf("%s: body %q, want one line starting with %q", h, body, prefix)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after cancel")
	}
}

func TestServeRejectsBadPort(t *testing.T) {
	if err := Serve(context.Background(), Options{Pod: "p", Node: "n", Ports: []int{70000}}); err == nil {
		t.Fatal("want error for port 70000")
	}
}
