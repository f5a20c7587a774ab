// Command kubectl-pharos is the kubectl plugin of Pharos: `kubectl pharos
// status | explain | validate | migrate-metallb | simulate-drain`. It reads
// the cluster with the standard kubectl flags (--kubeconfig, --context,
// -n, ...) and prints a table, or JSON or YAML with -o.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// exitError carries an exit code through cobra without a stack trace or
// a second error line: the command has printed what went wrong.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	root := newRoot(genericclioptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	if err := root.Execute(); err != nil {
		var e exitError
		if errors.As(err, &e) {
			os.Exit(e.code)
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// options are the flags every command shares.
type options struct {
	streams genericclioptions.IOStreams
	kube    *genericclioptions.ConfigFlags
	output  string
	lbClass string
}

func newRoot(streams genericclioptions.IOStreams) *cobra.Command {
	o := &options{streams: streams, kube: genericclioptions.NewConfigFlags(true)}
	root := &cobra.Command{
		Use:           "kubectl-pharos",
		Short:         "Inspect and configure Pharos, the bare-metal LoadBalancer",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	o.kube.AddFlags(root.PersistentFlags())
	root.PersistentFlags().StringVarP(&o.output, "output", "o", "", "output format: table (default), json or yaml")
	root.PersistentFlags().StringVar(&o.lbClass, "lb-class", "", "the loadBalancerClass the Pharos controller handles (its --lb-class); empty: Services without a class")
	root.AddCommand(newStatus(o), newExplain(o), newValidate(o), newMigrate(o), newDrain(o))
	return root
}
