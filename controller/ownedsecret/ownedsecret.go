// Package ownedsecret keeps data that the controller generates (the webhook
// certificate, the speakers' memberlist key) in a Secret that every replica
// shares. Replicas coordinate through the Secret's resourceVersion: the
// first to write wins and the others use what it wrote.
package ownedsecret

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pharos-lb/pharos/internal/kubecheck"
)

// Fill looks at a Secret's data (nil when the Secret does not exist) and
// returns the data to write and why, or nil data when it is fine as it is.
type Fill func(data map[string][]byte) (next map[string][]byte, why string, err error)

// Ensure reads the Secret through reader and, if fill asks for new data,
// writes it through writer (creating the Secret if it is missing). It
// returns the Secret's data as it now is, and why it wrote ("" if it did
// not). A conflicting write means another replica wrote first: the Secret
// is read again and fill asked again.
func Ensure(ctx context.Context, reader client.Reader, writer client.Writer, key types.NamespacedName, fill Fill) (map[string][]byte, string, error) {
	for attempt := 0; ; attempt++ {
		var sec corev1.Secret
		err := reader.Get(ctx, key, &sec)
		exists := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, "", kubecheck.Hint(err, "controller", "get", "secrets", key.String())
		}
		next, why, err := fill(sec.Data)
		if err != nil || next == nil {
			return sec.Data, "", err
		}
		if exists {
			sec.Data = next
			err = writer.Update(ctx, &sec)
		} else {
			sec = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Type: corev1.SecretTypeOpaque, Data: next}
			err = writer.Create(ctx, &sec)
		}
		switch {
		case err == nil:
			return next, why, nil
		case (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) && attempt < 3:
			continue
		case exists:
			return nil, "", kubecheck.Hint(err, "controller", "update", "secrets", key.String())
		default:
			return nil, "", kubecheck.Hint(err, "controller", "create", "secrets", key.String())
		}
	}
}

// Loop runs sync at once and then every interval until ctx ends. After a
// failure it retries sooner, from a second doubling up to interval.
// report gets each outcome (nil for success), so the caller can log a
// change of state once rather than every pass.
func Loop(ctx context.Context, interval time.Duration, sync func(context.Context) error, report func(error)) {
	retry := time.Second
	for {
		wait := interval
		err := sync(ctx)
		report(err)
		if err != nil {
			wait, retry = retry, min(retry*2, interval)
		} else {
			retry = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
