package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	const allocRun = "goos: linux\n" +
		"pkg: github.com/pharos-lb/pharos/internal/allocator\n" +
		"BenchmarkAssignV6Slash64-2   \t       3\t 371189768 ns/op\t      3712 alloc_ns_per_op_v6_64\t91882461 B/op\t 1400012 allocs/op\n" +
		"BenchmarkAssignV4Slash12-2   \t       3\t 350000000 ns/op\t      3500 alloc_ns_per_op_v4_12\t91882461 B/op\t 1400012 allocs/op\n" +
		"PASS\n" +
		"ok  \tgithub.com/pharos-lb/pharos/internal/allocator\t9.1s\n"

	tests := []struct {
		name     string
		existing string // summary file content before the run; "" for none
		args     []string
		input    string
		wantCode int
		want     map[string]float64 // summary file after a successful run
		wantOut  string             // expected in stdout
		wantErr  string             // expected in stderr
	}{
		{
			name:    "custom metrics only",
			input:   "BenchmarkX-2 3 100 ns/op 42 foo_bar 7 B/op 2 allocs/op 9.5 MB/s 5 nounderscore\n",
			want:    map[string]float64{"foo_bar": 42},
			wantOut: "foo_bar = 42\n",
		},
		{
			name:     "merge keeps other keys and overwrites reported ones",
			existing: `{"alloc_ns_per_op_v4_12": 1, "ctrl_p99_ms": 12.5}`,
			args:     []string{"-require", "alloc_ns_per_op_v6_64,alloc_ns_per_op_v4_12"},
			input:    allocRun,
			want:     map[string]float64{"alloc_ns_per_op_v6_64": 3712, "alloc_ns_per_op_v4_12": 3500, "ctrl_p99_ms": 12.5},
			wantOut:  "alloc_ns_per_op_v4_12 = 3500\nalloc_ns_per_op_v6_64 = 3712\n",
		},
		{
			name:    "repeated metric gives the median",
			input:   "BenchmarkX-2 1 1 ns/op 5 a_b\nBenchmarkX-2 1 1 ns/op 1 a_b\nBenchmarkX-2 1 1 ns/op 3 a_b\nBenchmarkX-2 1 1 ns/op 4 a_b\n",
			want:    map[string]float64{"a_b": 3.5},
			wantOut: "a_b = 3.5\n",
		},
		{
			name:    "set without input reads no stdin",
			args:    []string{"-set", "ctrl_p99_ms=12.25", "-set", "ctrl_services_per_s=800"},
			input:   "BenchmarkX-2 1 1 ns/op 5 not_read\n",
			want:    map[string]float64{"ctrl_p99_ms": 12.25, "ctrl_services_per_s": 800},
			wantOut: "ctrl_p99_ms = 12.25\nctrl_services_per_s = 800\n",
		},
		{
			name:    "set with stdin overrides the input",
			args:    []string{"-set", "a_b=9", "-"},
			input:   "BenchmarkX-2 1 1 ns/op 5 a_b 6 c_d\n",
			want:    map[string]float64{"a_b": 9, "c_d": 6},
			wantOut: "a_b = 9\nc_d = 6\n",
		},
		{
			name:     "FAIL line",
			existing: `{"a_b": 1}`,
			input:    "BenchmarkX-2 1 1 ns/op 5 a_b\n--- FAIL: BenchmarkY-2\nFAIL\n",
			wantCode: 1,
			wantErr:  "benchmark run failed",
		},
		{
			name:     "required figure missing",
			args:     []string{"-require", "alloc_ns_per_op_v6_64,x_y"},
			input:    allocRun,
			wantCode: 1,
			wantErr:  "missing from the input: x_y",
		},
		{
			name:     "no figures",
			input:    "PASS\nok  \tpkg\t0.1s\n",
			wantCode: 1,
			wantErr:  "no figures found",
		},
		{
			name:     "bad set value",
			args:     []string{"-set", "a_b=fast"},
			wantCode: 2,
			wantErr:  "not a finite number",
		},
		{
			name:     "corrupt summary is not overwritten",
			existing: `not json`,
			input:    "BenchmarkX-2 1 1 ns/op 5 a_b\n",
			wantCode: 1,
			wantErr:  "not a JSON object of numbers",
		},
		{
			name:    "result lines with odd shapes are ignored",
			input:   "BenchmarkX-2\nBenchmarkX-2 many 1 ns/op 5 a_b\nBenchmarkX-2 1 1 ns/op fast c_d\nBenchmarkZ 1 1 ns/op 2 e_f\n",
			want:    map[string]float64{"e_f": 2},
			wantOut: "e_f = 2\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "sub", "summary.json")
			if tc.existing != "" {
				if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(out, []byte(tc.existing), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"-out", out}, tc.args...), strings.NewReader(tc.input), &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tc.wantErr)
			}
			if !strings.Contains(stdout.String(), tc.wantOut) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tc.wantOut)
			}
			if tc.wantCode == 0 && len(tc.args) == 0 && !strings.HasPrefix(stdout.String(), tc.input) {
				t.Errorf("input not echoed: stdout %q", stdout.String())
			}
			data, err := os.ReadFile(out)
			if tc.wantCode != 0 {
				if tc.existing == "" && err == nil {
					t.Errorf("summary written although the run failed: %s", data)
				}
				if tc.existing != "" && string(data) != tc.existing {
					t.Errorf("summary changed although the run failed: %s", data)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]float64
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatalf("summary is not JSON: %v\n%s", err, data)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("summary = %s, want %v", data, tc.want)
			}
			entries, _ := os.ReadDir(filepath.Dir(out))
			if len(entries) != 1 {
				t.Errorf("temporary files left behind: %v", entries)
			}
		})
	}
}
