// Package figures prints benchmark figures in the line format that
// hack/benchmerge collects into _output/bench/summary.json.
package figures

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Report prints one figure: "BenchmarkNAME 1 0 ns/op VALUE KEY".
func Report(name, key string, v float64) {
	fmt.Printf("Benchmark%s 1 0 ns/op %.4g %s\n", name, v, key)
}

// Percentile returns the p-th percentile (nearest rank) of v, or 0 for no
// values.
func Percentile(v []float64, p int) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

// ProcStatusKB reads a kB field of /proc/PID/status ("VmHWM:", say), or 0.
func ProcStatusKB(pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field) {
			v, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return v
		}
	}
	return 0
}
