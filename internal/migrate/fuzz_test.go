package migrate

import (
	"os"
	"testing"
)

// FuzzRead feeds arbitrary bytes through the whole pipeline: read, convert,
// render, and the problems' lines. It must never panic, and what it outputs
// must be what Pharos accepts. The seeds are the documented examples and
// the committed corpus in testdata/fuzz/FuzzRead.
func FuzzRead(f *testing.F) {
	for _, bad := range []bool{false, true} {
		for _, path := range exampleFiles(f, bad) {
			data, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sources, problems := Read("fuzz.yaml", data)
		res := Convert(sources, Options{})
		if _, err := res.YAML(); err != nil {
			t.Fatalf("rendering: %v", err)
		}
		for _, p := range append(problems, res.Problems...) {
			_ = p.String()
		}
		if errs := outputErrors(&res); len(errs) > 0 {
			t.Fatalf("Pharos rejects converted objects: %v", errs)
		}
	})
}
