package speakerlist

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var portSeq atomic.Int32

func newMember(t *testing.T, name string, key []byte) *List {
	t.Helper()
	port := 17946 + int(portSeq.Add(1))
	l, err := New(Options{NodeName: name, BindAddr: "127.0.0.1", Port: port, SecretKey: key,
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Shutdown() })
	return l
}

func addr(l *List) string { return fmt.Sprintf("127.0.0.1:%d", l.opts.Port) }

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if f() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("after %s: %s", d, what)
}

func TestMembershipClaimsAndFailure(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a, b, c := newMember(t, "a", key), newMember(t, "b", key), newMember(t, "c", key)
	for _, m := range []*List{b, c} {
		if _, err := m.Join([]string{addr(a)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "three members", func() bool { return len(a.Members()) == 3 && len(c.Members()) == 3 })

	if err := b.SetMeta(Meta{InterfacesUp: []string{"eth0"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b's metadata at c", func() bool {
		m := c.Members()["b"]
		return len(m.InterfacesUp) == 1 && m.InterfacesUp[0] == "eth0"
	})

	vip := netip.MustParseAddr("198.18.100.7")
	b.SetClaims(map[netip.Addr]int64{vip: 42})
	waitFor(t, 5*time.Second, "b's claim at a and c", func() bool {
		ca, cc := a.Claims()[vip], c.Claims()[vip]
		return len(ca) == 1 && ca[0] == (Claim{"b", 42}) && len(cc) == 1 && cc[0].Node == "b"
	})

	// A crash: b stops without leaving. Its claims go with it.
	start := time.Now()
	_ = b.Shutdown()
	waitFor(t, 5*time.Second, "b declared dead", func() bool {
		_, inA := a.Members()["b"]
		_, inC := c.Members()["b"]
		return !inA && !inC && len(a.Claims()[vip]) == 0
	})
	t.Logf("crash detected in %s", time.Since(start))
}

func TestGracefulLeaveIsImmediate(t *testing.T) {
	key := bytes.Repeat([]byte{3}, 16)
	a, b := newMember(t, "a", key), newMember(t, "b", key)
	if _, err := b.Join([]string{addr(a)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "two members", func() bool { return len(a.Members()) == 2 })
	start := time.Now()
	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "b gone", func() bool { return len(a.Members()) == 1 })
	t.Logf("leave seen in %s", time.Since(start))
}

func TestWrongKeyCannotJoin(t *testing.T) {
	a := newMember(t, "a", bytes.Repeat([]byte{1}, 32))
	intruder := newMember(t, "x", bytes.Repeat([]byte{2}, 32))
	if _, err := intruder.Join([]string{addr(a)}); err == nil {
		t.Error("a member with another key joined")
	}
	time.Sleep(300 * time.Millisecond)
	if _, in := a.Members()["x"]; in {
		t.Fatal("the intruder is a member")
	}
}

func TestBadKeyIsRejected(t *testing.T) {
	if _, err := New(Options{NodeName: "a", BindAddr: "127.0.0.1", Port: 17940, SecretKey: []byte("short")}); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}

// TestMetaTooLargeIsRefused: metadata over memberlist's limit is refused
// with ErrMetaTooLarge and the previous metadata stays published, instead
// of memberlist dropping the interface list silently.
func TestMetaTooLargeIsRefused(t *testing.T) {
	l := newMember(t, "big", bytes.Repeat([]byte{5}, 16))
	ok := Meta{InterfacesUp: []string{"eth0=198.18.0.0/24"}}
	if err := l.SetMeta(ok); err != nil {
		t.Fatal(err)
	}
	var big Meta
	for i := range 60 {
		big.InterfacesUp = append(big.InterfacesUp, fmt.Sprintf("eth%d=198.18.%d.0/24", i, i))
	}
	if err := l.SetMeta(big); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("SetMeta of %d bytes: %v, want ErrMetaTooLarge", MetaSize(big), err)
	}
	if got := l.Members()["big"].InterfacesUp; len(got) != 1 || got[0] != "eth0=198.18.0.0/24" {
		t.Errorf("published interfaces %v, want the previous metadata kept", got)
	}
}

// TestMetricsFollowMembership: the members gauge and the event counters
// follow joins, a metadata update and a crash, as a scrape of one
// member sees them.
func TestMetricsFollowMembership(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	a, b, c := newMember(t, "a", key), newMember(t, "b", key), newMember(t, "c", key)
	for _, m := range []*List{b, c} {
		if _, err := m.Join([]string{addr(a)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "three members", func() bool { return len(a.Members()) == 3 })
	if err := b.SetMeta(Meta{InterfacesUp: []string{"eth0"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b's metadata at a", func() bool { return len(a.Members()["b"].InterfacesUp) == 1 })
	_ = b.Shutdown()
	waitFor(t, 5*time.Second, "b declared dead", func() bool { return len(a.Members()) == 2 })

	want := `
# HELP pharos_memberlist_events_total Memberlist notifications this speaker received, by event: join (itself included, once at start), leave (a member left or was declared dead), update (a member's metadata changed).
# TYPE pharos_memberlist_events_total counter
pharos_memberlist_events_total{event="join"} 3
pharos_memberlist_events_total{event="leave"} 1
pharos_memberlist_events_total{event="update"} 1
# HELP pharos_memberlist_members Alive members of the speakers' memberlist cluster that this speaker sees, itself included.
# TYPE pharos_memberlist_members gauge
pharos_memberlist_members 2
`
	if err := testutil.CollectAndCompare(a.Collector(), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestOwnerLeft: when a member that claims an address crashes, the others
// remember when they learned it, once, for the node that takes the address
// over; an address this node claims itself, or nobody claimed, has none.
func TestOwnerLeft(t *testing.T) {
	key := bytes.Repeat([]byte{4}, 16)
	a, b, c := newMember(t, "a", key), newMember(t, "b", key), newMember(t, "c", key)
	for _, m := range []*List{b, c} {
		if _, err := m.Join([]string{addr(a)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "three members", func() bool {
		return len(a.Members()) == 3 && len(b.Members()) == 3 && len(c.Members()) == 3
	})
	vip, shared, other := netip.MustParseAddr("198.18.100.8"), netip.MustParseAddr("198.18.100.9"), netip.MustParseAddr("198.18.100.10")
	b.SetClaims(map[netip.Addr]int64{vip: 1, shared: 1})
	c.SetClaims(map[netip.Addr]int64{shared: 2}) // c already took shared over
	waitFor(t, 5*time.Second, "b's and c's claims at a and c", func() bool {
		return len(a.Claims()[shared]) == 2 && len(c.Claims()[vip]) == 1
	})

	crash := time.Now()
	_ = b.Shutdown()
	waitFor(t, 5*time.Second, "b declared dead at a and c", func() bool { return len(a.Members()) == 2 && len(c.Members()) == 2 })
	seen := time.Now()

	for _, tc := range []struct {
		name   string
		member *List
		ip     netip.Addr
		want   bool
	}{
		{"a takes vip over", a, vip, true},
		{"asked again", a, vip, false},
		{"c takes vip over", c, vip, true},
		{"a takes shared over", a, shared, true},
		{"c claimed shared before b left", c, shared, false},
		{"nobody claimed it", a, other, false},
	} {
		at, ok := tc.member.OwnerLeft(tc.ip)
		if ok != tc.want {
			t.Errorf("%s: OwnerLeft(%s) = %v, %v; want found: %v", tc.name, tc.ip, at, ok, tc.want)
		}
		if ok && (at.Before(crash) || at.After(seen)) {
			t.Errorf("%s: b left at %s, want between its crash %s and its removal %s", tc.name, at, crash, seen)
		}
	}
}

// TestDepartedClaimsAreVoid: a member declared dead (or gone) loses its
// claims at once; when it returns, its current claims count, even with
// the version this node had before.
func TestDepartedClaimsAreVoid(t *testing.T) {
	a := newMember(t, "a", bytes.Repeat([]byte{5}, 16))
	vip := netip.MustParseAddr("198.18.100.8")
	claimsOfB := func() map[string]int64 {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.remote["b"].Claims
	}
	set := []byte(`{"b":{"v":3,"c":{"198.18.100.8":1}}}`)
	a.merge(set)
	if len(claimsOfB()) != 1 {
		t.Fatalf("b's claim not merged: %v", claimsOfB())
	}
	a.recordDeparture("b", time.Now())
	if c := claimsOfB(); len(c) != 0 {
		t.Fatalf("after b left, its claims: %v, want none", c)
	}
	a.merge(set)
	if c := claimsOfB(); c[vip.String()] != 1 {
		t.Fatalf("b returned with its claims unchanged: %v, want %s at epoch 1", c, vip)
	}
}

// TestPushPullStateMergesOnlyNews: the state push-pull carries merges a
// member's claims only when their version is newer than what this node
// has (a stale or repeated copy changes nothing and triggers no
// reconcile), skips a member whose claims are malformed without losing the
// others, and the state this node sends follows its own and merged claims.
func TestPushPullStateMergesOnlyNews(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a, b := newMember(t, "a", key), newMember(t, "b", key)
	var changes atomic.Int32
	a.onChange = func() { changes.Add(1) }
	vip, vip2 := netip.MustParseAddr("198.18.100.7"), netip.MustParseAddr("198.18.100.8")
	b.SetClaims(map[netip.Addr]int64{vip: 42})
	d := (*delegate)(a)
	state := (*delegate)(b).LocalState(false)

	d.MergeRemoteState(state, false)
	if changes.Load() != 1 || a.remote["b"].Claims[vip.String()] != 42 {
		t.Fatalf("b's claims not merged: %d changes, %v", changes.Load(), a.remote)
	}
	d.MergeRemoteState(state, false) // the same again: nothing new
	stale := fmt.Appendf(nil, `{"b":{"v":%d,"c":{"%s":1}}}`, a.remote["b"].Version-1, vip2)
	d.MergeRemoteState(stale, false)
	if changes.Load() != 1 || len(a.remote["b"].Claims) != 1 {
		t.Fatalf("a repeated or stale state changed the claims: %d changes, %v", changes.Load(), a.remote["b"])
	}
	newer := fmt.Appendf(nil, `{"b":{"v":%d,"c":{"%s":1}},"c":{"v":5,"c":["junk"]},"d":{"v":6}}`, a.remote["b"].Version+1, vip2)
	d.MergeRemoteState(newer, false)
	if changes.Load() != 2 || a.remote["b"].Claims[vip2.String()] != 1 || len(a.remote["b"].Claims) != 1 {
		t.Fatalf("b's newer claims not merged: %d changes, %v", changes.Load(), a.remote["b"])
	}
	if _, ok := a.remote["c"]; ok {
		t.Errorf("c's malformed claims merged: %v", a.remote["c"])
	}
	if cs, ok := a.remote["d"]; !ok || len(cs.Claims) != 0 {
		t.Errorf("d's empty claim set not merged: %v %v", cs, ok)
	}

	// What a sends: its own claims and b's, new ones included.
	a.SetClaims(map[netip.Addr]int64{vip: 7})
	var sent map[string]claimSet
	if err := json.Unmarshal(d.LocalState(false), &sent); err != nil {
		t.Fatal(err)
	}
	if sent["a"].Claims[vip.String()] != 7 || sent["b"].Claims[vip2.String()] != 1 {
		t.Errorf("a's state is stale: %v", sent)
	}
}
