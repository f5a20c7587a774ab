package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
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
// kubernetes Service's ClusterIPs and DNS names, and localhost.
func (l *Lab) writePKI() error {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: l.Prefix + "-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	ips := []net.IP{
		net.IP(l.Control.V4.AsSlice()), net.IP(l.Control.V6.AsSlice()),
		net.IP(ServiceV4.Addr().Next().AsSlice()), net.IP(ServiceV6.Addr().Next().AsSlice()),
		net.IPv4(127, 0, 0, 1), net.IPv6loopback,
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"},
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	certFile, keyFile := l.servingCert()
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{l.CAFile(), "CERTIFICATE", caDER, 0o644},
		{certFile, "CERTIFICATE", der, 0o644},
		{keyFile, "EC PRIVATE KEY", keyDER, 0o600},
	} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return err
		}
	}
	return nil
}
