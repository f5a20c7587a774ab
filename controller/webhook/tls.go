package webhook

import "crypto/tls"

// TLSOptions configure the webhook server's TLS: the certificate the
// CertManager keeps, and TLS 1.2 at least (written down rather than left
// to Go's default, which has changed across releases).
func TLSOptions(certs *CertManager) []func(*tls.Config) {
	return []func(*tls.Config){func(c *tls.Config) {
		c.GetCertificate = certs.GetCertificate
		c.MinVersion = tls.VersionTLS12
	}}
}
