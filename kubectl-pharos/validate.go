package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/pharos-lb/pharos/internal/admit"
)

func newValidate(o *options) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "validate -f FILE...",
		Short: "Check Pharos manifests offline with exactly the webhook's rules and messages",
		Long: `Check Pharos manifests offline: every object of the files, in order, as the
validating webhook would check it if the files were applied in that order.
Refusals and warnings are worded as the webhook words them. Unknown kinds,
unknown fields and unreadable YAML are errors. The exit status is 1 when
anything is refused.`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return fmt.Errorf("no files: pass -f FILE (or -f - for standard input)")
			}
			var in []admit.File
			for _, name := range files {
				var data []byte
				var err error
				if name == "-" {
					data, err = readAll(o.streams.In)
				} else {
					data, err = os.ReadFile(name) //nolint:gosec // reading the files the user names is the command's job
				}
				if err != nil {
					return err
				}
				in = append(in, admit.File{Name: name, Data: data})
			}
			lines, n := admit.ValidateFiles(in)
			refused := 0
			for _, l := range lines {
				if l.Err != nil {
					refused++
				}
				fmt.Fprintln(o.streams.Out, l.String())
			}
			if refused > 0 {
				fmt.Fprintf(o.streams.ErrOut, "%d of the files' documents refused\n", refused)
				return exitError{code: 1}
			}
			fmt.Fprintf(o.streams.Out, "%d object(s) valid\n", n)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest files to check (repeat; - reads standard input)")
	return cmd
}
