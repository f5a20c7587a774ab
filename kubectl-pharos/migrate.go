package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pharos-lb/pharos/internal/migrate"
)

func readAll(r io.Reader) ([]byte, error) { return io.ReadAll(r) }

// metallbKinds are the MetalLB kinds --from-cluster lists, newest
// BGPPeer version first (a cluster serves both; the items are the same).
var metallbKinds = []schema.GroupVersionKind{
	{Group: "metallb.io", Version: "v1beta1", Kind: "IPAddressPool"},
	{Group: "metallb.io", Version: "v1beta1", Kind: "L2Advertisement"},
	{Group: "metallb.io", Version: "v1beta1", Kind: "BGPAdvertisement"},
	{Group: "metallb.io", Version: "v1beta1", Kind: "Community"},
	{Group: "metallb.io", Version: "v1beta1", Kind: "BFDProfile"},
	{Group: "metallb.io", Version: "v1beta2", Kind: "BGPPeer"},
}

func newMigrate(o *options) *cobra.Command {
	var (
		files       []string
		fromCluster bool
		secretsNS   string
	)
	cmd := &cobra.Command{
		Use:   "migrate-metallb (-f FILE... | --from-cluster)",
		Short: "Convert MetalLB's configuration and Service annotations into Pharos's",
		Long: `Convert MetalLB's custom resources (IPAddressPool, L2Advertisement,
BGPPeer, BGPAdvertisement, Community, BFDProfile) and its Service annotations
into Pharos's. The Pharos manifests go to standard output; every MetalLB
field that cannot be converted, and why, goes to standard error, one line
each. The exit status is 1 when anything would be lost.`,
		Example: `  kubectl pharos migrate-metallb -f metallb-config.yaml > pharos-config.yaml
  kubectl pharos migrate-metallb --from-cluster > pharos-config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				sources  []migrate.Source
				problems []migrate.Problem
			)
			switch {
			case len(files) > 0 && fromCluster:
				return fmt.Errorf("-f and --from-cluster exclude each other")
			case fromCluster:
				objs, err := o.listMetalLB(cmd.Context())
				if err != nil {
					return err
				}
				sources, problems = migrate.FromUnstructured(objs)
			case len(files) == 1 && files[0] == "-":
				data, err := readAll(o.streams.In)
				if err != nil {
					return err
				}
				sources, problems = migrate.Read("-", data)
			case len(files) > 0:
				sources, problems = migrate.ReadFiles(files)
			default:
				return fmt.Errorf("nothing to convert: pass -f FILE or --from-cluster")
			}
			res := migrate.Convert(sources, migrate.Options{Namespace: secretsNS})
			out, err := res.YAML()
			if err != nil {
				return err
			}
			if _, err := o.streams.Out.Write(out); err != nil {
				return err
			}
			failed := false
			for _, p := range append(problems, res.Problems...) {
				fmt.Fprintf(o.streams.ErrOut, "%s: %s\n", p.Severity, p)
				failed = failed || p.Severity == migrate.Error
			}
			if failed {
				fmt.Fprintln(o.streams.ErrOut, "some of MetalLB's configuration cannot be converted (the errors above); the rest is on standard output")
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "MetalLB manifests to convert: files or directories (repeat; - reads standard input)")
	cmd.Flags().BoolVar(&fromCluster, "from-cluster", false, "read MetalLB's objects and the annotated Services from the cluster")
	cmd.Flags().StringVar(&secretsNS, "secrets-namespace", migrate.DefaultNamespace, "the namespace Pharos runs in, where BGP password Secrets must be copied")
	return cmd
}

// listMetalLB lists MetalLB's objects and the Services of every namespace,
// as plain maps. Kinds the cluster does not serve are left out.
func (o *options) listMetalLB(ctx context.Context) ([]map[string]any, error) {
	c, err := o.client()
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, gvk := range metallbKinds {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := c.List(ctx, list); err != nil {
			if meta.IsNoMatchError(err) {
				continue
			}
			return nil, fmt.Errorf("listing MetalLB's %s: %w", gvk.Kind, err)
		}
		for _, item := range list.Items {
			out = append(out, item.Object)
		}
	}
	var svcs corev1.ServiceList
	if err := c.List(ctx, &svcs); err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	for i := range svcs.Items {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&svcs.Items[i])
		if err != nil {
			return nil, err
		}
		m["apiVersion"], m["kind"] = "v1", "Service"
		out = append(out, m)
	}
	return out, nil
}
