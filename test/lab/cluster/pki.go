package cluster

import (
	"os"
	"path/filepath"
	"time"

	"github.com/pharos-lb/pharos/internal/certs"
)

// CAFile is the lab CA's certificate, which signed the apiserver's serving
// certificate: what a client in the lab verifies the apiserver with (the
// kubeconfigs of Pharos pods do; the components' own still skip the check).
func (l *Lab) CAFile() string { return filepath.Join(l.pkiDir(), "ca.crt") }

func (l *Lab) servingCert() (cert, key string) {
	return filepath.Join(l.pkiDir(), "serving.crt"), filepath.Join(l.pkiDir(), "serving.key")
}

// writePKI creates the lab CA and the apiserver's serving certificate for
// every name and address a client may use: its LAN addresses, the
// kubernetes Service's ClusterIPs and DNS names, and localhost. It uses the
// same issuer as the controller's webhook certificates.
func (l *Lab) writePKI() error {
	hosts := []string{
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost",
		l.Control.V4.String(), l.Control.V6.String(),
		ServiceV4.Addr().Next().String(), ServiceV6.Addr().Next().String(),
		"127.0.0.1", "::1",
	}
	tenYears := 10 * 365 * 24 * time.Hour
	b, err := certs.Policy{CALifetime: tenYears, CertLifetime: tenYears}.Renew(certs.Bundle{}, certs.RenewCA, hosts, time.Now())
	if err != nil {
		return err
	}
	certFile, keyFile := l.servingCert()
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{l.CAFile(), b[certs.KeyCACert], 0o644},
		{certFile, b[certs.KeyCert], 0o644},
		{keyFile, b[certs.KeyKey], 0o600},
	} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}
