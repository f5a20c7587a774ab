package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// deleteValuesConfig is the `controller delete-values-config` subcommand,
// run by the Helm chart's hooks. The pools and L2Advertisements given in
// values are created by a post-install hook on install (so the webhook can
// validate them, see check-webhook), which Helm's bookkeeping does not
// track, so the chart tells Helm to keep them and deletes them itself:
// after an upgrade or rollback those that values no longer name (--keep-*),
// and all of them before an uninstall. It deletes only objects that match
// the release's selector.
//
// A pool that Services use stays Terminating after its deletion, held by
// the controller's finalizer v1beta1.FinalizerPoolInUse, until they release
// its addresses. That is wanted after an upgrade (the Services keep their
// addresses), but an uninstall takes them away: with --force the command
// also removes that finalizer from the pools it deleted, while the
// controller and the speakers still run, so the pools go at once, the
// Services lose the addresses and the speakers withdraw them, and nothing
// is left Terminating with no controller to release it.
func deleteValuesConfig(args []string) {
	fs := flag.NewFlagSet("delete-values-config", flag.ExitOnError)
	selector := fs.String("selector", "", "label selector of the objects to delete, e.g. app.kubernetes.io/instance=pharos,pharos.io/from-values=true")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	keepPools := fs.String("keep-pools", "", "comma-separated names of IPAddressPools to keep")
	keepAdvs := fs.String("keep-l2advertisements", "", "comma-separated names of L2Advertisements to keep")
	force := fs.Bool("force", false, "also remove the pool-in-use finalizer from the IPAddressPools deleted, so that Services using them lose their addresses now (for uninstall)")
	_ = fs.Parse(args)
	sel, err := labels.Parse(*selector)
	if err != nil {
		fail(fmt.Errorf("delete-values-config: --selector: %w", err))
	}
	if sel.Empty() {
		fail(fmt.Errorf("delete-values-config needs a non-empty --selector"))
	}
	c := pharosClient()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	// Advertisements first: a pool that is no longer announced is
	// withdrawn before its addresses are taken from the Services.
	keep := map[string]map[string]bool{"pool": names(*keepPools), "l2": names(*keepAdvs)}
	for _, list := range []client.ObjectList{&v1beta1.L2AdvertisementList{}, &v1beta1.IPAddressPoolList{}} {
		if err := c.List(ctx, list, client.MatchingLabelsSelector{Selector: sel}); err != nil {
			fail(fmt.Errorf("list: %w", err))
		}
		var objs []client.Object
		switch l := list.(type) {
		case *v1beta1.L2AdvertisementList:
			for i := range l.Items {
				if !keep["l2"][l.Items[i].Name] {
					objs = append(objs, &l.Items[i])
				}
			}
		case *v1beta1.IPAddressPoolList:
			for i := range l.Items {
				if !keep["pool"][l.Items[i].Name] {
					objs = append(objs, &l.Items[i])
				}
			}
		}
		for _, o := range objs {
			if err := c.Delete(ctx, o); client.IgnoreNotFound(err) != nil {
				fail(fmt.Errorf("delete %T %s: %w", o, client.ObjectKeyFromObject(o), err))
			}
			fmt.Fprintf(os.Stdout, "deleted %T %s\n", o, client.ObjectKeyFromObject(o))
			if p, ok := o.(*v1beta1.IPAddressPool); ok && *force {
				if err := releasePool(ctx, c, p.Name); err != nil {
					fail(fmt.Errorf("removing the finalizer %s from IPAddressPool %s: %w", v1beta1.FinalizerPoolInUse, p.Name, err))
				}
			}
		}
	}
}

// names parses a comma-separated list into a set.
func names(list string) map[string]bool {
	set := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			set[n] = true
		}
	}
	return set
}

// releasePool removes the pool-in-use finalizer from a deleted pool, so
// that it goes although Services still use it; a pool already gone, or
// without the finalizer, is left alone.
func releasePool(ctx context.Context, c client.Client, name string) error {
	for {
		p := &v1beta1.IPAddressPool{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, p); err != nil {
			return client.IgnoreNotFound(err)
		}
		if !controllerutil.ContainsFinalizer(p, v1beta1.FinalizerPoolInUse) {
			return nil
		}
		orig := p.DeepCopy()
		controllerutil.RemoveFinalizer(p, v1beta1.FinalizerPoolInUse)
		err := c.Patch(ctx, p, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		switch {
		case err == nil:
			fmt.Fprintf(os.Stdout, "released IPAddressPool %s (removed the finalizer %s)\n", name, v1beta1.FinalizerPoolInUse)
			return nil
		case apierrors.IsConflict(err):
			// The controller wrote the pool's status meanwhile: again.
			continue
		default:
			return client.IgnoreNotFound(err)
		}
	}
}
