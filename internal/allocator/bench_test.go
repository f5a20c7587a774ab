package allocator

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/pharos-lb/pharos/internal/config"
)

// benchmarkFill assigns n Services in a fresh allocator per iteration and
// reports the cost of one assignment.
func benchmarkFill(b *testing.B, pool string, fam []config.Family, n int) float64 {
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = svc(fmt.Sprint("s", i), families(fam, SingleStack))
	}
	cfg := buildConfig(b, poolSpec{name: "p", addrs: []string{pool}})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := New()
		a.SetConfig(cfg)
		for _, r := range reqs {
			if _, err := a.Assign(r); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	return float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(n)
}

// BenchmarkAssignV6Slash64 fills 100,000 addresses of a /64.
func BenchmarkAssignV6Slash64(b *testing.B) {
	b.ReportMetric(benchmarkFill(b, "2001:db8:1::/64", v6, 100_000), "alloc_ns_per_op_v6_64")
}

// BenchmarkAssignV4Slash12 fills 100,000 addresses of a /12.
func BenchmarkAssignV4Slash12(b *testing.B) {
	b.ReportMetric(benchmarkFill(b, "198.16.0.0/12", v4, 100_000), "alloc_ns_per_op_v4_12")
}

// BenchmarkAssignV4Slash12Small is the same pool with 1,000 Services: the
// ratio against the 100,000 case shows how the cost per assignment grows.
func BenchmarkAssignV4Slash12Small(b *testing.B) {
	b.ReportMetric(benchmarkFill(b, "198.16.0.0/12", v4, 1_000), "alloc_ns_per_op_v4_12_1k")
}

// BenchmarkMapInsertBaseline stores 100,000 keys in a Go map, the cheapest
// possible bookkeeping, measured in the same run as a baseline.
func BenchmarkMapInsertBaseline(b *testing.B) {
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = fmt.Sprint("default/s", i)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m := map[string]netip.Addr{}
		for j, k := range keys {
			m[k] = netip.AddrFrom4([4]byte{198, 18, byte(j >> 8), byte(j)})
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "baseline_map_insert_ns_per_op")
}

// BenchmarkChurn releases and re-assigns in a pool that is 99% full, where
// a scanning allocator would be slowest.
func BenchmarkChurn(b *testing.B) {
	const n = 100_000
	a := newAllocator(b, poolSpec{name: "p", addrs: []string{"198.18.0.0/15"}})
	for i := 0; i < n; i++ {
		mustAssignB(b, a, svc(fmt.Sprint("s", i)))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := fmt.Sprint("s", (i*7919)%n)
		a.Release("default/" + key)
		mustAssignB(b, a, svc(key))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "alloc_churn_ns_per_op_100k")
}

func mustAssignB(b *testing.B, a *Allocator, r Request) {
	if _, err := a.Assign(r); err != nil {
		b.Fatal(err)
	}
}
