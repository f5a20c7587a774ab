package routers

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var (
	addr = netip.MustParseAddr
	pfx  = netip.MustParsePrefix
)

func fullFRRConfig() FRRConfig {
	return FRRConfig{
		Hostname: "r1",
		RouterID: addr("198.18.0.1"),
		ASN:      64512,
		Neighbors: []FRRNeighbor{
			{Address: addr("198.18.0.2"), RemoteASN: 64513, Password: "pw", BFD: &BFDTimers{ReceiveMs: 100}},
			{Address: addr("198.18.9.9"), RemoteASN: 64514, EBGPMultihop: 4, Passive: true, ConnectRetrySec: 5, Families: []Family{IPv4}},
			{Address: addr("2001:db8:0:1::2"), RemoteASN: 64512, Families: []Family{IPv6}, BFD: &BFDTimers{}},
		},
		MaximumPaths: 4,
		Networks:     []netip.Prefix{pfx("198.18.50.1/24"), pfx("2001:db8:50::/48")},
		KeepaliveSec: 3,
		HoldSec:      9,
		Forwarding:   true,
	}
}

// TestFRRConfigFiles pins the lines the lab relies on.
func TestFRRConfigFiles(t *testing.T) {
	files, err := fullFRRConfig().configFiles("/d")
	if err != nil {
		t.Fatal(err)
	}
	bgpd, bfdd, zebra := files["bgpd.conf"], files["bfdd.conf"], files["zebra.conf"]
	for _, want := range []string{
		"log file /d/bgpd.log informational\n",
		"router bgp 64512\n bgp router-id 198.18.0.1\n",
		" no bgp ebgp-requires-policy\n",
		" no bgp default ipv4-unicast\n",
		" no bgp network import-check\n",
		" bgp bestpath as-path multipath-relax\n",
		" bgp graceful-restart\n",
		" timers bgp 3 9\n",
		" neighbor 198.18.0.2 password pw\n",
		" neighbor 198.18.0.2 timers connect 1\n",
		" neighbor 198.18.0.2 bfd\n neighbor 198.18.0.2 bfd profile n0\n",
		" neighbor 198.18.9.9 ebgp-multihop 4\n",
		" neighbor 198.18.9.9 passive\n",
		" neighbor 198.18.9.9 timers connect 5\n",
		" neighbor 2001:db8:0:1::2 bfd profile n2\n",
		" address-family ipv4 unicast\n  maximum-paths 4\n  maximum-paths ibgp 4\n  network 198.18.50.0/24\n  neighbor 198.18.0.2 activate\n  neighbor 198.18.9.9 activate\n exit-address-family\n",
		" address-family ipv6 unicast\n  maximum-paths 4\n  maximum-paths ibgp 4\n  network 2001:db8:50::/48\n  neighbor 198.18.0.2 activate\n  neighbor 2001:db8:0:1::2 activate\n exit-address-family\n",
	} {
		if !strings.Contains(bgpd, want) {
			t.Errorf("bgpd.conf lacks %q:\n%s", want, bgpd)
		}
	}
	if strings.Contains(bgpd, "neighbor 198.18.9.9 bfd") {
		t.Errorf("BFD for a neighbor without it:\n%s", bgpd)
	}
	for _, want := range []string{
		"bfd\n profile n0\n  receive-interval 100\n  transmit-interval 300\n  detect-multiplier 3\n exit\n",
		" profile n2\n  receive-interval 300\n",
	} {
		if !strings.Contains(bfdd, want) {
			t.Errorf("bfdd.conf lacks %q:\n%s", want, bfdd)
		}
	}
	if !strings.Contains(zebra, "ip forwarding\nipv6 forwarding\n") {
		t.Errorf("zebra.conf:\n%s", zebra)
	}
	// bgpd must not see bfdd's block and the reverse: in a shared file
	// each takes the other's "exit" for its own.
	if strings.Contains(bgpd, "\nbfd\n") || strings.Contains(bfdd, "router bgp") {
		t.Errorf("blocks mixed:\n%s\n%s", bgpd, bfdd)
	}

	for name, c := range map[string]FRRConfig{
		"no router ID":  {ASN: 1},
		"IPv6 ID":       {RouterID: addr("2001:db8::1"), ASN: 1},
		"no ASN":        {RouterID: addr("198.18.0.1")},
		"spaced pw":     {RouterID: addr("198.18.0.1"), ASN: 1, Neighbors: []FRRNeighbor{{Address: addr("198.18.0.2"), RemoteASN: 2, Password: "a b"}}},
		"twice":         {RouterID: addr("198.18.0.1"), ASN: 1, Neighbors: []FRRNeighbor{{Address: addr("198.18.0.2"), RemoteASN: 2}, {Address: addr("198.18.0.2"), RemoteASN: 2}}},
		"no remote AS":  {RouterID: addr("198.18.0.1"), ASN: 1, Neighbors: []FRRNeighbor{{Address: addr("198.18.0.2")}}},
		"bad family":    {RouterID: addr("198.18.0.1"), ASN: 1, Neighbors: []FRRNeighbor{{Address: addr("198.18.0.2"), RemoteASN: 2, Families: []Family{"l2vpn"}}}},
		"half a timer":  {RouterID: addr("198.18.0.1"), ASN: 1, HoldSec: 9},
		"invalid route": {RouterID: addr("198.18.0.1"), ASN: 1, Networks: []netip.Prefix{{}}},
	} {
		if _, err := c.configFiles("/d"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestFRRConfigManyNetworks: 10,000 originated prefixes are one line each.
func TestFRRConfigManyNetworks(t *testing.T) {
	c := FRRConfig{RouterID: addr("198.18.0.1"), ASN: 64512}
	for i := range 10000 {
		c.Networks = append(c.Networks, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), 32))
	}
	files, err := c.configFiles("/d")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(files["bgpd.conf"], "\n  network "); n != 10000 {
		t.Errorf("%d network lines", n)
	}
}

func TestFRRTable(t *testing.T) {
	// An IPv6 path over an IPv4 session (global and link-local next
	// hops), an ECMP pair, a local network and a path that is not valid.
	const out = `{
 "routerId": "198.18.0.1", "localAS": 64512,
 "routes": { "2001:db8:100::1/128": [{"valid":true,"bestpath":true,"peerId":"198.18.0.2","path":"64513","nexthops":[{"ip":"2001:db8:0:1::2","afi":"ipv6","scope":"global"},{"ip":"fe80::c4ea:20ff:fef7:ff4e","afi":"ipv6","scope":"link-local","used":true}]}]
,"198.18.100.1/32": [{"valid":true,"multipath":true,"peerId":"198.18.0.6","path":"64514","nexthops":[{"ip":"198.18.0.6","afi":"ipv4","used":true}]},{"valid":true,"bestpath":true,"peerId":"198.18.0.2","path":"64513","nexthops":[{"ip":"198.18.0.2","afi":"ipv4","used":true}]},{"valid":true,"peerId":"198.18.0.10","path":"64515 64516","nexthops":[{"ip":"198.18.0.10","afi":"ipv4","used":true}]}]
,"198.18.50.0/24": [{"valid":true,"bestpath":true,"peerId":"(unspec)","path":"","nexthops":[{"ip":"0.0.0.0","afi":"ipv4","used":true}]}]
,"198.18.60.0/24": [{"peerId":"198.18.0.2","path":"64513","nexthops":[{"ip":"198.18.7.7","afi":"ipv4"}]}]
 }  } `
	var tab frrTable
	if err := json.Unmarshal([]byte(out), &tab); err != nil {
		t.Fatal(err)
	}
	paths, err := tab.paths()
	if err != nil {
		t.Fatal(err)
	}
	if len(paths[pfx("198.18.100.1/32")]) != 3 || paths[pfx("198.18.60.0/24")] != nil {
		t.Errorf("paths: %+v", paths)
	}
	got := selectedNextHops(paths)
	want := map[netip.Prefix][]netip.Addr{
		pfx("2001:db8:100::1/128"): {addr("2001:db8:0:1::2")},
		pfx("198.18.100.1/32"):     {addr("198.18.0.2"), addr("198.18.0.6")},
		pfx("198.18.50.0/24"):      {addr("0.0.0.0")},
	}
	if len(got) != len(want) {
		t.Errorf("routes: %v", got)
	}
	for p, nh := range want {
		if !slices.Equal(got[p], nh) {
			t.Errorf("%v via %v, want %v", p, got[p], nh)
		}
	}
	// Only link-local next hops: those are the next hops.
	if nh := nexthopAddrs([]frrNexthop{{IP: "fe80::1", Scope: "link-local"}}); !slices.Equal(nh, []netip.Addr{addr("fe80::1")}) {
		t.Errorf("link-local only: %v", nh)
	}
}

func TestFIBRoutes(t *testing.T) {
	const out = `{
  "198.18.0.0/30":[{"prefix":"198.18.0.0/30","protocol":"connected","selected":true,"installed":true,
      "nexthops":[{"flags":3,"fib":true,"directlyConnected":true,"interfaceName":"prt-f","active":true}]}],
  "198.18.100.1/32":[{"prefix":"198.18.100.1/32","protocol":"bgp","selected":true,"installed":true,
      "nexthops":[{"fib":true,"ip":"198.18.0.6","afi":"ipv4","interfaceName":"prt-b","active":true},
                  {"fib":true,"ip":"198.18.0.2","afi":"ipv4","interfaceName":"prt-a","active":true},
                  {"ip":"198.18.0.10","afi":"ipv4","interfaceName":"prt-c"}]}],
  "198.18.101.1/32":[{"prefix":"198.18.101.1/32","protocol":"bgp","selected":true,
      "nexthops":[{"ip":"198.18.0.2","afi":"ipv4"}]}]
}`
	var rib map[string][]zebraRoute
	if err := json.Unmarshal([]byte(out), &rib); err != nil {
		t.Fatal(err)
	}
	got, err := fibRoutes(rib)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !slices.Equal(got[pfx("198.18.100.1/32")], []netip.Addr{addr("198.18.0.2"), addr("198.18.0.6")}) {
		t.Errorf("FIB: %v", got)
	}
}

func TestParseNeighbors(t *testing.T) {
	const out = `{"198.18.0.2":{"remoteAs":64513,"localAs":64512,"bgpState":"Idle","bgpTimerHoldTimeMsecs":180000,
	"neighborCapabilities":{"gracefulRestart":"advertisedAndReceived"},
	"addressFamilyInfo":{"ipv4Unicast":{"acceptedPrefixCounter":1,"sentPrefixCounter":2},"ipv6Unicast":{"acceptedPrefixCounter":3,"sentPrefixCounter":4}},
	"connectionsEstablished":1,"connectionsDropped":1,"lastErrorCodeSubcode":"060A","lastNotificationReason":"Cease\/BFD Down",
	"lastResetDueTo":"BGP Notification send","peerBfdInfo":{"type":"single hop","status":"Down"}}}`
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	nbs, err := parseNeighbors(raw)
	if err != nil {
		t.Fatal(err)
	}
	n := nbs[addr("198.18.0.2")]
	if n.State != "Idle" || n.RemoteAS != 64513 || n.PrefixesReceived[IPv6] != 3 || n.PrefixesSent[IPv4] != 2 ||
		n.LastNotificationReason != "Cease/BFD Down" || n.LastErrorCodeSubcode != "060A" || n.BFDStatus != "Down" ||
		n.GracefulRestart != "advertisedAndReceived" || n.ConnectionsDropped != 1 || n.HoldTimeMsec != 180000 {
		t.Errorf("neighbor: %+v", n)
	}
}

func TestRouteAttrsParse(t *testing.T) {
	const out = `{"prefix":"198.18.100.1/32","paths":[
	{"aspath":{"string":"64513","segments":[],"length":1},"origin":"IGP","valid":true,
	 "bestpath":{"overall":true,"selectionReason":"First path received"},
	 "community":{"string":"64513:100 no-export","list":["64513:100","noExport"]},
	 "largeCommunity":{"string":"64513:1:2","list":["64513:1:2"]},
	 "extendedCommunity":{"string":"RT:1:2 SoO:3:4"},
	 "nexthops":[{"ip":"198.18.0.2","afi":"ipv4","metric":0,"accessible":true,"used":true}],
	 "peer":{"peerId":"198.18.0.2","routerId":"198.18.0.2","type":"external"}},
	{"aspath":{"string":"Local","segments":[],"length":0},"origin":"IGP","locPrf":200,"metric":5,"valid":true,"multipath":true,
	 "bestpath":{},"nexthops":[{"ip":"198.18.0.6","afi":"ipv4"}],"peer":{"peerId":"198.18.0.6","type":"internal"}}]}`
	var p frrPrefix
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	got := p.attrs()
	if len(got) != 2 {
		t.Fatalf("%+v", got)
	}
	a, b := got[0], got[1]
	if !a.Best || a.ASPath != "64513" || !slices.Equal(a.Communities, []string{"64513:100", "noExport"}) ||
		!slices.Equal(a.LargeCommunities, []string{"64513:1:2"}) || !slices.Equal(a.ExtCommunities, []string{"RT:1:2", "SoO:3:4"}) ||
		a.LocalPref != nil || a.MED != nil || a.PeerID != "198.18.0.2" || !slices.Equal(a.NextHops, []netip.Addr{addr("198.18.0.2")}) {
		t.Errorf("first path: %+v", a)
	}
	if b.Best || !b.Multipath || b.ASPath != "" || b.LocalPref == nil || *b.LocalPref != 200 || b.MED == nil || *b.MED != 5 {
		t.Errorf("second path: %+v", b)
	}
}

// birdRouteAll is `birdc show route all` with an ECMP route learned from
// two peers, a multipath route, a static route with communities and an
// IPv6 table.
const birdRouteAll = `BIRD 2.0.12 ready.
Table master4:
198.18.50.0/24       unicast [n0 15:20:11.571] * (100) [AS64512i]
	via 198.18.0.1 on prt-b
	Type: BGP univ
	BGP.origin: IGP
	BGP.as_path: 64512
	BGP.next_hop: 198.18.0.1
	BGP.med: 0
	BGP.local_pref: 100
	BGP.community: (64512,100) (64512,200)
	BGP.large_community: (64512, 1, 2)
                     unicast [n1 15:20:12.002] (100) [AS64514i]
	via 198.18.0.5 on prt-c
	Type: BGP univ
	BGP.as_path: 64514
198.18.60.0/24       unicast [k4 15:20:11.571] * (10)
	via 198.18.0.1 on prt-b weight 1
	via 198.18.0.5 on prt-c weight 1
	Type: inherit univ
198.18.100.1/32      blackhole [s4 15:20:10.241] * (200)
	Type: static univ
	BGP.community: (64513,100)
	BGP.large_community: (64513, 1, 2)
198.18.70.0/24       unreachable [n0 15:20:11.571] * (100) [AS64512i]
	Type: BGP univ
	BGP.as_path: 64512

Table master6:
2001:db8:50::/48     unicast [n0 15:20:11.571] * (100) [AS64512i]
	via 2001:db8:0:1::1 on prt-b
	Type: BGP univ
	BGP.as_path: 64512
	BGP.next_hop: 2001:db8:0:1::1 fe80::402a:f1ff:fe46:658c
`

func TestParseBIRDRoutes(t *testing.T) {
	routes, err := parseBIRDRoutes([]byte(birdRouteAll))
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 6 {
		t.Fatalf("%d routes: %+v", len(routes), routes)
	}
	r := routes[0]
	if r.Prefix != pfx("198.18.50.0/24") || r.Kind != "unicast" || r.Protocol != "n0" || !r.Primary || r.Type != "BGP univ" ||
		r.ASPath != "64512" || !slices.Equal(r.Communities, []string{"64512:100", "64512:200"}) ||
		!slices.Equal(r.LargeCommunities, []string{"64512:1:2"}) || r.LocalPref == nil || *r.LocalPref != 100 ||
		!slices.Equal(r.Interfaces, []string{"prt-b"}) || r.Attrs["BGP.med"] != "0" {
		t.Errorf("first route: %+v", r)
	}
	if r := routes[1]; r.Prefix != pfx("198.18.50.0/24") || r.Protocol != "n1" || r.Primary || !slices.Equal(r.NextHops, []netip.Addr{addr("198.18.0.5")}) {
		t.Errorf("second route: %+v", r)
	}
	if r := routes[2]; !slices.Equal(r.NextHops, []netip.Addr{addr("198.18.0.1"), addr("198.18.0.5")}) {
		t.Errorf("multipath route: %+v", r)
	}
	if r := routes[3]; r.Kind != "blackhole" || r.Type != "static univ" || len(r.NextHops) != 0 || !slices.Equal(r.LargeCommunities, []string{"64513:1:2"}) {
		t.Errorf("static route: %+v", r)
	}

	got := birdBGPNextHops(routes)
	want := map[netip.Prefix][]netip.Addr{
		pfx("198.18.50.0/24"):   {addr("198.18.0.1"), addr("198.18.0.5")},
		pfx("198.18.70.0/24"):   nil,
		pfx("2001:db8:50::/48"): {addr("2001:db8:0:1::1")},
	}
	if len(got) != len(want) {
		t.Errorf("BGP routes: %v", got)
	}
	for p, nh := range want {
		if g, ok := got[p]; !ok || !slices.Equal(g, nh) {
			t.Errorf("%v via %v, want %v", p, g, nh)
		}
	}

	if _, err := parseBIRDRoutes([]byte("\tvia 198.18.0.1 on x\n")); err == nil {
		t.Error("a detail line first: no error")
	}
}

func TestParseBIRDProtocols(t *testing.T) {
	const out = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     15:20:10.241  
n0         BGP        ---        up     15:20:10.521  Established   
n1         BGP        ---        start  15:20:10.521  Active        Socket: Connection refused
`
	ps := parseBIRDProtocols([]byte(out))
	if p := ps["n0"]; p.Proto != "BGP" || p.State != "up" || p.Info != "Established" {
		t.Errorf("n0: %+v", p)
	}
	if p := ps["n1"]; p.State != "start" || p.Info != "Active Socket: Connection refused" {
		t.Errorf("n1: %+v", p)
	}
	if p, ok := ps["device1"]; !ok || p.Info != "" {
		t.Errorf("device1: %+v", p)
	}
}

func fullBIRDConfig() BIRDConfig {
	return BIRDConfig{
		RouterID: addr("198.18.0.2"),
		ASN:      64513,
		Neighbors: []BIRDNeighbor{
			{Address: addr("198.18.0.1"), RemoteASN: 64512, Password: "pw", BFD: true},
			{Name: "far", Address: addr("198.18.9.9"), RemoteASN: 64514, Multihop: 3, Passive: true, Families: []Family{IPv6}},
		},
		Static: []BIRDStatic{
			{Prefix: pfx("198.18.100.1/32"), Communities: []string{"64513:100"}, LargeCommunities: []string{"64513:1:2"}},
			{Prefix: pfx("2001:db8:100::1/128")},
		},
		BFD:          BFDTimers{ReceiveMs: 100, TransmitMs: 100, Multiplier: 5},
		KeepaliveSec: 3,
		HoldSec:      9,
	}
}

func TestBIRDConfig(t *testing.T) {
	text, err := fullBIRDConfig().config("/d")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"router id 198.18.0.2;\n",
		`log "/d/bird.log" all;`,
		"route 198.18.100.1/32 blackhole { bgp_community.add((64513,100)); bgp_large_community.add((64513,1,2)); };\n",
		"route 2001:db8:100::1/128 blackhole;\n",
		`interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 5; };`,
		"protocol bgp n0 {\n  local as 64513;\n  neighbor 198.18.0.1 as 64512;\n  password \"pw\";\n  direct;\n  bfd on;\n",
		"protocol bgp far {\n  local as 64513;\n  neighbor 198.18.9.9 as 64514;\n  multihop 3;\n  passive on;\n  hold time 9;\n  keepalive time 3;\n",
		"  ipv6 { import all; export where source = RTS_STATIC; };\n}\n",
		"learn;", "protocol direct",
		"merge paths on limit 8;",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("bird.conf lacks %q:\n%s", want, text)
		}
	}
	if _, far, _ := strings.Cut(text, "protocol bgp far {"); strings.Contains(far, "ipv4 {") {
		t.Errorf("IPv4 channel for an IPv6-only neighbor:\n%s", text)
	}

	for name, c := range map[string]BIRDConfig{
		"no router ID":  {ASN: 1},
		"no ASN":        {RouterID: addr("198.18.0.2")},
		"bad community": {RouterID: addr("198.18.0.2"), ASN: 1, Static: []BIRDStatic{{Prefix: pfx("198.18.1.0/24"), Communities: []string{"70000:1"}}}},
		"bad large":     {RouterID: addr("198.18.0.2"), ASN: 1, Static: []BIRDStatic{{Prefix: pfx("198.18.1.0/24"), LargeCommunities: []string{"1:2"}}}},
		"quoted pw":     {RouterID: addr("198.18.0.2"), ASN: 1, Neighbors: []BIRDNeighbor{{Address: addr("198.18.0.1"), RemoteASN: 2, Password: `a"b`}}},
		"same name":     {RouterID: addr("198.18.0.2"), ASN: 1, Neighbors: []BIRDNeighbor{{Name: "x", Address: addr("198.18.0.1"), RemoteASN: 2}, {Name: "x", Address: addr("198.18.0.3"), RemoteASN: 2}}},
		"no remote AS":  {RouterID: addr("198.18.0.2"), ASN: 1, Neighbors: []BIRDNeighbor{{Address: addr("198.18.0.1")}}},
	} {
		if _, err := c.config("/d"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestConfigsParse has the daemons themselves check the configurations
// with every option set: bird -p (parse only), and the FRR daemons' dry
// run in a namespace of its own (needs root).
func TestConfigsParse(t *testing.T) {
	if _, err := exec.LookPath("bird"); err == nil {
		dir := t.TempDir()
		text, err := fullBIRDConfig().config(dir)
		if err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "bird.conf")
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("bird", "-p", "-c", conf).CombinedOutput(); err != nil {
			t.Errorf("bird -p: %v: %s\n%s", err, out, text)
		}
	} else {
		t.Log("no bird: BIRD's configuration not checked")
	}

	requireNetnsLab(t)
	removeLeftovers(t)
	ns := addNamespace(t, "dry")
	dir := workDir(t)
	// The daemons open their log files as user frr, even in a dry run.
	uid, gid, err := frrUser()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	c := fullFRRConfig()
	files, err := c.configFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bfdd", "bgpd"} {
		conf := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(conf, []byte(files[name+".conf"]), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := frrDryRun(context.Background(), ns, filepath.Join(DefaultFRRBinDir, name), conf); err != nil {
			t.Error(err)
		}
	}
	// And the check catches a bad line.
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("router bgp 1\n neighbor 198.18.0.2 bogus\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := frrDryRun(context.Background(), ns, filepath.Join(DefaultFRRBinDir, "bgpd"), bad); err == nil || !strings.Contains(err.Error(), "on config line 2") {
		t.Errorf("bad line: %v", err)
	}
}
