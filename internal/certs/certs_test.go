package certs

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

var names = []string{"pharos-webhook.pharos-system.svc", "pharos-webhook.pharos-system.svc.cluster.local"}

func fresh(t *testing.T, p Policy, now time.Time) Bundle {
	t.Helper()
	b, err := p.Renew(Bundle{}, RenewCA, names, now)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheck(t *testing.T) {
	p := Policy{CALifetime: 300 * time.Hour, CertLifetime: 30 * time.Hour}
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	b := fresh(t, p, now)
	other := fresh(t, p, now)

	cases := []struct {
		name   string
		bundle Bundle
		names  []string
		at     time.Time
		want   Renewal
		why    string
	}{
		{"empty secret", Bundle{}, names, now, RenewCA, "CA: missing"},
		{"fresh bundle", b, names, now, Valid, ""},
		{"names in another order", b, []string{names[1], names[0]}, now, Valid, ""},
		{"service renamed", b, []string{"other.pharos-system.svc"}, now, RenewCert, "names"},
		{"an IP added", b, append([]string{"127.0.0.1"}, names...), now, RenewCert, "names"},
		// The certificate was issued with NotBefore an hour early, so its
		// lifetime is 31h: renewed when less than a third (10h20m) remains.
		{"cert with 11h left", b, names, now.Add(19 * time.Hour), Valid, ""},
		{"cert with 9h left", b, names, now.Add(21 * time.Hour), RenewCert, "serving certificate expires"},
		{"CA near its end", b, names, now.Add(250 * time.Hour), RenewCA, "CA expires"},
		{"clock before issue", b, names, now.Add(-2 * time.Hour), RenewCA, "CA expires"},
		{"cert from another CA", Bundle{KeyCACert: b[KeyCACert], KeyCAKey: b[KeyCAKey], KeyCert: other[KeyCert], KeyKey: other[KeyKey]}, names, now, RenewCert, "not signed by the current CA"},
		{"key of another cert", Bundle{KeyCACert: b[KeyCACert], KeyCAKey: b[KeyCAKey], KeyCert: b[KeyCert], KeyKey: other[KeyKey]}, names, now, RenewCert, "key does not match"},
		{"CA key swapped", Bundle{KeyCACert: b[KeyCACert], KeyCAKey: other[KeyCAKey], KeyCert: b[KeyCert], KeyKey: b[KeyKey]}, names, now, RenewCA, "key does not match"},
		{"garbage CA", Bundle{KeyCACert: []byte("not pem"), KeyCAKey: b[KeyCAKey]}, names, now, RenewCA, "not a PEM certificate"},
		{"serving cert used as CA", Bundle{KeyCACert: b[KeyCert], KeyCAKey: b[KeyKey]}, names, now, RenewCA, "not a CA"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why := p.Check(tc.bundle, tc.names, tc.at)
			if got != tc.want || !strings.Contains(why, tc.why) {
				t.Fatalf("Check = %v %q, want %v containing %q", got, why, tc.want, tc.why)
			}
		})
	}
}

func TestRenewKeepsCAAndServesTLS(t *testing.T) {
	p := Policy{CALifetime: 300 * time.Hour, CertLifetime: 30 * time.Hour}
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	b := fresh(t, p, now)

	later := now.Add(21 * time.Hour)
	r, _ := p.Check(b, names, later)
	nb, err := p.Renew(b, r, names, later)
	if err != nil {
		t.Fatal(err)
	}
	if string(nb[KeyCACert]) != string(b[KeyCACert]) {
		t.Fatal("renewing the serving certificate replaced the CA; the apiserver's caBundle would go stale")
	}
	if string(nb[KeyCert]) == string(b[KeyCert]) {
		t.Fatal("serving certificate not renewed")
	}
	if r, why := p.Check(nb, names, later); r != Valid {
		t.Fatalf("renewed bundle not valid: %s", why)
	}
	// What the apiserver does: verify the serving cert against caBundle.
	verify(t, CABundle(nb), nb, names[0], later)
}

func TestCARotationKeepsPreviousCATrusted(t *testing.T) {
	p := Policy{CALifetime: 300 * time.Hour, CertLifetime: 30 * time.Hour}
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	at := now.Add(250 * time.Hour)
	// The old CA's serving certificate, kept fresh by earlier renewals.
	old, err := p.Renew(fresh(t, p, now), RenewCert, names, at.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	nb, err := p.Renew(old, RenewCA, names, at)
	if err != nil {
		t.Fatal(err)
	}
	if string(nb[KeyPreviousCACert]) != string(old[KeyCACert]) {
		t.Fatal("the old CA was not kept as the previous CA")
	}
	bundle := CABundle(nb)
	// A replica that has not reloaded yet still serves the old cert; one
	// that has serves the new one. Both must verify against the bundle.
	verify(t, bundle, old, names[0], at)
	verify(t, bundle, nb, names[0], at)

	// Once the old CA has expired it is dropped at the next renewal.
	after := now.Add(400 * time.Hour)
	nb2, err := p.Renew(nb, RenewCert, names, after)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := nb2[KeyPreviousCACert]; ok {
		t.Fatal("an expired previous CA stayed in the bundle")
	}
}

func TestCertNeverOutlivesCA(t *testing.T) {
	p := Policy{CALifetime: 10 * time.Hour, CertLifetime: 100 * time.Hour}
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	b := fresh(t, p, now)
	ca, _ := parseCert(b[KeyCACert])
	c, _ := parseCert(b[KeyCert])
	if c.NotAfter.After(ca.NotAfter) {
		t.Fatalf("serving cert valid until %s, after its CA (%s)", c.NotAfter, ca.NotAfter)
	}
}

func verify(t *testing.T, caBundle []byte, b Bundle, name string, at time.Time) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caBundle) {
		t.Fatal("caBundle holds no certificate")
	}
	pair, err := tls.X509KeyPair(b[KeyCert], b[KeyKey])
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: at}); err != nil {
		t.Fatalf("serving certificate does not verify against the caBundle: %v", err)
	}
}
