package bgpannounce

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
	"github.com/pharos-lb/pharos/internal/speaker"
)

// FuzzTranslatePeer: any BGPPeer spec that internal/config accepts
// translates into a GoBGP peer without panicking, and the translation
// keeps what the user asked for: the neighbor's address, both ASNs (or
// ours for dynamicASN internal), whole-second timers, and at least one
// address family that includes the session's own.
func FuzzTranslatePeer(f *testing.F) {
	for _, seed := range []string{
		`{"myASN":64512,"peerASN":64513,"peerAddress":"198.18.0.1"}`,
		`{"myASN":64512,"peerASN":64512,"peerAddress":"2001:db8::1","holdTime":"9s","keepaliveTime":"3s","connectTime":"2s","disableMP":true}`,
		`{"myASN":4200000000,"dynamicASN":"internal","peerAddress":"198.18.0.1","password":"x","ebgpMultiHop":true,"enableGracefulRestart":true,"bfdProfile":"fast","sourceAddress":"198.18.0.2","peerPort":1179}`,
		`{"myASN":1,"dynamicASN":"external","peerAddress":"198.18.255.254","holdTime":"0s"}`,
	} {
		f.Add([]byte(seed))
	}
	b := &BGP{opts: Options{Node: "n1", Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("2001:db8::10")}}}
	cfg := &speaker.BGPConfig{BFDProfiles: map[string]*config.BFD{"fast": {TransmitMs: 300, ReceiveMs: 300, Multiplier: 3}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		var obj v1beta1.BGPPeer
		if json.Unmarshal(data, &obj.Spec) != nil {
			return
		}
		obj.Name = "fuzz"
		p, errs := config.ParseBGPPeer(&obj)
		if len(errs) > 0 {
			return
		}
		peer, _, err := b.apiPeer(context.Background(), p, cfg)
		if err != nil {
			if p.PasswordSecret == nil {
				t.Fatalf("translating a valid peer %+v: %v", p, err)
			}
			return
		}
		if peer.Conf.NeighborAddress != p.Address.String() || peer.Conf.LocalAsn != p.MyASN {
			t.Fatalf("neighbor %s AS %d, want %s AS %d", peer.Conf.NeighborAddress, peer.Conf.LocalAsn, p.Address, p.MyASN)
		}
		switch p.DynamicASN {
		case v1beta1.DynamicASNInternal:
			if peer.Conf.PeerAsn != p.MyASN {
				t.Fatalf("dynamicASN internal: peer AS %d, want ours %d", peer.Conf.PeerAsn, p.MyASN)
			}
		case "":
			if peer.Conf.PeerAsn != p.PeerASN {
				t.Fatalf("peer AS %d, want %d", peer.Conf.PeerAsn, p.PeerASN)
			}
		}
		tc := peer.Timers.Config
		if time.Duration(tc.HoldTime)*time.Second != p.HoldTime.Truncate(time.Second) || tc.ConnectRetry < 2 {
			t.Fatalf("timers %+v for hold %s connect %s", tc, p.HoldTime, p.ConnectTime)
		}
		own := false
		for _, a := range peer.AfiSafis {
			if (a.Config.Family.Afi == 1) == p.Address.Is4() {
				own = true
			}
		}
		if !own {
			t.Fatalf("families %v do not include the session's own (%s)", peer.AfiSafis, p.Address)
		}
	})
}

// FuzzTranslateRoute: any address with any communities and localPref
// becomes a BGP path GoBGP can serialize, with the prefix's length first
// in the NLRI.
func FuzzTranslateRoute(f *testing.F) {
	f.Add([]byte{198, 18, 0, 1}, uint8(32), uint32(100), true, "65000:100", "large:1:2:3")
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice(), uint8(128), uint32(0), false, "no-export", "")
	f.Add([]byte{198, 18, 0, 0}, uint8(24), uint32(4294967295), true, "65535:65281", "4200000000:1:1")
	b := &BGP{opts: Options{Node: "n1", Addresses: []netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("2001:db8::10")}}}
	f.Fuzz(func(t *testing.T, addr []byte, bits uint8, pref uint32, hasPref bool, c1, c2 string) {
		ip, ok := netip.AddrFromSlice(addr)
		if !ok {
			return
		}
		prefix, err := ip.Prefix(int(bits))
		if err != nil {
			return
		}
		r := route{prefix: prefix, localPref: pref, hasPref: hasPref}
		for _, s := range []string{c1, c2} {
			if c, err := config.ParseCommunity(s); err == nil {
				r.communities = append(r.communities, c)
			}
		}
		for _, withdraw := range []bool{false, true} {
			p, err := b.path(r, withdraw)
			if err != nil {
				t.Fatalf("path for %s: %v", prefix, err)
			}
			for _, a := range p.Attrs {
				if _, err := a.Serialize(); err != nil {
					t.Fatalf("%s: attribute %v does not serialize: %v", prefix, a, err)
				}
			}
			buf, err := p.Nlri.Serialize()
			if err != nil {
				t.Fatalf("%s: NLRI does not serialize: %v", prefix, err)
			}
			if len(buf) == 0 || int(buf[0]) != prefix.Bits() {
				t.Fatalf("%s: NLRI %x does not carry the prefix length", prefix, buf)
			}
		}
	})
}
