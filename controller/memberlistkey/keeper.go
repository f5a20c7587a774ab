// Package memberlistkey keeps the key that encrypts the speakers' gossip in
// its Secret. The Helm chart renders the Secret empty, so that a chart
// rendered without cluster access (helm template, Argo CD, Flux) never
// replaces the key; the controller fills it once, and every speaker waits
// for it.
package memberlistkey

import (
	"context"
	"maps"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pharos-lb/pharos/controller/ownedsecret"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// The controller fills the memberlist key Secret (named; the chart creates
// it, so create serves only other installs). The marker next to the
// webhook's certificate grants secrets get;create;update in the namespace.

// Keeper makes sure the Secret holds a valid key. Every replica runs one
// (not leader-elected: speakers should not wait for an election); package
// ownedsecret makes the first writer win and the others find its key.
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
	lastErr := ""
	ownedsecret.Loop(ctx, interval, k.Ensure, func(err error) {
		switch {
		case err == nil:
			lastErr = ""
		case err.Error() != lastErr:
			logger.Error(err, "memberlist key not ensured; retrying", "secret", k.Secret.String())
			lastErr = err.Error()
		}
	})
	return nil
}

// Ensure writes a new key unless the Secret holds a valid one, keeping the
// Secret's other fields.
func (k *Keeper) Ensure(ctx context.Context) error {
	_, why, err := ownedsecret.Ensure(ctx, k.Reader, k.Writer, k.Secret, func(data map[string][]byte) (map[string][]byte, string, error) {
		_, invalid := speakerlist.ParseKey(data[speakerlist.KeySecretField])
		if invalid == nil {
			return nil, "", nil
		}
		key, err := speakerlist.NewKey()
		if err != nil {
			return nil, "", err
		}
		next := maps.Clone(data)
		if next == nil {
			next = map[string][]byte{}
		}
		next[speakerlist.KeySecretField] = key
		return next, invalid.Error(), nil
	})
	if err == nil && why != "" {
		log.FromContext(ctx).Info("memberlist key generated", "secret", k.Secret.String(), "previous", why)
	}
	return err
}
