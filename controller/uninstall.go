package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
func deleteValuesConfig(args []string) {
	fs := flag.NewFlagSet("delete-values-config", flag.ExitOnError)
	selector := fs.String("selector", "", "label selector of the objects to delete, e.g. app.kubernetes.io/instance=pharos,pharos.io/from-values=true")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	keepPools := fs.String("keep-pools", "", "comma-separated names of IPAddressPools to keep")
	keepAdvs := fs.String("keep-l2advertisements", "", "comma-separated names of L2Advertisements to keep")
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
