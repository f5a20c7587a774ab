package dataplane

import (
	"net/netip"
	"strings"
	"testing"
)

// These tests read like the specification of the table: each gives a
// Config and the table Plan makes of it, in nft's syntax.

var (
	client4 = netip.MustParsePrefix("198.18.10.0/24")
	client6 = netip.MustParsePrefix("2001:db8:10::/48")
)

type planCase struct {
	name string
	cfg  Config
	want string
}

var planCases = []planCase{
	{name: "empty config, empty table", cfg: Config{}, want: `table inet pharos {
}
`},
	{
		name: "one VIP, one remote backend: DNAT, marked for masquerade",
		cfg: Config{Frontends: []Frontend{{Service: "default/web", VIP: vip4, Protocol: TCP, Port: 80,
			Backends: []Backend{{Addr: pod4a, Port: 8080}}}}},
		want: `table inet pharos {
	counter drop_tcp_198.18.200.10_80 { # default/web
	}
	map frontends4 {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {
			198.18.200.10 . tcp . 80 comment "default/web" : jump fe_tcp_198.18.200.10_80,
		}
	}
	chain nat_prerouting {
		type nat hook prerouting priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain nat_output {
		type nat hook output priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain nat_postrouting {
		type nat hook postrouting priority srcnat - 10; policy accept;
		ct mark & 0x00200000 != 0 masquerade
	}
	chain fe_tcp_198.18.200.10_80 {
		ct mark set ct mark | 0x00200000 dnat ip to 198.18.201.2:8080
	}
}
`,
	},
	{
		name: "several backends spread by a hash of the flow, in address order",
		cfg: Config{Frontends: []Frontend{{Service: "default/web", VIP: vip4, Protocol: TCP, Port: 80,
			Backends: []Backend{{Addr: pod4b, Port: 8080}, {Addr: pod4a, Port: 8080}, {Addr: pod4a, Port: 8080}}}}},
		want: `table inet pharos {
	counter drop_tcp_198.18.200.10_80 { # default/web
	}
	map frontends4 {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {
			198.18.200.10 . tcp . 80 comment "default/web" : jump fe_tcp_198.18.200.10_80,
		}
	}
	chain nat_prerouting {
		type nat hook prerouting priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain nat_output {
		type nat hook output priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain nat_postrouting {
		type nat hook postrouting priority srcnat - 10; policy accept;
		ct mark & 0x00200000 != 0 masquerade
	}
	chain fe_tcp_198.18.200.10_80 {
		jhash ip saddr . th sport mod 2 seed 0x70686172 vmap { 0 : goto fe_tcp_198.18.200.10_80_b0, 1 : goto fe_tcp_198.18.200.10_80_b1 }
	}
	chain fe_tcp_198.18.200.10_80_b0 {
		ct mark set ct mark | 0x00200000 dnat ip to 198.18.201.2:8080
	}
	chain fe_tcp_198.18.200.10_80_b1 {
		ct mark set ct mark | 0x00200000 dnat ip to 198.18.201.3:8080
	}
}
`,
	},
	{
		name: "IPv6 VIP",
		cfg: Config{Frontends: []Frontend{{Service: "default/web6", VIP: vip6, Protocol: UDP, Port: 53,
			Backends: []Backend{{Addr: pod6a, Port: 5353}}}}},
		want: `table inet pharos {
	counter drop_udp_2001:db8:200::10_53 { # default/web6
	}
	map frontends6 {
		type ipv6_addr . inet_proto . inet_service : verdict
		elements = {
			2001:db8:200::10 . udp . 53 comment "default/web6" : jump fe_udp_2001:db8:200::10_53,
		}
	}
	chain nat_prerouting {
		type nat hook prerouting priority dstnat - 10; policy accept;
		meta nfproto ipv6 ip6 daddr . meta l4proto . th dport vmap @frontends6
	}
	chain nat_output {
		type nat hook output priority dstnat - 10; policy accept;
		meta nfproto ipv6 ip6 daddr . meta l4proto . th dport vmap @frontends6
	}
	chain nat_postrouting {
		type nat hook postrouting priority srcnat - 10; policy accept;
		ct mark & 0x00200000 != 0 masquerade
	}
	chain fe_udp_2001:db8:200::10_53 {
		ct mark set ct mark | 0x00200000 dnat ip6 to [2001:db8:201::2]:5353
	}
}
`,
	},
	{
		name: "source ranges: others dropped and counted before DNAT",
		cfg: Config{Frontends: []Frontend{{Service: "default/web", VIP: vip4, Protocol: TCP, Port: 443,
			SourceRanges: []netip.Prefix{client4, netip.MustParsePrefix("198.19.0.7/32"), netip.MustParsePrefix("198.18.10.99/24")},
			Backends:     []Backend{{Addr: pod4a, Port: 8443}}}}},
		want: `table inet pharos {
	counter drop_tcp_198.18.200.10_443 { # default/web
	}
	map source_filter4 {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {
			198.18.200.10 . tcp . 443 comment "default/web" : jump src_tcp_198.18.200.10_443,
		}
	}
	map frontends4 {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {
			198.18.200.10 . tcp . 443 comment "default/web" : jump fe_tcp_198.18.200.10_443,
		}
	}
	chain filter_prerouting {
		type filter hook prerouting priority dstnat - 20; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @source_filter4
	}
	chain nat_prerouting {
		type nat hook prerouting priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain nat_output {
		type nat hook output priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain nat_postrouting {
		type nat hook postrouting priority srcnat - 10; policy accept;
		ct mark & 0x00200000 != 0 masquerade
	}
	chain src_tcp_198.18.200.10_443 {
		ip saddr 198.18.10.0/24 return
		ip saddr 198.19.0.7/32 return
		counter name "drop_tcp_198.18.200.10_443" drop
	}
	chain fe_tcp_198.18.200.10_443 {
		ct mark set ct mark | 0x00200000 dnat ip to 198.18.201.2:8443
	}
}
`,
	},
	{
		name: "PreserveClient: never masquerade",
		cfg: Config{Frontends: []Frontend{{Service: "default/local", VIP: vip4, Protocol: TCP, Port: 80, PreserveClient: true,
			Backends: []Backend{{Addr: pod4a, Port: 8080, Local: true}, {Addr: pod4b, Port: 8080}}}}},
		want: `table inet pharos {
	counter drop_tcp_198.18.200.10_80 { # default/local
	}
	map frontends4 {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {
			198.18.200.10 . tcp . 80 comment "default/local" : jump fe_tcp_198.18.200.10_80,
		}
	}
	chain nat_prerouting {
		type nat hook prerouting priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain nat_output {
		type nat hook output priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain fe_tcp_198.18.200.10_80 {
		jhash ip saddr . th sport mod 2 seed 0x70686172 vmap { 0 : goto fe_tcp_198.18.200.10_80_b0, 1 : goto fe_tcp_198.18.200.10_80_b1 }
	}
	chain fe_tcp_198.18.200.10_80_b0 {
		dnat ip to 198.18.201.2:8080
	}
	chain fe_tcp_198.18.200.10_80_b1 {
		dnat ip to 198.18.201.3:8080
	}
}
`,
	},
	{
		name: "remote backends masqueraded, local ones not",
		cfg: Config{Frontends: []Frontend{{Service: "default/web", VIP: vip4, Protocol: TCP, Port: 80,
			Backends: []Backend{{Addr: pod4a, Port: 8080, Local: true}, {Addr: pod4b, Port: 8080}}}}},
		want: `table inet pharos {
	counter drop_tcp_198.18.200.10_80 { # default/web
	}
	map frontends4 {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {
			198.18.200.10 . tcp . 80 comment "default/web" : jump fe_tcp_198.18.200.10_80,
		}
	}
	chain nat_prerouting {
		type nat hook prerouting priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain nat_output {
		type nat hook output priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain nat_postrouting {
		type nat hook postrouting priority srcnat - 10; policy accept;
		ct mark & 0x00200000 != 0 masquerade
	}
	chain fe_tcp_198.18.200.10_80 {
		jhash ip saddr . th sport mod 2 seed 0x70686172 vmap { 0 : goto fe_tcp_198.18.200.10_80_b0, 1 : goto fe_tcp_198.18.200.10_80_b1 }
	}
	chain fe_tcp_198.18.200.10_80_b0 {
		dnat ip to 198.18.201.2:8080
	}
	chain fe_tcp_198.18.200.10_80_b1 {
		ct mark set ct mark | 0x00200000 dnat ip to 198.18.201.3:8080
	}
}
`,
	},
	{
		name: "no backends: rejected and counted, never delivered to the host; a rule keeps connection tracking on, as no DNAT does",
		cfg:  Config{Frontends: []Frontend{{Service: "default/empty", VIP: vip4, Protocol: TCP, Port: 80}}},
		want: `table inet pharos {
	counter drop_tcp_198.18.200.10_80 { # default/empty
	}
	map frontends4 {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {
			198.18.200.10 . tcp . 80 comment "default/empty" : jump fe_tcp_198.18.200.10_80,
		}
	}
	chain nat_prerouting {
		type nat hook prerouting priority dstnat - 10; policy accept;
		ct state new,related
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain nat_output {
		type nat hook output priority dstnat - 10; policy accept;
		ct state new,related
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain fe_tcp_198.18.200.10_80 {
		counter name "drop_tcp_198.18.200.10_80" reject with icmpx port-unreachable
	}
}
`,
	},
	{
		name: "two Services share a VIP on different ports",
		cfg: Config{Frontends: []Frontend{
			{Service: "default/https", VIP: vip4, Protocol: TCP, Port: 443, Backends: []Backend{{Addr: pod4b, Port: 8443, Local: true}}},
			{Service: "default/http", VIP: vip4, Protocol: TCP, Port: 80, Backends: []Backend{{Addr: pod4a, Port: 8080, Local: true}}},
		}},
		want: `table inet pharos {
	counter drop_tcp_198.18.200.10_80 { # default/http
	}
	counter drop_tcp_198.18.200.10_443 { # default/https
	}
	map frontends4 {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {
			198.18.200.10 . tcp . 80 comment "default/http" : jump fe_tcp_198.18.200.10_80,
			198.18.200.10 . tcp . 443 comment "default/https" : jump fe_tcp_198.18.200.10_443,
		}
	}
	chain nat_prerouting {
		type nat hook prerouting priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain nat_output {
		type nat hook output priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
	}
	chain fe_tcp_198.18.200.10_80 {
		dnat ip to 198.18.201.2:8080
	}
	chain fe_tcp_198.18.200.10_443 {
		dnat ip to 198.18.201.3:8443
	}
}
`,
	},
	{
		name: "dual stack: one Service, a frontend per family",
		cfg: Config{Frontends: []Frontend{
			{Service: "default/web", VIP: vip6, Protocol: TCP, Port: 80, SourceRanges: []netip.Prefix{client6},
				Backends: []Backend{{Addr: pod6a, Port: 8080, Local: true}}},
			{Service: "default/web", VIP: vip4, Protocol: TCP, Port: 80, SourceRanges: []netip.Prefix{client4},
				Backends: []Backend{{Addr: pod4a, Port: 8080, Local: true}}},
		}},
		want: `table inet pharos {
	counter drop_tcp_198.18.200.10_80 { # default/web
	}
	counter drop_tcp_2001:db8:200::10_80 { # default/web
	}
	map source_filter4 {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {
			198.18.200.10 . tcp . 80 comment "default/web" : jump src_tcp_198.18.200.10_80,
		}
	}
	map source_filter6 {
		type ipv6_addr . inet_proto . inet_service : verdict
		elements = {
			2001:db8:200::10 . tcp . 80 comment "default/web" : jump src_tcp_2001:db8:200::10_80,
		}
	}
	map frontends4 {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {
			198.18.200.10 . tcp . 80 comment "default/web" : jump fe_tcp_198.18.200.10_80,
		}
	}
	map frontends6 {
		type ipv6_addr . inet_proto . inet_service : verdict
		elements = {
			2001:db8:200::10 . tcp . 80 comment "default/web" : jump fe_tcp_2001:db8:200::10_80,
		}
	}
	chain filter_prerouting {
		type filter hook prerouting priority dstnat - 20; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @source_filter4
		meta nfproto ipv6 ip6 daddr . meta l4proto . th dport vmap @source_filter6
	}
	chain nat_prerouting {
		type nat hook prerouting priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
		meta nfproto ipv6 ip6 daddr . meta l4proto . th dport vmap @frontends6
	}
	chain nat_output {
		type nat hook output priority dstnat - 10; policy accept;
		meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @frontends4
		meta nfproto ipv6 ip6 daddr . meta l4proto . th dport vmap @frontends6
	}
	chain src_tcp_198.18.200.10_80 {
		ip saddr 198.18.10.0/24 return
		counter name "drop_tcp_198.18.200.10_80" drop
	}
	chain fe_tcp_198.18.200.10_80 {
		dnat ip to 198.18.201.2:8080
	}
	chain src_tcp_2001:db8:200::10_80 {
		ip6 saddr 2001:db8:10::/48 return
		counter name "drop_tcp_2001:db8:200::10_80" drop
	}
	chain fe_tcp_2001:db8:200::10_80 {
		dnat ip6 to [2001:db8:201::2]:8080
	}
}
`,
	},
}

