package forwarding

import (
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/pharos-lb/pharos/internal/speaker"
)

// TestForwardingWritesHealsAndRemovesItsTable runs the announcer against a
// real kernel, in a network namespace of its own, and judges with nft: the
// winner of the address gets the table with the address in it, a flushed
// table is rewritten within the resync period, the condition text names
// the path, and Close removes the table.
func TestForwardingWritesHealsAndRemovesItsTable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to create a network namespace and program nftables (CI runs it as root)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("skipped: needs nft to judge the table")
	}
	// Named after this process, so that runs side by side never meet;
	// leftovers of runs that died are removed.
	ns := "pfw-" + strconv.Itoa(os.Getpid())
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			if pid, ok := strings.CutPrefix(e.Name(), "pfw-"); ok {
				if n, err := strconv.Atoi(pid); err == nil && unix.Kill(n, 0) != nil {
					_ = exec.Command("ip", "netns", "del", e.Name()).Run()
				}
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	nft := func(args ...string) string {
		out, _ := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
		return string(out)
	}

	st := speaker.Compute(snapshot())
	a := st.Lookup(netip.MustParseAddr(vip4))
	node := a.Election.Winner
	f := New(Options{Node: node, NetNS: fd, Resync: 200 * time.Millisecond})
	f.Apply(st)
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 5 s: %s", what)
			}
		}
	}
	waitFor("the table names "+vip4, func() bool { return strings.Contains(nft("list", "table", "inet", "pharos"), vip4) })
	if rep := f.Describe(a); !rep.Applies || !rep.Announced || rep.Reason != "" || !strings.Contains(rep.Message, "forwarded directly to the endpoints by node "+node) {
		t.Errorf("report %+v", rep)
	}

	// The metrics: a sync observed, one frontend per address of this
	// node, and the Service's drop counter read from the kernel.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(f.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
		if mf.GetName() == "pharos_forwarding_dropped_packets_total" {
			if m := mf.GetMetric(); len(m) != 1 || m[0].GetLabel()[0].GetValue() != "default/web" {
				t.Errorf("dropped packets %v, want one series for default/web", m)
			}
		}
	}
	for _, name := range []string{"pharos_forwarding_sync_duration_seconds", "pharos_forwarding_frontends", "pharos_forwarding_dropped_packets_total"} {
		if !got[name] {
			t.Errorf("metric %s missing (have %v)", name, got)
		}
	}

	nft("flush", "table", "inet", "pharos")
	if strings.Contains(nft("list", "chain", "inet", "pharos", "nat_prerouting"), "vmap") {
		t.Fatal("the flush did not take")
	}
	waitFor("the flushed table rewritten", func() bool {
		return strings.Contains(nft("list", "chain", "inet", "pharos", "nat_prerouting"), "vmap")
	})

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if out := nft("list", "tables"); strings.Contains(out, "pharos") {
		t.Errorf("the table outlives Close: %s", out)
	}
}

// TestForwardingWithoutCapabilityReports: a node that cannot program
// nftables says so in the condition, for the addresses it carries.
func TestForwardingWithoutCapabilityReports(t *testing.T) {
	st := speaker.Compute(snapshot())
	a := st.Lookup(netip.MustParseAddr(vip4))
	f := New(Options{Node: a.Election.Winner, NetNS: -1})
	defer f.Close()
	f.Apply(st)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rep := f.Describe(a)
		if rep.Reason == ReasonForwardingFailed {
			if !strings.Contains(rep.Message, "cannot program nftables") {
				t.Errorf("message %q", rep.Message)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("report %+v, want %s", rep, ReasonForwardingFailed)
		}
	}
}
