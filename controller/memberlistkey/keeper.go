// Package memberlistkey keeps the key that encrypts the speakers' gossip in
// its Secret. The Helm chart renders the Secret empty, so that a chart
// rendered without cluster access (helm template, Argo CD, Flux) never
// replaces the key; the controller fills it once, and every speaker waits
// for it.
package memberlistkey

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pharos-lb/pharos/internal/kubecheck"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// The controller fills the memberlist key Secret (named; the chart creates
// it, so create serves only other installs). The marker next to the
// webhook's certificate grants secrets get;create;update in the namespace.

// Keeper makes sure the Secret holds a valid key. Every replica runs one
// (not leader-elected: speakers should not wait for an election); writes
// carry the resourceVersion read, so the first writer wins and the others
// find its key.
type Keeper struct {
	// Secret is the Secret's namespace and name.
	Secret types.NamespacedName
	// Reader reads from the apiserver (no Secret informer); Writer writes.
	Reader client.Reader
	Writer client.Client
	// Interval between checks (default one minute), in case someone
	// empties the Secret.
	Interval time.Duration
}

// NeedLeaderElection is false: every replica keeps the key.
func (k *Keeper) NeedLeaderElection() bool { return false }

// Start checks at once, then every Interval, until ctx ends.
func (k *Keeper) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("memberlist-key")
	interval := k.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	retry, lastErr := time.Second, ""
	for {
		wait := interval
		if err := k.Ensure(ctx); err != nil {
			if err.Error() != lastErr {
				logger.Error(err, "memberlist key not ensured; retrying", "secret", k.Secret.String())
				lastErr = err.Error()
			}
			wait, retry = retry, min(retry*2, interval)
		} else {
			retry, lastErr = time.Second, ""
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Ensure writes a new key unless the Secret holds a valid one.
func (k *Keeper) Ensure(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		var sec corev1.Secret
		err := k.Reader.Get(ctx, k.Secret, &sec)
		exists := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return kubecheck.Hint(err, "controller", "get", "secrets", k.Secret.String())
		}
		_, invalid := speakerlist.ParseKey(sec.Data[speakerlist.KeySecretField])
		if invalid == nil {
			return nil
		}
		key, err := speakerlist.NewKey()
		if err != nil {
			return err
		}
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		sec.Data[speakerlist.KeySecretField] = key
		if exists {
			err = k.Writer.Update(ctx, &sec)
		} else {
			sec.ObjectMeta = metav1.ObjectMeta{Namespace: k.Secret.Namespace, Name: k.Secret.Name}
			sec.Type = corev1.SecretTypeOpaque
			err = k.Writer.Create(ctx, &sec)
		}
		switch {
		case err == nil:
			log.FromContext(ctx).Info("memberlist key generated", "secret", k.Secret.String(), "previous", invalid.Error())
			return nil
		case (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) && attempt < 3:
			continue // another replica wrote first; check its key
		case exists:
			return kubecheck.Hint(err, "controller", "update", "secrets", k.Secret.String())
		default:
			return kubecheck.Hint(err, "controller", "create", "secrets", k.Secret.String())
		}
	}
}