func TestPlan(t *testing.T) {
	for _, c := range planCases {
		t.Run(c.name, func(t *testing.T) {
			rs, err := Plan(c.cfg)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if got := rs.String(); got != c.want {
				t.Errorf("Plan made\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

func TestPlanIgnoresOrder(t *testing.T) {
	a := Config{Frontends: []Frontend{
		{Service: "a/x", VIP: vip4, Protocol: TCP, Port: 80, Backends: []Backend{{Addr: pod4a, Port: 1}, {Addr: pod4b, Port: 1}}},
		{Service: "a/y", VIP: vip6, Protocol: UDP, Port: 53, SourceRanges: []netip.Prefix{client6, netip.MustParsePrefix("2001:db8:11::/48")}},
	}}
	b := Config{Frontends: []Frontend{
		{Service: "a/y", VIP: vip6, Protocol: UDP, Port: 53, SourceRanges: []netip.Prefix{netip.MustParsePrefix("2001:db8:11::/48"), client6}},
		{Service: "a/x", VIP: vip4, Protocol: TCP, Port: 80, Backends: []Backend{{Addr: pod4b, Port: 1}, {Addr: pod4a, Port: 1}}},
	}}
	ra, err := Plan(a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Plan(b)
	if err != nil {
		t.Fatal(err)
	}
	if ra.String() != rb.String() {
		t.Errorf("the same config in another order planned differently:\n%s\n%s", ra, rb)
	}
}

func TestPlanErrorsNameServiceAndField(t *testing.T) {
	for _, c := range []struct {
		name  string
		f     Frontend
		wants []string
	}{
		{"backend of the other family", Frontend{Service: "ns/mixed", VIP: vip4, Protocol: TCP, Port: 80,
			Backends: []Backend{{Addr: pod6a, Port: 80}}}, []string{`"ns/mixed"`, "backend 2001:db8:201::2", "family"}},
		{"unsupported protocol", Frontend{Service: "ns/icmp", VIP: vip4, Protocol: 1, Port: 80}, []string{`"ns/icmp"`, "Protocol"}},
		{"port 0", Frontend{Service: "ns/zero", VIP: vip4, Protocol: TCP}, []string{`"ns/zero"`, "Port is 0"}},
		{"backend port 0", Frontend{Service: "ns/bz", VIP: vip4, Protocol: TCP, Port: 80,
			Backends: []Backend{{Addr: pod4a}}}, []string{`"ns/bz"`, "backend 198.18.201.2 has Port 0"}},
		{"no VIP", Frontend{Service: "ns/novip", Protocol: TCP, Port: 80}, []string{`"ns/novip"`, "VIP"}},
		{"source range of the other family", Frontend{Service: "ns/src", VIP: vip4, Protocol: TCP, Port: 80,
			SourceRanges: []netip.Prefix{client6}}, []string{`"ns/src"`, "SourceRanges"}},
		{"no Service", Frontend{VIP: vip4, Protocol: TCP, Port: 80}, []string{"Service is empty"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Plan(Config{Frontends: []Frontend{c.f}})
			if err == nil {
				t.Fatal("Plan accepted it")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	_, err := Plan(Config{Frontends: []Frontend{
		{Service: "ns/one", VIP: vip4, Protocol: TCP, Port: 80},
		{Service: "ns/two", VIP: vip4, Protocol: TCP, Port: 80},
	}})
	if err == nil || !strings.Contains(err.Error(), `"ns/one"`) || !strings.Contains(err.Error(), `"ns/two"`) {
		t.Errorf("two Services on one VIP:port: error %v, want one naming both", err)
	}
}
