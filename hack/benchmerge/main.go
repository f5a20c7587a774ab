// Command benchmerge collects the figures of a benchmark run into one JSON
// file, so that the results of several runs (allocator, controller, ...)
// end up side by side.
//
// It reads Go benchmark output from the files given as arguments, or from
// standard input, and echoes it to standard output as it goes. From every
// benchmark result line it takes the custom metrics: those whose unit is a
// lower-case identifier with an underscore, such as
//
//	BenchmarkAssignV6Slash64-2  3  371189768 ns/op  3712 alloc_ns_per_op_v6_64  91882461 B/op
//
// which yields alloc_ns_per_op_v6_64 = 3712. The standard units (ns/op,
// B/op, allocs/op, MB/s) are not figures. A metric reported more than once
// (with -count > 1) is summarised by its median. Figures measured elsewhere
// can be added with -set key=value.
//
// The figures are merged into the flat JSON object of numbers in -out:
// keys that this run does not report keep their value. The file is replaced
// atomically, with sorted keys, and the updated keys are printed as
// "key = value".
//
// It fails, writing nothing, if the input has FAIL lines, if a key named in
// -require is missing, or if there are no figures at all.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

const defaultOut = "_output/bench/summary.json"

// metricUnit is the form of a figure's name: a unit such as ns/op is not one.
var metricUnit = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func isFigure(unit string) bool {
	return metricUnit.MatchString(unit) && strings.Contains(unit, "_")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// setFlags collects repeated -set key=value flags.
type setFlags map[string]float64

func (s setFlags) String() string { return "" }

func (s setFlags) Set(v string) error {
	key, val, ok := strings.Cut(v, "=")
	key, val = strings.TrimSpace(key), strings.TrimSpace(val)
	if !ok || key == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	if !isFigure(key) {
		return fmt.Errorf("key %q: want lower-case letters, digits and at least one underscore, for example ctrl_p99_ms", key)
	}
	f, err := strconv.ParseFloat(val, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("value of %s: %q is not a finite number", key, val)
	}
	s[key] = f
	return nil
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchmerge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", defaultOut, "JSON file to merge the figures into")
	require := fs.String("require", "", "comma-separated keys that the input must report")
	sets := setFlags{}
	fs.Var(sets, "set", "key=value: a figure measured elsewhere (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: benchmerge [-out FILE] [-require k1,k2] [-set key=value]... [FILE|-]...")
		fmt.Fprintln(stderr, "Reads Go benchmark output (standard input when no FILE is given and no -set is used),")
		fmt.Fprintln(stderr, "echoes it, and merges its custom metrics into the JSON object in -out.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "benchmerge: "+format+"\n", a...)
		return 1
	}

	inputs := fs.Args()
	if len(inputs) == 0 && len(sets) == 0 {
		inputs = []string{"-"}
	}
	values := map[string][]float64{}
	var failures []string
	for _, name := range inputs {
		r := stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				return fail("%v", err)
			}
			defer f.Close()
			r = f
		}
		fails, err := scan(r, stdout, values)
		if err != nil {
			return fail("reading %s: %v", name, err)
		}
		failures = append(failures, fails...)
	}

	if len(failures) > 0 {
		return fail("the benchmark run failed (%d FAIL line(s), first: %q); %s left unchanged", len(failures), failures[0], *out)
	}
	figures := map[string]float64{}
	for k, vs := range values {
		figures[k] = median(vs)
	}
	for k, v := range sets {
		figures[k] = v
	}
	var missing []string
	for _, k := range strings.Split(*require, ",") {
		if k = strings.TrimSpace(k); k != "" {
			if _, ok := figures[k]; !ok {
				missing = append(missing, k)
			}
		}
	}
	if len(missing) > 0 {
		return fail("required figure(s) missing from the input: %s; did the benchmarks run (check -bench and -run)? %s left unchanged", strings.Join(missing, ", "), *out)
	}
	if len(figures) == 0 {
		return fail("no figures found: no benchmark line reported a metric with a unit like alloc_ns_per_op, and no -set was given; %s left unchanged", *out)
	}

	if err := merge(*out, figures); err != nil {
		return fail("%v", err)
	}
	keys := make([]string, 0, len(figures))
	for k := range figures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(stdout, "benchmerge: updated %d figure(s) in %s:\n", len(keys), *out)
	for _, k := range keys {
		fmt.Fprintf(stdout, "%s = %s\n", k, strconv.FormatFloat(figures[k], 'f', -1, 64))
	}
	return 0
}

// scan echoes r to echo line by line, adds the figures of every benchmark
// result line to values and returns the FAIL lines.
func scan(r io.Reader, echo io.Writer, values map[string][]float64) ([]string, error) {
	var failures []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(echo, line)
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "FAIL") || strings.HasPrefix(trimmed, "--- FAIL") {
			failures = append(failures, trimmed)
			continue
		}
		for k, v := range parseResult(line) {
			values[k] = append(values[k], v)
		}
	}
	return failures, sc.Err()
}

// parseResult returns the figures of one benchmark result line:
// "BenchmarkName-N <iterations> (<value> <unit>)...". Other lines yield nil.
func parseResult(line string) map[string]float64 {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return nil
	}
	if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
		return nil
	}
	out := map[string]float64{}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return nil // not a result line after all
		}
		if isFigure(f[i+1]) && !math.IsNaN(v) && !math.IsInf(v, 0) {
			out[f[i+1]] = v
		}
	}
	return out
}

func median(vs []float64) float64 {
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// merge writes the figures over those already in path, atomically.
func merge(path string, figures map[string]float64) error {
	all := map[string]float64{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(data, &all); err != nil {
			return fmt.Errorf("%s is not a JSON object of numbers (%w); fix or delete it", path, err)
		}
	}
	for k, v := range figures {
		all[k] = v
	}
	data, err = json.MarshalIndent(all, "", "  ") // maps marshal with sorted keys
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
