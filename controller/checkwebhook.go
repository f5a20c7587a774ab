package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// checkWebhook is the `controller check-webhook` subcommand, run by the Helm
// chart's post-install hook before it creates the pools given in values. It
// waits until the apiserver gets an answer from the webhook: then a bad
// pool in values fails `helm install` with the webhook's own message,
// rather than with "failed calling webhook" because the controller had not
// started yet.
//
// It asks by a server-side dry-run create of a probe pool: nothing is
// stored. Any answer from the webhook, admit or deny, means it serves.
func checkWebhook(args []string) {
	fs := flag.NewFlagSet("check-webhook", flag.ExitOnError)
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig (default: in-cluster or $KUBECONFIG)")
	_ = fs.Parse(args)
	if *kubeconfig != "" {
		_ = os.Setenv("KUBECONFIG", *kubeconfig)
	}
	c := pharosClient()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	start := time.Now()
	last := ""
	for {
		probe := &v1beta1.IPAddressPool{
			ObjectMeta: metav1.ObjectMeta{Name: "pharos-webhook-check"},
			Spec:       v1beta1.IPAddressPoolSpec{Addresses: []string{"2001:db8:ffff:ffff::/128"}},
		}
		err := c.Create(ctx, probe, client.DryRunAll)
		switch {
		case err == nil, apierrors.IsAlreadyExists(err), strings.Contains(err.Error(), "denied the request"):
			fmt.Printf("the validating webhook answers (after %s)\n", time.Since(start).Round(time.Millisecond))
			return
		case apierrors.IsForbidden(err) && !strings.Contains(err.Error(), "webhook"):
			fail(fmt.Errorf("check-webhook may not create IPAddressPools (dry-run): %w", err))
		}
		if msg := err.Error(); msg != last {
			fmt.Printf("waiting for the validating webhook: %s\n", msg)
			last = msg
		}
		select {
		case <-ctx.Done():
			fail(fmt.Errorf("the validating webhook did not answer within %s; last error: %s (check the controller pods: kubectl -n <namespace> get pods,endpoints)", *timeout, last))
		case <-time.After(time.Second):
		}
	}
}

// pharosClient is a direct (uncached) client for Pharos's types, from the
// in-cluster config or $KUBECONFIG, for the one-shot subcommands.
func pharosClient() client.Client {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fail(err)
	}
	scheme := runtime.NewScheme()
	if err := v1beta1.AddToScheme(scheme); err != nil {
		fail(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fail(err)
	}
	return c
}
