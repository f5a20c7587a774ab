package dataplane

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// newDataplane creates a namespace and a Dataplane programming it, closed
// when the test ends.
func newDataplane(t *testing.T) (*Dataplane, string) {
	t.Helper()
	requireKernel(t)
	ns := labID()
	fd := newNS(t, ns)
	d, err := New(Options{NetNS: fd})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, ns
}

var kernelConfig = Config{Frontends: []Frontend{
	{Service: "default/web", VIP: vip4, Protocol: TCP, Port: 80,
		Backends: []Backend{{Addr: pod4a, Port: 8080}, {Addr: pod4b, Port: 8080, Local: true}}},
	{Service: "default/web", VIP: vip6, Protocol: TCP, Port: 80,
		SourceRanges: []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/48")},
		Backends:     []Backend{{Addr: pod6a, Port: 8080}}},
	{Service: "default/dns", VIP: vip4, Protocol: UDP, Port: 53,
		SourceRanges: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}},
}}

func TestKernelSyncWritesThePlan(t *testing.T) {
	d, ns := newDataplane(t)
	if err := d.Sync(kernelConfig); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	rs, _ := Plan(kernelConfig)
	got := listTable(t, ns, DefaultTable)
	for _, c := range rs.Chains {
		if n, ok := got.chains[c.Name]; !ok || n != len(c.Rules) {
			t.Errorf("chain %s: %d rules (present %v), want %d", c.Name, n, ok, len(c.Rules))
		}
	}
	if len(got.chains) != len(rs.Chains) {
		t.Errorf("nft lists %d chains, want %d: %v", len(got.chains), len(rs.Chains), got.chains)
	}
	for _, m := range rs.Maps {
		if got.maps[m.Name] != len(m.Elements) {
			t.Errorf("map %s: %d elements, want %d", m.Name, got.maps[m.Name], len(m.Elements))
		}
	}
	for _, c := range rs.Counters {
		if _, ok := got.counters[c.Name]; !ok {
			t.Errorf("counter %s missing; nft has %v", c.Name, got.counters)
		}
	}
	all := strings.Join(got.rules, "\n")
	if seed := fmt.Sprintf(`"seed": %d`, HashSeed); !strings.Contains(all, seed) {
		t.Errorf("no rule hashes with the fixed seed (%s); rules:\n%s", seed, all)
	}
	for _, want := range []string{`"jhash"`, `"masquerade"`, `"dnat"`, `"reject"`, `"198.18.201.2"`, `"2001:db8:201::2"`} {
		if !strings.Contains(all, want) {
			t.Errorf("no rule has %s; rules:\n%s", want, all)
		}
	}
	if intact, err := d.Check(); err != nil || !intact {
		t.Errorf("Check right after Sync = %v, %v; want true", intact, err)
	}
	// Idempotent: the same config again is fine and still intact.
	if err := d.Sync(kernelConfig); err != nil {
		t.Fatalf("second Sync: %v", err)
	}
	if intact, err := d.Check(); err != nil || !intact {
		t.Errorf("Check after a second Sync = %v, %v; want true", intact, err)
	}
}

func TestKernelOtherTablesUntouched(t *testing.T) {
	d, ns := newDataplane(t)
	run(t, "ip", "netns", "exec", ns, "nft", "add table inet other")
	run(t, "ip", "netns", "exec", ns, "nft", "add chain inet other keep { type filter hook input priority 0 ; }")
	run(t, "ip", "netns", "exec", ns, "nft", "add rule inet other keep tcp dport 22 counter accept")
	before := run(t, "ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", "other")

	if err := d.Sync(kernelConfig); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := d.Sync(Config{}); err != nil {
		t.Fatalf("Sync of an empty config: %v", err)
	}
	if got := listTable(t, ns, DefaultTable); !got.exists || len(got.chains) != 0 || len(got.maps) != 0 {
		t.Errorf("after an empty Sync the table has %v chains, %v maps; want an empty table", got.chains, got.maps)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := listTable(t, ns, DefaultTable); got.exists {
		t.Errorf("table inet %s still exists after Close", DefaultTable)
	}
	if after := run(t, "ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", "other"); after != before {
		t.Errorf("table inet other changed:\nbefore %s\nafter  %s", before, after)
	}
}

func TestKernelCheckSeesTamperingAndSyncRepairs(t *testing.T) {
	d, ns := newDataplane(t)
	if err := d.Sync(kernelConfig); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	for _, tamper := range []string{
		"flush table inet pharos",
		"delete element inet pharos frontends4 { 198.18.200.10 . tcp . 80 }",
		"flush chain inet pharos nat_postrouting",
		"delete table inet pharos",
	} {
		t.Run(tamper, func(t *testing.T) {
			run(t, "ip", "netns", "exec", ns, "nft", tamper)
			if intact, err := d.Check(); err != nil || intact {
				t.Errorf("Check after %q = %v, %v; want false", tamper, intact, err)
			}
			if err := d.Sync(kernelConfig); err != nil {
				t.Fatalf("Sync after %q: %v", tamper, err)
			}
			if intact, err := d.Check(); err != nil || !intact {
				t.Errorf("Check after repairing Sync = %v, %v; want true", intact, err)
			}
		})
	}
}

func TestKernelThousandFrontendsOneTransaction(t *testing.T) {
	d, ns := newDataplane(t)
	var cfg Config
	for i := range 1000 {
		vip := netip.AddrFrom4([4]byte{198, 18, 100 + byte(i/250), byte(i%250) + 1})
		f := Frontend{Service: fmt.Sprintf("load/svc-%d", i), VIP: vip, Protocol: TCP, Port: 443,
			Backends: []Backend{{Addr: netip.AddrFrom4([4]byte{198, 19, byte(i / 250), byte(i%250) + 1}), Port: 8443}}}
		if i%2 == 0 {
			f.Backends = append(f.Backends, Backend{Addr: netip.AddrFrom4([4]byte{198, 19, 10 + byte(i/250), byte(i%250) + 1}), Port: 8443, Local: true})
		}
		cfg.Frontends = append(cfg.Frontends, f)
	}
	start := time.Now()
	if err := d.Sync(cfg); err != nil {
		t.Fatalf("Sync of 1,000 frontends: %v", err)
	}
	took := time.Since(start)
	rs, _ := Plan(cfg)
	t.Logf("Sync of 1,000 frontends (%d chains, %d rules) in one batch took %v", len(rs.Chains), countRules(rs), took)
	start = time.Now()
	if intact, err := d.Check(); err != nil || !intact {
		t.Errorf("Check = %v, %v; want true", intact, err)
	}
	t.Logf("Check took %v", time.Since(start))
	if got := listTable(t, ns, DefaultTable); got.maps[mapFrontends4] != 1000 {
		t.Errorf("map %s has %d elements, want 1000", mapFrontends4, got.maps[mapFrontends4])
	}
}

func countRules(rs *Ruleset) (n int) {
	for _, c := range rs.Chains {
		n += len(c.Rules)
	}
	return n
}
