package dataplane

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pharos-lb/pharos/internal/netnstest"
)

// The kernel tests run in network namespaces named nsPrefix+..., created
// with ip netns add, so that nothing is written in the machine's own
// namespace and leftovers of a killed run can be found and removed. nft
// is used only as an outside judge of what the package wrote.

const nsPrefix = "pdp-"

var leftovers sync.Once

// requireKernel skips the test unless it can create namespaces and run
// nft.
func requireKernel(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to create network namespaces and program nftables (CI runs this package as root)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: needs %s to build and judge the lab: %v", tool, err)
		}
	}
	leftovers.Do(func() {
		entries, _ := os.ReadDir("/run/netns")
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), nsPrefix) {
				_ = exec.Command("ip", "netns", "del", e.Name()).Run()
			}
		}
	})
}

// labID returns a fresh random name part, e.g. "pdp-3fa91c".
func labID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return nsPrefix + hex.EncodeToString(b)
}

// newNS creates namespace name, removed when the test ends (pass or
// fail), and returns an open fd of it, closed before the removal.
func newNS(t *testing.T, name string) int {
	t.Helper()
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("deleting namespace %s: %v %s", name, err, out)
		}
	})
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening namespace %s: %v", name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// run runs a command and fails the test if it fails.
var run = netnstest.Run

// inNS runs fn inside namespace ns (see netnstest.InNS).
var inNS = netnstest.InNS

// nftTable is what `nft -j list table` says about one table.
type nftTable struct {
	exists   bool
	chains   map[string]int // chain -> rule count
	maps     map[string]int // map -> element count
	counters map[string]uint64
	rules    []string // every rule's JSON, to search in
}

// listTable lists table inet name in namespace ns with nft -j.
func listTable(t *testing.T, ns, name string) nftTable {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", name).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file or directory") {
			return nftTable{}
		}
		t.Fatalf("nft -j list table inet %s in %s: %v\n%s", name, ns, err, out)
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("parsing nft -j output: %v\n%s", err, out)
	}
	tab := nftTable{exists: true, chains: map[string]int{}, maps: map[string]int{}, counters: map[string]uint64{}}
	for _, item := range doc.Nftables {
		switch {
		case item["chain"] != nil:
			var c struct{ Name string }
			_ = json.Unmarshal(item["chain"], &c)
			tab.chains[c.Name] += 0
		case item["rule"] != nil:
			var r struct{ Chain string }
			_ = json.Unmarshal(item["rule"], &r)
			tab.chains[r.Chain]++
			tab.rules = append(tab.rules, string(item["rule"]))
		case item["map"] != nil:
			var m struct {
				Name string
				Elem []json.RawMessage
			}
			_ = json.Unmarshal(item["map"], &m)
			tab.maps[m.Name] = len(m.Elem)
		case item["counter"] != nil:
			var c struct {
				Name    string
				Packets uint64
			}
			_ = json.Unmarshal(item["counter"], &c)
			tab.counters[c.Name] = c.Packets
		}
	}
	return tab
}
