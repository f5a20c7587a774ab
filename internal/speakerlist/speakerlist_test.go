package speakerlist

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
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
