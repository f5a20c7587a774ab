package main

import (
	"bytes"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pharos-lb/pharos/internal/inspect"
)

// tabulate aligns tab-separated columns.
func tabulate(s string) string {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	_, _ = w.Write([]byte(s))
	_ = w.Flush()
	return b.String()
}

func newStatus(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Pools with their usage per family; Services with address, pool, announcing nodes, protocol and health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.readCluster(cmd.Context())
			if err != nil {
				return err
			}
			return o.print(o.streams.Out, inspect.Status(c))
		},
	}
}

func newExplain(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "explain svc/NAME",
		Short: "Why a Service is pending, or how it is served: pools, allocation, election, BGP, forwarding; every problem with its fix",
		Long: `Why a Service is pending, or how it is served: its endpoints, each pool and why it matches or not,
the controller's decision, the layer-2 election (candidates in rank order, and why every other node
is out), the BGP sessions from BGPNodeStatus, the forwarding mode and the speakers' Announced
condition; every problem with its fix.

The election is computed with the speakers' code from the objects the apiserver holds. Which
interfaces are up only the speakers know: explain takes every interface to be up, and says a
node's interface is down only when the speakers report that no node has one up (Announced
reason InterfaceDown).`,
		Example: `  kubectl pharos explain svc/web -n shop
  kubectl pharos explain web -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if kind, n, ok := strings.Cut(name, "/"); ok {
				if kind != "svc" && kind != "service" && kind != "services" {
					return fmt.Errorf("explain takes a Service (svc/NAME), not %s", kind)
				}
				name = n
			}
			ns, err := o.namespace()
			if err != nil {
				return err
			}
			c, err := o.readCluster(cmd.Context())
			if err != nil {
				return err
			}
			e, err := inspect.Explain(c, ns, name)
			if err != nil {
				return err
			}
			if o.output == "" || o.output == "table" {
				_, err = fmt.Fprint(o.streams.Out, e.String())
				return err
			}
			return o.print(o.streams.Out, e)
		},
	}
}

func newDrain(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "simulate-drain NODE",
		Short: "Which addresses a drain of NODE would move, and to which node (nothing is changed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.readCluster(cmd.Context())
			if err != nil {
				return err
			}
			r, err := inspect.Drain(c, args[0])
			if err != nil {
				return err
			}
			return o.print(o.streams.Out, r)
		},
	}
}
