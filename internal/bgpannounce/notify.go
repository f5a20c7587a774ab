package bgpannounce

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
)

// GoBGP rejects some OPENs (a wrong peer AS, say) before its session state
// machine leaves Active, so no peer event carries the reason; it does log
// every NOTIFICATION it sends or receives. notifyHandler passes GoBGP's
// log records on and turns those two into the session's last error.
type notifyHandler struct {
	slog.Handler
	onNotify func(peer netip.Addr, sent bool, code, subcode uint8, reason string)
	// attrs are those of the logger (GoBGP puts the peer's address, Key,
	// there), kept to be read with the record's own.
	attrs []slog.Attr
}

func (h *notifyHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "sent notification" || r.Message == "received notification" {
		var (
			peer          netip.Addr
			code, subcode uint8
			reason        string
		)
		small := func(v slog.Value) uint8 {
			if v.Kind() == slog.KindInt64 && v.Int64() >= 0 && v.Int64() < 256 {
				return uint8(v.Int64())
			}
			return 0
		}
		read := func(a slog.Attr) bool {
			switch a.Key {
			case "Key":
				if p, err := netip.ParseAddr(a.Value.String()); err == nil {
					peer = p
				}
			case "Code":
				code = small(a.Value)
			case "Subcode":
				subcode = small(a.Value)
			case "Communicated-Reason":
				reason = a.Value.String()
			}
			return true
		}
		for _, a := range h.attrs {
			read(a)
		}
		r.Attrs(read)
		if peer.IsValid() {
			h.onNotify(peer, r.Message == "sent notification", code, subcode, reason)
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *notifyHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &notifyHandler{Handler: h.Handler.WithAttrs(as), onNotify: h.onNotify, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *notifyHandler) WithGroup(name string) slog.Handler {
	return &notifyHandler{Handler: h.Handler.WithGroup(name), onNotify: h.onNotify, attrs: h.attrs}
}

// Enabled lets NOTIFICATION records through whatever the level, so the
// reason is recorded even when GoBGP's own logs are filtered out.
func (h *notifyHandler) Enabled(context.Context, slog.Level) bool {
	return true
}

// notificationText words a BGP NOTIFICATION (RFC 4271 section 4.5,
// RFC 4486 for the Cease subcodes).
func notificationText(sent bool, code, subcode uint8, reason string) string {
	dir := "received from the router"
	if sent {
		dir = "sent to the router"
	}
	codes := map[uint8]string{1: "message header error", 2: "OPEN message error", 3: "UPDATE message error", 4: "hold timer expired", 5: "finite state machine error", 6: "cease", 7: "route refresh error"}
	sub := map[[2]uint8]string{
		{2, 1}: "unsupported version number", {2, 2}: "bad peer AS (the router's AS is not the BGPPeer's peerASN)",
		{2, 3}: "bad BGP identifier", {2, 4}: "unsupported optional parameter", {2, 6}: "unacceptable hold time",
		{2, 7}: "unsupported capability", {6, 1}: "maximum number of prefixes reached", {6, 2}: "administrative shutdown",
		{6, 3}: "peer de-configured", {6, 4}: "administrative reset", {6, 5}: "connection rejected",
		{6, 6}: "other configuration change", {6, 7}: "connection collision resolution", {6, 8}: "out of resources",
		{6, 10}: "BFD down",
	}
	text := fmt.Sprintf("NOTIFICATION %d/%d %s: %s", code, subcode, dir, codes[code])
	if s, ok := sub[[2]uint8{code, subcode}]; ok {
		text += ", " + s
	}
	if reason != "" {
		text += fmt.Sprintf(" (%q)", reason)
	}
	return text
}
