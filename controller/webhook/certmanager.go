package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pharos-lb/pharos/controller/ownedsecret"
	"github.com/pharos-lb/pharos/internal/certs"
	"github.com/pharos-lb/pharos/internal/kubecheck"
)

// The controller keeps its webhook certificate in a Secret of its own
// namespace and puts the CA into its ValidatingWebhookConfiguration. The
// Helm chart creates both, so create is needed only for other installs.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update,namespace=pharos-system
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;update

// CertOptions say where the webhook's TLS material lives.
type CertOptions struct {
	// Namespace of the Secret and of the Service.
	Namespace string
	// SecretName is the Secret that holds the CA and serving certificate,
	// shared by every replica.
	SecretName string
	// ServiceName is the Service in front of the webhook; the certificate
	// is issued for its DNS names.
	ServiceName string
	// ExtraHosts are more names or IP addresses for the certificate, for
	// an apiserver that calls the webhook by URL (a controller run outside
	// the cluster, or tests).
	ExtraHosts []string
	// ConfigurationName is the ValidatingWebhookConfiguration whose
	// webhooks get the CA bundle.
	ConfigurationName string
	// Policy sets lifetimes and when to renew.
	Policy certs.Policy
	// Interval is how often the Secret and the configuration are checked
	// (default one minute); after a failure, retries start at a second and
	// back off to Interval.
	Interval time.Duration
}

// CertManager generates, rotates and serves the webhook certificate. Every
// replica runs one (it is not leader-elected: every replica serves the
// webhook). They coordinate through the Secret's resourceVersion: the
// first to write a new bundle wins, the others load it.
type CertManager struct {
	opts   CertOptions
	reader client.Reader // the apiserver, not a cache: no Secret informer
	writer client.Client
	now    func() time.Time

	cert    atomic.Pointer[tls.Certificate]
	lastErr atomic.Pointer[string]
}

// NewCertManager returns a manager that reads through reader and writes
// through writer.
func NewCertManager(reader client.Reader, writer client.Client, opts CertOptions) *CertManager {
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	return &CertManager{opts: opts, reader: reader, writer: writer, now: time.Now}
}

// DNSNames are the names the serving certificate is issued for.
func (m *CertManager) DNSNames() []string {
	svc := m.opts.ServiceName + "." + m.opts.Namespace + ".svc"
	return append([]string{svc, svc + ".cluster.local"}, m.opts.ExtraHosts...)
}

// NeedLeaderElection is false: every replica serves the webhook.
func (m *CertManager) NeedLeaderElection() bool { return false }

// Start keeps the certificate valid and the CA bundle injected until ctx
// ends.
func (m *CertManager) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("webhook-certs")
	ownedsecret.Loop(ctx, m.opts.Interval, m.Sync, func(err error) {
		if err == nil {
			if m.lastErr.Swap(nil) != nil {
				logger.Info("webhook certificate ready", "secret", m.opts.Namespace+"/"+m.opts.SecretName)
			}
			return
		}
		msg := err.Error()
		if prev := m.lastErr.Swap(&msg); prev == nil || *prev != msg {
			logger.Error(err, "webhook certificate not ready; retrying")
		}
	})
	return nil
}

// Sync makes one pass: renew the Secret's bundle if needed, load it, and
// inject the CA bundle into the webhook configuration.
func (m *CertManager) Sync(ctx context.Context) error {
	bundle, err := m.ensureSecret(ctx)
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(bundle[certs.KeyCert], bundle[certs.KeyKey])
	if err != nil {
		return fmt.Errorf("load the serving certificate from Secret %s/%s: %w", m.opts.Namespace, m.opts.SecretName, err)
	}
	// The apiserver must trust a new CA before this replica serves a
	// certificate from it; the other way round, every call in between
	// would fail its TLS handshake.
	if err := m.injectCABundle(ctx, certs.CABundle(bundle)); err != nil {
		return err
	}
	m.cert.Store(&pair)
	return nil
}

// ensureSecret returns a valid bundle from the Secret, renewing it first if
// needed.
func (m *CertManager) ensureSecret(ctx context.Context) (certs.Bundle, error) {
	key := types.NamespacedName{Namespace: m.opts.Namespace, Name: m.opts.SecretName}
	renewed := ""
	data, why, err := ownedsecret.Ensure(ctx, m.reader, m.writer, key, func(data map[string][]byte) (map[string][]byte, string, error) {
		now := m.now()
		renewal, why := m.opts.Policy.Check(data, m.DNSNames(), now)
		if renewal == certs.Valid {
			return nil, "", nil
		}
		renewed = map[certs.Renewal]string{certs.RenewCA: "CA and serving certificate", certs.RenewCert: "serving certificate"}[renewal]
		next, err := m.opts.Policy.Renew(data, renewal, m.DNSNames(), now)
		return next, why, err
	})
	if err != nil {
		return nil, err
	}
	if why != "" {
		log.FromContext(ctx).Info("webhook certificate renewed", "secret", key.String(), "why", why, "renewed", renewed)
	}
	return data, nil
}

// injectCABundle sets caBundle on every webhook of the configuration that
// calls our Service (or a URL, as in tests), leaving others alone.
func (m *CertManager) injectCABundle(ctx context.Context, caBundle []byte) error {
	if m.opts.ConfigurationName == "" {
		return nil
	}
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	if err := m.reader.Get(ctx, types.NamespacedName{Name: m.opts.ConfigurationName}, &cfg); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("ValidatingWebhookConfiguration %q not found: the webhook serves, but the apiserver will not call it until it exists (the Helm chart creates it; check --webhook-configuration)", m.opts.ConfigurationName)
		}
		return kubecheck.Hint(err, "controller", "get", "validatingwebhookconfigurations.admissionregistration.k8s.io", m.opts.ConfigurationName)
	}
	changed := false
	for i := range cfg.Webhooks {
		cc := &cfg.Webhooks[i].ClientConfig
		if s := cc.Service; s != nil && (s.Name != m.opts.ServiceName || s.Namespace != m.opts.Namespace) {
			continue
		}
		if !bytes.Equal(cc.CABundle, caBundle) {
			cc.CABundle = caBundle
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := m.writer.Update(ctx, &cfg); err != nil {
		return kubecheck.Hint(err, "controller", "update", "validatingwebhookconfigurations.admissionregistration.k8s.io", m.opts.ConfigurationName)
	}
	log.FromContext(ctx).Info("CA bundle injected", "validatingWebhookConfiguration", m.opts.ConfigurationName)
	return nil
}

// GetCertificate is the TLS server's certificate source; it always returns
// the latest loaded certificate, so a renewal needs no restart.
func (m *CertManager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("the webhook certificate is not loaded yet")
}

// ReadyCheck fails until a certificate is loaded and while the last pass
// failed (the CA bundle may then not match what this replica serves), so
// the Service sends the apiserver's calls only to replicas that can answer
// them.
func (m *CertManager) ReadyCheck(*http.Request) error {
	if e := m.lastErr.Load(); e != nil {
		return errors.New(*e)
	}
	if m.cert.Load() == nil {
		return errors.New("webhook certificate not loaded yet")
	}
	return nil
}
