package webhook_test

import (
	"crypto/tls"
	"fmt"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/pharos-lb/pharos/internal/certs"
)

// TestWebhookServesTLS12AndNewerOnly: a client that offers only TLS 1.0
// or 1.1 is refused in the handshake; TLS 1.2 and 1.3 are served.
func TestWebhookServesTLS12AndNewerOnly(t *testing.T) {
	s := serve(t, "pharos-webhook-tls", certs.Policy{}, admissionregistrationv1.Fail)
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	for _, tc := range []struct {
		name     string
		min, max uint16
		served   bool
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{MinVersion: tc.min, MaxVersion: tc.max, InsecureSkipVerify: true})
		if err == nil {
			if got := conn.ConnectionState().Version; got != tc.max {
				t.Errorf("%s: negotiated %x", tc.name, got)
			}
			_ = conn.Close()
		}
		if served := err == nil; served != tc.served {
			t.Errorf("%s: served %v (%v), want %v", tc.name, served, err, tc.served)
		}
	}
}
