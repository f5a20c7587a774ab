package bgpannounce

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
)

// TestNotificationsBecomeLastErrors: the NOTIFICATIONs GoBGP logs (as its
// FSM does: the peer address in the logger's attributes, codes as ints)
// reach the hook, whatever GoBGP's log level, and are worded for users.
func TestNotificationsBecomeLastErrors(t *testing.T) {
	var got []string
	var out bytes.Buffer
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	h := &notifyHandler{Handler: &levelHandler{Handler: slog.NewTextHandler(&out, nil), level: lvl},
		onNotify: func(peer netip.Addr, sent bool, code, subcode uint8, reason string) {
			got = append(got, peer.String()+" "+notificationText(sent, code, subcode, reason))
		}}
	log := slog.New(h).With("Topic", "Peer", "Key", "198.18.96.1")
	log.Info("sent notification", slog.String("State", "BGP_FSM_ACTIVE"), slog.Int("Code", 2), slog.Int("Subcode", 2), slog.Any("Data", nil))
	log.Info("received notification", slog.Int("Code", 6), slog.Int("Subcode", 2), slog.String("Communicated-Reason", "maintenance"))
	log.Info("something else")
	if len(got) != 2 {
		t.Fatalf("hook calls %q, want 2", got)
	}
	if !strings.Contains(got[0], "198.18.96.1 NOTIFICATION 2/2 sent to the router: OPEN message error, bad peer AS") {
		t.Errorf("got %q", got[0])
	}
	if !strings.Contains(got[1], "received from the router: cease, administrative shutdown (\"maintenance\")") {
		t.Errorf("got %q", got[1])
	}
	if out.Len() != 0 {
		t.Errorf("info records passed GoBGP's warn level: %s", out.String())
	}
}
