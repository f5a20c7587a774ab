// Command invalidconfig counts the cases of the invalid-configuration suite
// (test/testdata/invalid) and checks each offline, as `kubectl pharos
// validate -f` does (admit.ValidateFiles): it fails if validate admits an
// object that a case expects refused, other than the known gap
// (cases.ValidateAdmits) that only the CRDs' schema refuses. The webhook's
// side of the suite runs with the controller's tests
// (controller/webhook/invalid_test.go). It prints the figures for
// hack/benchmerge: invalid_config_cases, and how many the CRD schema
// refuses before the webhook and how many validate admits.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/pharos-lb/pharos/test/bench/figures"
	"github.com/pharos-lb/pharos/test/bench/invalidconfig/cases"
)

// minCases is the size the suite may not shrink below.
const minCases = 100

func main() {
	dir := flag.String("dir", cases.Dir(), "the suite's directory")
	flag.Parse()
	all, err := cases.Load(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "invalidconfig:", err)
		os.Exit(1)
	}
	failed, schema, gaps := 0, 0, 0
	for _, c := range all {
		if _, err := cases.Check(c); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL %s: %v\n", c.File, err)
			failed++
		}
		for _, r := range c.Refusals {
			if !r.Webhook() {
				schema++
				break
			}
		}
		if c.Gap() != "" {
			gaps++
		}
	}
	if failed > 0 || len(all) < minCases {
		fmt.Printf("FAIL: %d of %d cases failed offline; the suite needs at least %d\n", failed, len(all), minCases)
		os.Exit(1)
	}
	figures.Report("InvalidConfigCases", "invalid_config_cases", float64(len(all)))
	figures.Report("InvalidConfigSchemaCases", "invalid_config_schema_cases", float64(schema))
	figures.Report("InvalidConfigValidateGaps", "invalid_config_validate_gaps", float64(gaps))
}
