package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pharos-lb/pharos/api/v1beta1"
	webhookpkg "github.com/pharos-lb/pharos/controller/webhook"
)

// checkWebhook is the `controller check-webhook` subcommand, run by the Helm
// chart's post-install hook before it creates the pools given in values. It
// waits until the apiserver gets an answer from the webhook: then a bad
// pool in values fails `helm install` with the webhook's own message,
// rather than with "failed calling webhook" because the controller had not
// started yet.
//
// It asks by a server-side dry-run create of a probe pool (nothing is
// stored) that only the webhook refuses: its schema is valid, its selector
// operator is not. A refusal from the webhook means it serves; an
// admission means the apiserver did not call it (its configuration is not
// registered yet, or failurePolicy Ignore hides an error), so it waits on.
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
		err := c.Create(ctx, webhookpkg.Probe(), client.DryRunAll)
		switch {
		case err != nil && strings.Contains(err.Error(), "denied the request"):
			fmt.Printf("the validating webhook answers (after %s)\n", time.Since(start).Round(time.Millisecond))
			return
		case err == nil:
			err = fmt.Errorf("a pool only the webhook refuses was admitted: the apiserver did not call the webhook (is the ValidatingWebhookConfiguration there, and its failurePolicy Fail?)")
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
