package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// deleteValuesConfig is the `controller delete-values-config` subcommand,
// run by the Helm chart's pre-delete hook. The pools and L2Advertisements
// given in values are created by a post-install hook (so the webhook can
// validate them, see check-webhook), and Helm never deletes hook
// resources by itself; without this step `helm uninstall` would leave them
// behind unless an upgrade had adopted them first. It deletes exactly the
// objects that carry the release's selector.
func deleteValuesConfig(args []string) {
	fs := flag.NewFlagSet("delete-values-config", flag.ExitOnError)
	selector := fs.String("selector", "", "label selector of the objects to delete, e.g. app.kubernetes.io/instance=pharos,pharos.io/from-values=true")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	_ = fs.Parse(args)
	sel, err := labels.Parse(*selector)
	if err != nil || sel.Empty() {
		fail(fmt.Errorf("delete-values-config needs a non-empty --selector: %v", err))
	}
	c := pharosClient()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	// Advertisements first: a pool that is no longer announced is
	// withdrawn before its addresses are taken from the Services.
	for _, list := range []client.ObjectList{&v1beta1.L2AdvertisementList{}, &v1beta1.IPAddressPoolList{}} {
		if err := c.List(ctx, list, client.MatchingLabelsSelector{Selector: sel}); err != nil {
			fail(fmt.Errorf("list: %w", err))
		}
		var objs []client.Object
		switch l := list.(type) {
		case *v1beta1.L2AdvertisementList:
			for i := range l.Items {
				objs = append(objs, &l.Items[i])
			}
		case *v1beta1.IPAddressPoolList:
			for i := range l.Items {
				objs = append(objs, &l.Items[i])
			}
		}
		for _, o := range objs {
			if err := c.Delete(ctx, o); client.IgnoreNotFound(err) != nil {
				fail(fmt.Errorf("delete %T %s: %w", o, client.ObjectKeyFromObject(o), err))
			}
			fmt.Fprintf(os.Stdout, "deleted %T %s\n", o, client.ObjectKeyFromObject(o))
		}
	}
}
