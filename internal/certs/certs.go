// Package certs issues and checks the webhook's TLS material: a private CA
// and a serving certificate signed by it. It is pure (no Kubernetes client),
// so the rotation policy is unit-tested without an apiserver; the controller
// stores the result in a Secret and injects the CA into the
// ValidatingWebhookConfiguration.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Secret data keys. They follow the kubernetes.io/tls convention, plus the
// CA's key (needed to re-issue the serving certificate) and the previous CA,
// which stays trusted until it expires so that a replica still serving a
// certificate from the old CA keeps working during a CA rotation.
const (
	KeyCACert         = "ca.crt"
	KeyCAKey          = "ca.key"
	KeyCert           = "tls.crt"
	KeyKey            = "tls.key"
	KeyPreviousCACert = "ca-previous.crt"
)

// Policy says how long certificates live and when they are renewed.
type Policy struct {
	// CALifetime is the validity of a new CA (default 5 years).
	CALifetime time.Duration
	// CertLifetime is the validity of a new serving certificate (default
	// one year).
	CertLifetime time.Duration
	// RenewFraction: a certificate is renewed once less than this fraction
	// of its lifetime remains (default 1/3). Renewing long before expiry
	// leaves room for a controller that was down for weeks.
	RenewFraction float64
}

// Defaults fills unset fields.
func (p Policy) Defaults() Policy {
	if p.CALifetime <= 0 {
		p.CALifetime = 5 * 365 * 24 * time.Hour
	}
	if p.CertLifetime <= 0 {
		p.CertLifetime = 365 * 24 * time.Hour
	}
	if p.RenewFraction <= 0 || p.RenewFraction >= 1 {
		p.RenewFraction = 1.0 / 3
	}
	return p
}

// Bundle is the TLS material as PEM, keyed like the Secret's data.
type Bundle map[string][]byte

// Renewal is what Check found must change.
type Renewal int

const (
	// Valid means nothing is to be done.
	Valid Renewal = iota
	// RenewCert means the CA is fine; issue a new serving certificate.
	RenewCert
	// RenewCA means issue a new CA and a serving certificate from it.
	RenewCA
)

// Check decides whether b can serve the given DNS names (or IP addresses)
// at now, and if not,
// what must be renewed and why (for the log and the event).
func (p Policy) Check(b Bundle, dnsNames []string, now time.Time) (Renewal, string) {
	p = p.Defaults()
	ca, _, err := parsePair(b[KeyCACert], b[KeyCAKey])
	if err != nil {
		return RenewCA, "CA: " + err.Error()
	}
	if !ca.IsCA {
		return RenewCA, "CA: certificate is not a CA"
	}
	if due(ca, now, p.RenewFraction) {
		return RenewCA, fmt.Sprintf("CA expires %s", ca.NotAfter.UTC().Format(time.RFC3339))
	}
	cert, _, err := parsePair(b[KeyCert], b[KeyKey])
	if err != nil {
		return RenewCert, "serving certificate: " + err.Error()
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return RenewCert, "serving certificate is not signed by the current CA"
	}
	if due(cert, now, p.RenewFraction) {
		return RenewCert, fmt.Sprintf("serving certificate expires %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	want := slices.Clone(dnsNames)
	got := slices.Clone(cert.DNSNames)
	for _, ip := range cert.IPAddresses {
		got = append(got, ip.String())
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		return RenewCert, fmt.Sprintf("serving certificate names %v, want %v", got, want)
	}
	return Valid, ""
}

// due reports whether less than frac of the certificate's lifetime remains
// (or it is not yet valid, which a clock step backwards can cause).
func due(c *x509.Certificate, now time.Time, frac float64) bool {
	if now.Before(c.NotBefore) {
		return true
	}
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotAfter.Sub(now) < time.Duration(float64(life)*frac)
}

// Renew returns b with what r asks renewed, keeping everything else. A new
// CA moves the old one (if still valid) to KeyPreviousCACert.
func (p Policy) Renew(b Bundle, r Renewal, dnsNames []string, now time.Time) (Bundle, error) {
	p = p.Defaults()
	out := Bundle{}
	for k, v := range b {
		out[k] = v
	}
	if r == Valid {
		return out, nil
	}
	if r == RenewCA {
		if old, err := parseCert(b[KeyCACert]); err == nil && old.IsCA && now.Before(old.NotAfter) {
			out[KeyPreviousCACert] = b[KeyCACert]
		} else {
			delete(out, KeyPreviousCACert)
		}
		certPEM, keyPEM, err := newCA(now, p.CALifetime)
		if err != nil {
			return nil, err
		}
		out[KeyCACert], out[KeyCAKey] = certPEM, keyPEM
	}
	ca, caKey, err := parsePair(out[KeyCACert], out[KeyCAKey])
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	certPEM, keyPEM, err := issue(ca, caKey, dnsNames, now, min(p.CertLifetime, ca.NotAfter.Sub(now)))
	if err != nil {
		return nil, err
	}
	out[KeyCert], out[KeyKey] = certPEM, keyPEM
	// A previous CA that has expired is of no use in the bundle.
	if prev, err := parseCert(out[KeyPreviousCACert]); err != nil || !now.Before(prev.NotAfter) {
		delete(out, KeyPreviousCACert)
	}
	return out, nil
}

// CABundle is what the ValidatingWebhookConfiguration must trust: the
// current CA, then the previous one while it is still valid.
func CABundle(b Bundle) []byte {
	var out bytes.Buffer
	out.Write(b[KeyCACert])
	if prev := b[KeyPreviousCACert]; len(prev) > 0 {
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteByte('\n')
		}
		out.Write(prev)
	}
	return out.Bytes()
}

func newCA(now time.Time, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("pharos-webhook-ca@%d", now.Unix())},
		NotBefore:             now.Add(-backdate(lifetime)),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

func issue(ca *x509.Certificate, caKey any, dnsNames []string, now time.Time, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(dnsNames) == 0 {
		return nil, nil, errors.New("no DNS names to issue a serving certificate for")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		NotBefore:    now.Add(-backdate(lifetime)),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range dnsNames {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

// backdate is how far before now a certificate starts to be valid, so that
// an apiserver whose clock is a little behind accepts it: an hour, or a
// quarter of a short lifetime.
func backdate(lifetime time.Duration) time.Duration {
	return min(time.Hour, lifetime/4)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func encode(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	if len(certPEM) == 0 {
		return nil, errors.New("missing")
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// parsePair parses a certificate and checks that the key belongs to it.
func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, any, error) {
	c, err := parseCert(certPEM)
	if err != nil {
		return nil, nil, err
	}
	if len(keyPEM) == 0 {
		return nil, nil, errors.New("key missing")
	}
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		return nil, nil, errors.New("key is not PEM")
	}
	var key any
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("key type not supported")
	}
	if eq, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(c.PublicKey) {
		return nil, nil, errors.New("key does not match the certificate")
	}
	return c, key, nil
}
