package agent

import (
	"net/netip"
	"testing"
)

func TestLowestFreeHost(t *testing.T) {
	set := func(addrs ...string) func(netip.Addr) bool {
		m := map[netip.Addr]bool{}
		for _, s := range addrs {
			m[netip.MustParseAddr(s)] = true
		}
		return func(a netip.Addr) bool { return m[a] }
	}
	onlyFree := func(free string) func(netip.Addr) bool {
		return func(a netip.Addr) bool { return a != netip.MustParseAddr(free) }
	}
	tests := []struct {
		name    string
		cidr    string
		used    func(netip.Addr) bool
		want    string
		wantErr bool
	}{
		{name: "v4 empty starts at .2", cidr: "198.18.33.0/24", used: set(), want: "198.18.33.2"},
		{name: "v4 skips used", cidr: "198.18.33.0/24", used: set("198.18.33.2", "198.18.33.3"), want: "198.18.33.4"},
		{name: "v4 fills a hole", cidr: "198.18.33.0/24", used: set("198.18.33.2", "198.18.33.4"), want: "198.18.33.3"},
		{name: "v4 unmasked cidr", cidr: "198.18.33.7/24", used: set(), want: "198.18.33.2"},
		{name: "v4 last usable is .254", cidr: "198.18.33.0/24", used: onlyFree("198.18.33.254"), want: "198.18.33.254"},
		{name: "v4 never broadcast", cidr: "198.18.33.0/24", used: onlyFree("198.18.33.255"), wantErr: true},
		{name: "v4 never network or gateway", cidr: "198.18.33.0/24", used: func(a netip.Addr) bool { return a.As4()[3] > 1 }, wantErr: true},
		{name: "v4 /30 has one pod address", cidr: "198.18.33.0/30", used: set(), want: "198.18.33.2"},
		{name: "v4 /30 full", cidr: "198.18.33.0/30", used: set("198.18.33.2"), wantErr: true},
		{name: "v4 /31 no room", cidr: "198.18.33.0/31", used: set(), wantErr: true},
		{name: "v4 /32 no room", cidr: "198.18.33.0/32", used: set(), wantErr: true},
		{name: "v6 empty starts at ::2", cidr: "2001:db8:42:1::/64", used: set(), want: "2001:db8:42:1::2"},
		{name: "v6 skips used", cidr: "2001:db8:42:1::/64", used: set("2001:db8:42:1::2"), want: "2001:db8:42:1::3"},
		{name: "v6 crosses a byte", cidr: "2001:db8:42:1::/64", used: func(a netip.Addr) bool { return a.Less(netip.MustParseAddr("2001:db8:42:1::100")) }, want: "2001:db8:42:1::100"},
		{name: "v6 /127 no room", cidr: "2001:db8:42:1::/127", used: set(), wantErr: true},
		{name: "v6 /126 last address usable", cidr: "2001:db8:42:1::/126", used: set("2001:db8:42:1::2"), want: "2001:db8:42:1::3"},
		{name: "invalid", cidr: "", used: set(), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cidr netip.Prefix
			if tc.cidr != "" {
				cidr = netip.MustParsePrefix(tc.cidr)
			}
			got, err := lowestFreeHost(cidr, tc.used)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want error, got %s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != netip.MustParseAddr(tc.want) {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestGatewayOf(t *testing.T) {
	for cidr, want := range map[string]string{
		"198.18.33.0/24":     "198.18.33.1",
		"198.18.33.9/24":     "198.18.33.1",
		"2001:db8:42:1::/64": "2001:db8:42:1::1",
	} {
		if got := gatewayOf(netip.MustParsePrefix(cidr)); got != netip.MustParseAddr(want) {
			t.Errorf("gatewayOf(%s) = %s, want %s", cidr, got, want)
		}
	}
}
