package migrate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// metallbTestdata is MetalLB's documented examples, written out by hand.
const metallbTestdata = "../../test/testdata/metallb"

// exampleFiles lists the example files: the good ones, or those of bad/.
func exampleFiles(t testing.TB, bad bool) []string {
	t.Helper()
	dir := metallbTestdata
	if bad {
		dir = filepath.Join(dir, "bad")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example files in %s: %v", dir, err)
	}
	return files
}

// convertFile reads and converts one file on its own, naming it by its path
// under test/testdata/metallb so that the golden files do not depend on
// where the test runs.
func convertFile(t *testing.T, path string) (Result, []Problem) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name, _ := filepath.Rel(metallbTestdata, path)
	sources, problems := Read(filepath.ToSlash(name), data)
	return Convert(sources, Options{}), problems
}

// goldenText is what a golden file holds: the problems, one per comment
// line with its severity, then the output YAML.
func goldenText(t *testing.T, res Result, readProblems []Problem) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range append(readProblems, res.Problems...) {
		b.WriteString("# " + p.Severity.String() + ": " + p.String() + "\n")
	}
	out, err := res.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() > 0 && len(out) > 0 {
		b.WriteString("---\n")
	}
	b.Write(out)
	return b.Bytes()
}

// TestGolden converts each documented MetalLB example, and each bad input,
// on its own and compares the problems and the Pharos YAML with
// testdata/golden. Run with -update to rewrite them, then read the diff.
func TestGolden(t *testing.T) {
	for _, bad := range []bool{false, true} {
		for _, path := range exampleFiles(t, bad) {
			name := filepath.Base(path)
			if bad {
				name = "bad-" + name
			}
			t.Run(name, func(t *testing.T) {
				res, problems := convertFile(t, path)
				got := goldenText(t, res, problems)
				golden := filepath.Join("testdata", "golden", strings.TrimSuffix(name, ".yaml")+".golden")
				if *update {
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -run TestGolden -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from %s (run with -update and read the diff):\n--- got\n%s\n--- want\n%s", path, golden, got, want)
				}
			})
		}
	}
}
