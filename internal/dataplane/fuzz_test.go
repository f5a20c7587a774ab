package dataplane

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzPlan builds configs from arbitrary bytes and checks that Plan never
// panics, and that every frontend of a valid config appears exactly once
// in the dispatch maps, with exactly one counter.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{6, 0, 80, 2, 1, 0, 2, 1, 1})
	f.Add([]byte{17, 1, 53, 0, 3, 200, 1, 7, 6, 0, 80})
	f.Add([]byte{132, 0, 0, 9, 255, 255, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		addr := func(v6 bool, b byte) netip.Addr {
			if v6 {
				return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: next() % 4, 15: b})
			}
			return netip.AddrFrom4([4]byte{198, 18, next() % 4, b})
		}
		var cfg Config
		for len(data) > 0 && len(cfg.Frontends) < 16 {
			proto := Protocol(next())
			v6 := next()%2 == 1
			fe := Frontend{Service: "ns/s" + string(rune('a'+next()%8)), VIP: addr(v6, next()%4), Protocol: proto,
				Port: uint16(next()) % 4, PreserveClient: next()%2 == 0}
			for range next() % 5 {
				b := Backend{Addr: addr(next()%4 != 0 == v6, next()), Port: uint16(next()) % 3, Local: next()%2 == 0}
				fe.Backends = append(fe.Backends, b)
			}
			for range next() % 3 {
				p, _ := addr(next()%4 != 0 == v6, next()).Prefix(int(next()) % 129)
				fe.SourceRanges = append(fe.SourceRanges, p)
			}
			cfg.Frontends = append(cfg.Frontends, fe)
		}
		rs, err := Plan(cfg)
		if err != nil {
			if cfg.Validate() == nil {
				t.Fatalf("Plan failed on a config Validate accepts: %v", err)
			}
			return
		}
		_ = rs.String()
		seen := map[string]int{}
		for _, m := range rs.Maps {
			if !strings.HasPrefix(m.Name, "frontends") {
				continue
			}
			for _, e := range m.Elements {
				seen[key{e.VIP, e.Protocol, e.Port}.id()]++
			}
		}
		counters := map[string]int{}
		for _, c := range rs.Counters {
			counters[c.Name]++
		}
		if len(seen) != len(cfg.Frontends) || len(counters) != len(cfg.Frontends) {
			t.Fatalf("%d frontends, %d in the maps, %d counters", len(cfg.Frontends), len(seen), len(counters))
		}
		for _, fe := range cfg.Frontends {
			id := fe.key().id()
			if seen[id] != 1 || counters["drop_"+id] != 1 {
				t.Errorf("frontend %s: %d map elements, %d counters; want 1 and 1", id, seen[id], counters["drop_"+id])
			}
		}
	})
}
